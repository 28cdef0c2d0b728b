"""Interrupted passes leave a true history: nothing is recorded as done before it is durable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.state import StateStore
from engine.workspace import create_workspace

INJECT = Path(__file__).parent / "interrupt_inject"
SCAN = "2026/11/s0.h5"


def test_ctrl_c_before_the_catalog_is_written_records_no_registration(tmp_path: Path) -> None:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000, cfs_keep_days=1000)
    ws.write_scan(SCAN, os.urandom(2048))
    cli = [sys.executable, "-m", "bl931tui", "--config", str(ws.config_path)]
    first = subprocess.run([*cli, "--reconcile", "--once"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr  # dtn → cfs verified; registration comes next

    env = {**os.environ, "PYTHONPATH": str(INJECT), "BL931_INTERRUPT_AT": "catalog.flush"}
    interrupted = subprocess.run(
        [*cli, "--reconcile", "--once"], capture_output=True, text=True, env=env
    )
    assert interrupted.returncode == 0, interrupted.stderr
    assert "interrupted" in interrupted.stderr
    assert "nothing to wait for" in interrupted.stderr or "waiting for" in interrupted.stderr
    catalog = ws.root / "state" / "catalog.json"
    assert not catalog.exists() or SCAN not in catalog.read_text()
    store = StateStore(ws.state_path, readonly=True)
    try:
        kinds = [e["kind"] for e in store.events(scan=SCAN)]
    finally:
        store.close()
    assert "catalog.register" not in kinds, "an event claims a registration never written"

    for _ in range(2):
        done = subprocess.run([*cli, "--reconcile", "--once"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    store = StateStore(ws.state_path, readonly=True)
    try:
        events = store.events(scan=SCAN)
    finally:
        store.close()
    assert [e["kind"] for e in events].count("catalog.register") == 1
    assert not [e for e in events if e["kind"] == "action.failed"], events
    assert SCAN in json.dumps(json.loads(catalog.read_text()))

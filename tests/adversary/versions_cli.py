"""Shared helpers for the adversarial version tests (`test_versions_*.py`): a local beamline
(dtn -> cfs -> hpss, hpss `tape = true`) driven only through the real `bl931tui` CLI, and a
census of every byte content each endpoint holds, so a test can ask "does every version that was
ever verified still exist intact somewhere?" without trusting the engine's own bookkeeping.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from engine.state import StateStore
from engine.workspace import LocalWorkspace
from tests.conftest import RunCli

SCAN = "2026/11/s0.h5"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def audit(run_cli: RunCli, ws: LocalWorkspace) -> tuple[int, dict[str, Any]]:
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert done.returncode in (0, 1, 2), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, doc


def passes(run_cli: RunCli, ws: LocalWorkspace, n: int) -> None:
    for _ in range(n):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert done.returncode in (0, 1), done.stderr
        assert "Traceback" not in done.stderr, done.stderr


def approve_everything(run_cli: RunCli, ws: LocalWorkspace, rounds: int) -> None:
    """An operator who approves whatever is asked, pass after pass (the worst case)."""
    for _ in range(rounds):
        done = run_cli("--approve-all", "--yes", config=ws.config_path)
        assert "Traceback" not in done.stderr, done.stderr
        passes(run_cli, ws, 1)


def file_contents(root: Path) -> dict[str, bytes]:
    """Every regular, non-hidden file below `root`: relative path -> bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def holders(ws: LocalWorkspace, data: bytes) -> list[str]:
    """Where (endpoint:path) a file with exactly these bytes exists."""
    found = []
    for name, root in (("dtn", ws.dtn), ("cfs", ws.cfs), ("hpss", ws.hpss)):
        found += [f"{name}:{rel}" for rel, got in file_contents(root).items() if got == data]
    return found


def events(ws: LocalWorkspace, scan: str, kind: str) -> list[dict[str, Any]]:
    store = StateStore(ws.state_path, readonly=True)
    try:
        return [e["data"] for e in store.events(scan=scan) if e["kind"] == kind]
    finally:
        store.close()


def scan_record(ws: LocalWorkspace, scan: str) -> Any:
    store = StateStore(ws.state_path, readonly=True)
    try:
        return store.get_scan(scan)
    finally:
        store.close()

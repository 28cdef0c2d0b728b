"""Adversary: `--notify` and the Prefect flows while the real service (`bl931tui --reconcile`)
owns the store.

Promises (docs/watcher.md, docs/prefect.md): a running service takes the hint on its socket and
starts a pass; the notifying process writes nothing itself; the flag then keeps the scan on site
at that very pass; a `reconcile_pass` flow run next to the service ends `Skipped` and writes
nothing; `notify_new_scan` hands its hint to the service.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.decision_socket import socket_path
from tests.adversary.export_world import hint_rows, holds_bytes, make_world, notify, passes
from tests.conftest import RunCli
from tests.service.helpers import ServiceProcess, wait_for

SCAN = "2026/s0.h5"
DATA = b"flagged while the service runs"


def _dump(path: Path) -> list[tuple[object, ...]]:
    """Every row of the tables a flow run could write (events, hints, actions, scans)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out: list[tuple[object, ...]] = []
        for table in ("events", "scan_hints", "actions", "scans"):
            out += [(table, *row) for row in conn.execute(f"SELECT * FROM {table}")]
        return out
    finally:
        conn.close()


def _service(tmp_path: Path, run_cli: RunCli):  # type: ignore[no-untyped-def]
    w = make_world(tmp_path / "w", copies=(("dtn", "off"),))
    w.write("2026/boot.h5", b"boot")
    passes(run_cli, w)  # the store exists
    svc = ServiceProcess(w.config_path, "--interval", "3600", log_path=tmp_path / "svc.log")
    wait_for(lambda: socket_path(w.state_path).exists(), timeout=90, what="the service socket")
    svc.wait_log(r"pass done in", timeout=90)
    return w, svc


def test_notify_is_handed_to_the_service_and_keeps_the_scan_on_site(
    tmp_path: Path, run_cli: RunCli
) -> None:
    w, svc = _service(tmp_path, run_cli)
    try:
        w.write(SCAN, DATA)
        n = svc.passes()
        done = notify(run_cli, w, SCAN, "--export-control", "--wait", "0")
        assert done.returncode == 0, done.stderr
        assert "recorded by the running service" in done.stderr
        svc.wait_log(r"pass done in", count=n + 1, timeout=90)  # the notify woke a pass
        assert hint_rows(w) == [(SCAN, 1, "service")]
        assert holds_bytes(w, "off", DATA) == []
    finally:
        svc.close()


prefect_flows = pytest.importorskip("bl931_prefect.flows")
from tests.flows.conftest import prefect_server  # noqa: E402,F401  (the session's server)


@pytest.mark.usefixtures("prefect_server")
def test_flows_next_to_the_service_skip_and_hand_over(tmp_path: Path, run_cli: RunCli) -> None:
    w, svc = _service(tmp_path, run_cli)
    try:
        svc.wait_log(r"pass done in", timeout=90)
        before = _dump(w.state_path)
        state = prefect_flows.reconcile_pass(str(w.config_path), return_state=True)
        assert state.is_completed() and state.name == "Skipped", state
        after = _dump(w.state_path)
        assert [r for r in after if r not in before] == []  # the idle service wrote none either
        w.write(SCAN, DATA)
        got = prefect_flows.notify_new_scan(
            SCAN, is_export_control=True, config_path=str(w.config_path), wait_seconds=0
        )
        assert got == {"scan": SCAN, "export_controlled": True, "via": "service"}
        assert hint_rows(w) == [(SCAN, 1, "service")]
    finally:
        svc.close()

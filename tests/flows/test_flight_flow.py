"""The flight check as a Prefect flow: Completed with the flight report as its artifact when
every leg passes; Failed, with the alert recorded in the store, when a leg fails."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from prefect.artifacts import Artifact

from bl931_prefect.flows import artifact_key, flight_check, reconcile_pass
from tests.flows.world import offsite_workspace

pytestmark = pytest.mark.usefixtures("prefect_server")


def _artifact() -> str:
    found = Artifact.get(artifact_key("flight-check", "9.3.1"))
    assert found is not None, "the flight check wrote no artifact"
    return str(found.data)


def _alerts(state_path: Path) -> list[str]:
    with sqlite3.connect(state_path) as conn:
        return [r[0] for r in conn.execute("SELECT code FROM alerts")]


def test_a_green_flight_check_is_a_completed_run_and_leaves_no_canary(tmp_path: Path) -> None:
    ws = offsite_workspace(tmp_path / "ws", quiet_seconds=0)
    ws.write_scan("2026/a.h5", b"a" * 100)
    assert reconcile_pass(str(ws.config_path), return_state=True).is_completed()

    state = flight_check(str(ws.config_path), return_state=True)

    assert state.is_completed(), state.message
    markdown = _artifact()
    assert "dtn" in markdown and "cfs" in markdown
    assert "flight_check_failed" not in _alerts(ws.state_path)
    for root in (ws.dtn, ws.cfs, ws.hpss):
        leftovers = [p for p in root.rglob("*") if "canary" in p.name]
        assert leftovers == [], leftovers


def test_a_failing_leg_fails_the_run_and_raises_the_alert(tmp_path: Path) -> None:
    ws = offsite_workspace(tmp_path / "ws", quiet_seconds=0)
    ws.write_scan("2026/a.h5", b"a" * 100)
    assert reconcile_pass(str(ws.config_path), return_state=True).is_completed()
    # The canary's folder on cfs is taken by a file: the leg cannot write its copy there.
    (ws.cfs / ".bl931-flight-check").write_bytes(b"in the way")

    state = flight_check(str(ws.config_path), return_state=True)

    assert state.is_failed()
    assert "flight check failed" in (state.message or "")
    assert "flight_check_failed" in _alerts(ws.state_path)
    assert not [p for p in ws.dtn.rglob("*") if "canary" in p.name]

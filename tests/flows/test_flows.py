"""The Prefect flows against a real local Prefect server (the session's test harness).

A pass as a flow (Completed with its artifact; Failed when an endpoint fails), a notify sent
while nothing runs and picked up by the next start, and two flow runs at once (one passes, the
other says "another pass is running"; the store stays whole).
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest
from prefect.artifacts import Artifact

from bl931_prefect.flows import artifact_key, notify_new_scan, reconcile_pass
from engine.lock import OwnerLock
from tests.flows.world import blocked, hints, offsite_workspace, scans

pytestmark = pytest.mark.usefixtures("prefect_server")


def _artifact(beamline: str = "9.3.1") -> str:
    found = Artifact.get(artifact_key("pass", beamline))
    assert found is not None, "the pass wrote no artifact"
    return str(found.data)


def test_a_pass_is_a_flow_run_completed_with_its_artifact(tmp_path: Path) -> None:
    ws = offsite_workspace(tmp_path / "ws", quiet_seconds=0)
    ws.write_scan("2026/a.h5", b"a" * 100)
    assert reconcile_pass(str(ws.config_path), return_state=True).is_completed()  # first start
    ws.write_scan("2026/b.h5", b"b" * 100)
    notify_new_scan(str(ws.dtn / "2026/b.h5"), True, config_path=str(ws.config_path))

    state = reconcile_pass(str(ws.config_path), return_state=True)

    assert state.is_completed(), state.message
    assert state.name == "Completed"
    markdown = _artifact()
    assert "# bl931 pass — 9.3.1" in markdown and "**ok**" in markdown
    assert "| `export_controlled` |" in markdown  # b.h5's copy to the off-site cfs
    assert "2026/b.h5 (notify)" in markdown  # listed among export-controlled scans
    assert (ws.cfs / "2026/a.h5").exists()
    assert not (ws.cfs / "2026/b.h5").exists()


def test_a_pass_with_a_failed_endpoint_is_a_failed_run(tmp_path: Path) -> None:
    ws = offsite_workspace(tmp_path / "ws", quiet_seconds=0)
    ws.write_scan("2026/a.h5", b"a" * 100)
    assert reconcile_pass(str(ws.config_path), return_state=True).is_completed()
    ws.hpss.rename(ws.root / "hpss-unmounted")  # an unmounted filesystem: unknown, never empty

    state = reconcile_pass(str(ws.config_path), return_state=True)

    assert state.is_failed()
    assert "hpss" in (state.message or "")
    markdown = _artifact()
    assert "**FAILED**" in markdown and "## Errors" in markdown and "**hpss**" in markdown


def test_a_notify_while_nothing_runs_is_picked_up_at_the_next_start(
    tmp_path: Path, run_cli
) -> None:
    ws = offsite_workspace(tmp_path / "ws", quiet_seconds=3600)
    ws.write_scan("2026/secret.h5", b"s" * 100)
    ws.write_scan("2026/open.h5", b"o" * 100)
    first = run_cli("--reconcile", "--once", config=ws.config_path)  # the service ran once
    assert first.returncode == 0, first.stderr
    assert scans(ws) == set()  # not complete yet: written seconds ago, quiet_seconds is an hour

    out = notify_new_scan(str(ws.dtn / "2026/secret.h5"), True, config_path=str(ws.config_path))
    assert out == {"scan": "2026/secret.h5", "export_controlled": True, "via": "direct"}
    out = notify_new_scan("2026/open.h5", config_path=str(ws.config_path))  # relative to root
    assert out["via"] == "direct" and out["export_controlled"] is False
    assert hints(ws) == {"2026/secret.h5": (1, "direct"), "2026/open.h5": (0, "direct")}

    done = run_cli("--reconcile", "--once", config=ws.config_path)  # the service's next start

    assert done.returncode == 0, done.stderr
    # Complete by the notify, an hour before quiet_seconds would say so.
    assert scans(ws) == {"2026/secret.h5", "2026/open.h5"}
    assert (ws.cfs / "2026/open.h5").exists()
    assert not (ws.cfs / "2026/secret.h5").exists()
    assert ("2026/secret.h5", "cfs", "export_controlled") in blocked(ws)
    audit = run_cli("--dry-run", "--json", config=ws.config_path)
    assert audit.returncode in (0, 2), audit.stderr
    assert '"scan": "2026/secret.h5",\n      "source": "notify"' in audit.stdout


def test_a_notify_before_bl931_ever_ran_is_refused_and_creates_no_store(tmp_path: Path) -> None:
    ws = offsite_workspace(tmp_path / "ws")
    ws.write_scan("2026/a.h5", b"a")
    state = notify_new_scan("2026/a.h5", True, config_path=str(ws.config_path), return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match=r"no state store at .* the hint was NOT recorded"):
        state.result()
    assert not ws.state_path.exists()


def test_a_notify_for_no_scan_fails_the_run_naming_the_path(tmp_path: Path) -> None:
    ws = offsite_workspace(tmp_path / "ws")
    state = notify_new_scan("/elsewhere/x.h5", config_path=str(ws.config_path), return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match=r"/elsewhere/x\.h5: not under the inventory endpoint dtn"):
        state.result()


def test_a_flow_run_while_another_process_owns_the_store_skips_cleanly(tmp_path: Path) -> None:
    ws = offsite_workspace(tmp_path / "ws", quiet_seconds=0)
    ws.write_scan("2026/a.h5", b"a" * 100)
    assert reconcile_pass(str(ws.config_path), return_state=True).is_completed()
    before = _store_dump(ws.state_path)
    with OwnerLock(ws.state_path):  # the systemd service, or another flow run, owns the store
        ws.write_scan("2026/b.h5", b"b" * 100)
        state = reconcile_pass(str(ws.config_path), return_state=True)
    assert state.is_completed() and state.name == "Skipped"
    assert "another pass is running" in (state.message or "")
    assert _store_dump(ws.state_path) == before  # it wrote nothing


def test_two_flow_runs_at_once_one_passes_the_store_stays_whole(tmp_path: Path) -> None:
    ws = offsite_workspace(tmp_path / "ws", quiet_seconds=0)
    for n in range(20):
        ws.write_scan(f"2026/s{n:02d}.h5", bytes([n]) * 50_000)
    states: list = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        states.append(reconcile_pass(str(ws.config_path), return_state=True))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    names = sorted(s.name for s in states)
    assert all(s.is_completed() for s in states), [s.message for s in states]
    assert names in (["Completed", "Skipped"], ["Completed", "Completed"])  # skip, or in turn
    with sqlite3.connect(ws.state_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        copies = conn.execute(
            "SELECT count(*) FROM actions WHERE kind = 'copy' AND target = 'cfs'"
        ).fetchone()[0]
    assert copies == 20  # one copy action per scan, never two
    assert all((ws.cfs / f"2026/s{n:02d}.h5").exists() for n in range(20))
    third = reconcile_pass(str(ws.config_path), return_state=True)
    assert third.is_completed() and third.name == "Completed"


def _store_dump(path: Path) -> list[str]:
    out = subprocess.run(["sqlite3", str(path), ".dump"], capture_output=True, text=True)
    if out.returncode != 0:  # no sqlite3 shell: dump with Python
        with sqlite3.connect(path) as conn:
            return [
                line for line in conn.iterdump() if not line.startswith('INSERT INTO "heartbeat"')
            ]
    return out.stdout.splitlines()

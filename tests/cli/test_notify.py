"""`bl931tui --notify PATH [--export-control]` through the real CLI.

While a service owns the store the hint is handed to it over its socket (the service records
it and starts a pass at once) and the notifying process writes nothing; a path that is no scan
is refused with exit 64 naming it; a flag once given sticks.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

from tests.conftest import RunCli
from tests.flows.world import blocked, hints, offsite_workspace, scans
from tests.service.helpers import ServiceProcess, wait_for


def test_notify_while_the_service_runs_is_handed_over_and_wakes_a_pass(
    run_cli: RunCli, tmp_path: Path
) -> None:
    ws = offsite_workspace(tmp_path / "ws", quiet_seconds=3600)
    service = ServiceProcess(
        ws.config_path, "--interval", "3600", log_path=tmp_path / "service.log"
    )
    try:
        service.wait_log(r"pass done in", count=1)
        socket = Path(f"{ws.state_path}.sock")
        wait_for(socket.exists, what="the decision socket")
        ws.write_scan("2026/secret.h5", b"s" * 100)
        done = run_cli(
            "--notify", str(ws.dtn / "2026/secret.h5"), "--export-control", config=ws.config_path
        )
        assert done.returncode == 0, done.stderr
        assert "recorded by the running service" in done.stderr
        # The hint woke a pass long before the hour's interval, and made the scan complete.
        service.wait_log(r"pass done in", count=2, timeout=60)
        wait_for(lambda: "2026/secret.h5" in scans(ws), what="the notified scan inventoried")
        wait_for(
            lambda: ("2026/secret.h5", "cfs", "export_controlled") in blocked(ws),
            what="the off-site copy blocked",
        )
        assert hints(ws) == {"2026/secret.h5": (1, "service")}
        # The notifying process never took the owner lock: its holder is still the service.
        holder = json.loads((ws.root / "state" / "state.sqlite.lock").read_text())
        assert holder["pid"] == service.pid
        assert not (ws.cfs / "2026/secret.h5").exists()
        # A later notify without the flag does not clear it.
        again = run_cli("--notify", "2026/secret.h5", config=ws.config_path)
        assert again.returncode == 0, again.stderr
        assert "(export-controlled)" in again.stderr
        assert hints(ws)["2026/secret.h5"][0] == 1
        # A path that is no scan: exit 64, the path named, nothing recorded.
        bad = run_cli("--notify", str(ws.dtn / "2026/.hidden.tmp"), config=ws.config_path)
        assert bad.returncode == 64
        assert "2026/.hidden.tmp" in bad.stderr and "no scan" in bad.stderr
        assert set(hints(ws)) == {"2026/secret.h5"}
    finally:
        service.signal(signal.SIGTERM)
        service.wait()
        service.close()


def test_notify_refuses_paths_outside_the_inventory(run_cli: RunCli, tmp_path: Path) -> None:
    ws = offsite_workspace(tmp_path / "ws")
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    outside = run_cli("--notify", str(ws.cfs / "2026/a.h5"), config=ws.config_path)
    assert outside.returncode == 64
    assert (
        f"--notify {ws.cfs / '2026/a.h5'}: not under the inventory endpoint dtn" in outside.stderr
    )
    climbing = run_cli("--notify", "../cfs/a.h5", config=ws.config_path)
    assert climbing.returncode == 64 and "'..'" in climbing.stderr
    missing = run_cli("--notify", "2026/nothing.h5", config=ws.config_path)
    assert missing.returncode == 64 and "no scan '2026/nothing.h5'" in missing.stderr
    usage = run_cli("--dry-run", "--export-control", config=ws.config_path)
    assert usage.returncode == 64 and "--export-control goes with --notify" in usage.stderr
    with sqlite3.connect(ws.state_path) as conn:
        assert conn.execute("SELECT count(*) FROM scan_hints").fetchone()[0] == 0


def test_notify_while_a_pass_holds_the_lock_waits_then_writes(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """A `--once` pass (or a flow run) takes no hints: the notify waits for the lock; with no
    time to wait it fails, saying the hint was not recorded."""
    from engine.lock import OwnerLock

    ws = offsite_workspace(tmp_path / "ws")
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    ws.write_scan("2026/a.h5", b"a")
    with OwnerLock(ws.state_path):
        busy = run_cli("--notify", "2026/a.h5", "--wait", "0", config=ws.config_path)
    assert busy.returncode == 1
    assert "another bl931 reconciler owns" in busy.stderr and "NOT recorded" in busy.stderr
    assert hints(ws) == {}
    done = run_cli("--notify", "2026/a.h5", config=ws.config_path)
    assert done.returncode == 0 and "no service running" in done.stderr
    assert hints(ws) == {"2026/a.h5": (0, "direct")}


def test_the_scan_detail_shows_the_flag_and_the_audit_lists_it(
    run_cli: RunCli, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from bl931tui.details import load_detail
    from bl931tui.screens.detail import render_detail
    from engine.policy import Policy
    from engine.state import StateStore

    rules = '\n[export_control]\ncontrolled = ["2026/secret"]\ncleared = ["2026/open"]\n'
    ws = offsite_workspace(tmp_path / "ws", quiet_seconds=0, export_control=rules)
    for name in ("secret/a.h5", "open/b.h5", "other/c.h5", "other/d.h5"):
        ws.write_scan(f"2026/{name}", name.encode())
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    assert run_cli("--notify", "2026/other/d.h5", config=ws.config_path).returncode == 0
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    assert (ws.cfs / "2026/open/b.h5").exists() and (ws.cfs / "2026/other/d.h5").exists()
    assert not (ws.cfs / "2026/secret/a.h5").exists()
    assert not (ws.cfs / "2026/other/c.h5").exists()  # no rule, no notify: waits
    assert ("2026/other/c.h5", "cfs", "export_control_unknown") in blocked(ws)
    audit = run_cli("--dry-run", "--json", config=ws.config_path)
    assert audit.returncode == 2  # the undecided scan's wait is work pending
    document = json.loads(audit.stdout)
    assert document["export_controlled"] == [
        {"scan": "2026/secret/a.h5", "source": "rule 2026/secret"}
    ]
    store = StateStore(ws.state_path, readonly=True)
    try:
        policy = Policy.from_config(ws.config())
        now = datetime.now(UTC)
        shown = {
            sid: str(render_detail(load_detail(store, policy, sid, now), now).renderables[0])
            for sid in ("2026/secret/a.h5", "2026/other/c.h5", "2026/other/d.h5")
        }
    finally:
        store.close()
    assert (
        "export-controlled (rule 2026/secret): never copied off-site" in shown["2026/secret/a.h5"]
    )
    assert "export control not known yet" in shown["2026/other/c.h5"]
    assert "not export-controlled (notify)" in shown["2026/other/d.h5"]

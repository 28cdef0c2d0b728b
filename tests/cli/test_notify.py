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
    assert f"--notify {ws.cfs / '2026/a.h5'}: not under the inventory endpoint dtn" in outside.stderr
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

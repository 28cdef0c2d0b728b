"""Decisions sent to a running service over its decision socket, while it runs (issue 11).

The service (`bl931tui --reconcile --interval 3600`: one pass, then idle until SIGHUP) owns
the store; `--approve`, `--reject`, `--unreject`, `--revoke` and a hold (sent the way the TUI
sends it, `bl931tui.decisions`/`decision_channel`) go through the socket and are recorded by
the service. A pass is waited for by counting "pass done in" in its log, never by time.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.workspace import LocalWorkspace, create_workspace
from tests.cli.test_approvers import SCAN, awaiting_delete, cli
from tests.service.helpers import ServiceProcess, wait_for


@pytest.fixture
def ws(tmp_path: Path) -> LocalWorkspace:
    return create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0)


@pytest.fixture
def service(ws: LocalWorkspace, tmp_path: Path) -> Iterator[ServiceProcess]:
    awaiting_delete(ws)
    proc = ServiceProcess(ws.config_path, "--interval", "3600", log_path=tmp_path / "service.log")
    try:
        proc.wait_log(r"pass done in")
        wait_for(lambda: Path(f"{ws.state_path}.sock").exists(), what="the decision socket")
        yield proc
    finally:
        proc.close()


def one_pass(service: ServiceProcess) -> None:
    before = service.passes()
    service.signal(signal.SIGHUP)
    service.wait_log(r"pass done in", count=before + 1)


def prune_id(ws: LocalWorkspace) -> str:
    doc = json.loads(cli("--dry-run", "--json", config=ws.config_path).stdout)
    (delete,) = [a for a in doc["actions"] if a["kind"] == "delete" and a["target"] == "dtn"]
    return str(delete["id"])


def send_hold(ws: LocalWorkspace, scan: str) -> subprocess.CompletedProcess[str]:
    """A hold as the TUI places it: through the decision channel, to the running service."""
    code = (
        "import sys\n"
        "from engine.config import load_config\n"
        "from bl931tui.decision_channel import decide\n"
        "from engine.operator_decisions import DecisionRequest\n"
        "r = decide(load_config(sys.argv[1]), DecisionRequest('hold', (sys.argv[2],), 'look'))\n"
        "print(r.via, r.by)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(ws.config_path), scan],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_decisions_a_reject_sent_to_the_running_service_after_an_approval(
    ws: LocalWorkspace, service: ServiceProcess
) -> None:
    """approve, then reject, both through the socket between two passes: the later one wins;
    --unreject through the socket leaves it awaiting approval, not approved."""
    aid = prune_id(ws)
    assert cli("--approve", aid, config=ws.config_path).returncode == 0
    done = cli("--reject", aid, config=ws.config_path)
    assert done.returncode == 0 and "recorded by the running service" in done.stdout, done
    one_pass(service)
    assert (ws.dtn / SCAN).exists(), "the service ran a delete its socket had been told to reject"

    undo = cli("--unreject", aid, config=ws.config_path)
    assert undo.returncode == 0, undo.stderr
    one_pass(service)
    assert (ws.dtn / SCAN).exists(), "the un-rejected delete ran on the overridden approval"
    doc = json.loads(cli("--dry-run", "--json", config=ws.config_path).stdout)
    (again,) = [a for a in doc["actions"] if a["id"] == aid]
    assert not again["approved"], again


def test_decisions_a_hold_sent_to_the_running_service_stops_an_approved_prune(
    ws: LocalWorkspace, service: ServiceProcess
) -> None:
    aid = prune_id(ws)
    assert cli("--approve", aid, config=ws.config_path).returncode == 0
    held = send_hold(ws, SCAN)
    assert held.returncode == 0 and "service" in held.stdout, held
    one_pass(service)
    assert (ws.dtn / SCAN).exists(), "the service deleted a scan it had been told to hold"


def test_decisions_a_revoke_sent_to_the_running_service(
    ws: LocalWorkspace, service: ServiceProcess
) -> None:
    aid = prune_id(ws)
    assert cli("--approve", aid, config=ws.config_path).returncode == 0
    assert cli("--revoke", aid, config=ws.config_path).returncode == 0
    one_pass(service)
    assert (ws.dtn / SCAN).exists(), "the service deleted on a revoked approval"
    assert cli("--approve", aid, config=ws.config_path).returncode == 0
    one_pass(service)
    # The service's passes do not wait for in-process tasks: the delete the pass submitted
    # runs in the local mover's thread and may end just after "pass done" is logged.
    wait_for(lambda: not (ws.dtn / SCAN).exists(), what="the approved prune to run", timeout=60)
    late = cli("--revoke", aid, config=ws.config_path)
    assert late.returncode == 64 and "already acted on" in late.stderr, late

"""Only the people who may decide can decide: the real CLI against a real service.

Identity is the kernel's: the service names the caller of its decision socket with
`SO_PEERCRED` and checks that name against its *own* config's `[approval] approvers`; without a
running service only the state store's owner may write a decision. The test process is one OS
user, so "an approver" and "not an approver" are the same uid configured in or out of the list
(and a second config beside the first lists it, the way a user could write their own).
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.state import StateStore
from engine.workspace import LocalWorkspace, create_workspace
from tests.service.helpers import ServiceProcess, wait_for

SCAN = "2026/11/ALS-1/scan_0001.h5"
ME = pwd.getpwuid(os.geteuid()).pw_name
CLI = [sys.executable, "-m", "bl931tui"]


def cli(
    *args: str, config: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def set_approval(config: Path, **keys: object) -> None:
    """Add keys to the config's [approval] table."""
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())
    text = config.read_text("utf-8")
    config.write_text(text.replace("[approval]\n", "[approval]\n" + lines, 1), "utf-8")


def own_config(ws: LocalWorkspace, **keys: object) -> Path:
    """A config an operator wrote for themselves: the same store, themselves as approver."""
    mine = ws.root / "mine.toml"
    text = ws.config_path.read_text("utf-8")
    text = "\n".join(line for line in text.splitlines() if not line.startswith("approvers"))
    mine.write_text(text + "\n", "utf-8")
    set_approval(mine, **keys)
    return mine


def awaiting_delete(ws: LocalWorkspace) -> str:
    """Run passes until the scan's dtn prune awaits approval; its action id."""
    ws.write_scan(SCAN, b"tender x-rays" * 500)
    for _ in range(3):
        done = cli("--reconcile", "--once", config=ws.config_path)
        assert done.returncode == 0, done.stderr
    audit = cli("--dry-run", "--json", config=ws.config_path)
    (delete,) = [a for a in json.loads(audit.stdout)["actions"] if a["kind"] == "delete"]
    assert delete["requires_approval"] and not delete["approved"]
    return str(delete["id"])


def decisions(ws: LocalWorkspace) -> dict[str, tuple[str, str]]:
    store = StateStore(ws.state_path, readonly=True)
    try:
        return {aid: (d[0], d[1]) for aid, d in store.decisions().items()}
    finally:
        store.close()


def signed(ws: LocalWorkspace, action_id: str) -> list[dict[str, object]]:
    store = StateStore(ws.state_path, readonly=True)
    try:
        return [
            e["data"] for e in store.events(action_id=action_id) if e["kind"] == "decision.signed"
        ]
    finally:
        store.close()


@pytest.fixture
def ws(tmp_path: Path) -> LocalWorkspace:
    return create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0)


@pytest.fixture
def start_service(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Start `bl931tui --reconcile` (one pass, then idle) and wait until it takes decisions."""
    started: list[ServiceProcess] = []

    def start(ws: LocalWorkspace, env: dict[str, str] | None = None) -> ServiceProcess:
        service = ServiceProcess(
            ws.config_path,
            "--interval",
            "3600",
            log_path=tmp_path / f"service{len(started)}.log",
            env=env,
        )
        started.append(service)
        service.wait_log(r"pass done in")
        wait_for(lambda: Path(f"{ws.state_path}.sock").exists(), what="the decision socket")
        return service

    yield start
    for service in started:
        service.close()


def test_the_environment_cannot_name_the_approver(ws: LocalWorkspace) -> None:
    """$USER/$LOGNAME are the caller's to set; the recorded approver is the kernel's user."""
    action = awaiting_delete(ws)
    forged = {"USER": "someone-else", "LOGNAME": "someone-else", "LNAME": "x", "USERNAME": "x"}
    done = cli("--approve", action, config=ws.config_path, env=forged)
    assert done.returncode == 0, done.stderr
    assert decisions(ws)[action] == ("approve", ME)
    assert "someone-else" not in done.stdout


def test_a_running_service_refuses_a_caller_who_is_not_an_approver(
    ws: LocalWorkspace, start_service
) -> None:  # type: ignore[no-untyped-def]
    action = awaiting_delete(ws)
    set_approval(ws.config_path, approvers=["alice", "@bl931-ops"])
    start_service(ws)
    # The caller's own config names them an approver: the service's config is what counts.
    mine = own_config(ws, approvers=[ME])
    done = cli("--approve", action, config=mine, env={"USER": "alice"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{ME} (uid {os.geteuid()}) is not an approver" in done.stderr
    assert "alice, @bl931-ops" in done.stderr
    assert action not in decisions(ws)
    ack = cli("--acknowledge", "whatever", "--why", "looked at it", config=mine)
    assert ack.returncode == 1 and "is not an approver" in ack.stderr


def test_a_running_service_records_an_approvers_decision_itself(
    ws: LocalWorkspace, start_service
) -> None:  # type: ignore[no-untyped-def]
    action = awaiting_delete(ws)
    set_approval(ws.config_path, approvers=["alice", ME])
    service = start_service(ws)
    done = cli("--approve", action, config=ws.config_path, env={"USER": "alice"})
    assert done.returncode == 0, done.stderr
    assert f"as {ME}" in done.stdout and "recorded by the running service" in done.stdout
    assert decisions(ws)[action] == ("approve", ME)
    (sig,) = signed(ws, action)
    assert sig == {"decision": "approve", "by": ME, "uid": os.geteuid(), "via": "service"}
    # The service acts on it at its next pass (SIGHUP wakes it) and the receipt names who.
    service.signal(signal.SIGHUP)
    wait_for(lambda: not (ws.dtn / SCAN).exists(), what="the approved prune")
    service.signal(signal.SIGTERM)  # a stop records the tasks this process ran
    assert service.wait() == 0
    receipt = cli("--receipt", SCAN, "--json", config=ws.config_path)
    (entry,) = json.loads(receipt.stdout)
    assert [(a["by"], a["uid"], a["via"]) for a in entry["approvers"]] == [
        (ME, os.geteuid(), "service")
    ]


def test_without_a_service_a_caller_who_is_not_an_approver_is_refused(
    ws: LocalWorkspace,
) -> None:
    action = awaiting_delete(ws)
    set_approval(ws.config_path, approvers=["alice"])
    done = cli("--approve", action, config=ws.config_path, env={"USER": "alice"})
    assert done.returncode == 1
    assert f"{ME} (uid {os.geteuid()}) is not an approver" in done.stderr
    assert action not in decisions(ws)


def test_without_a_service_an_approver_who_owns_the_store_writes_it(ws: LocalWorkspace) -> None:
    action = awaiting_delete(ws)
    set_approval(ws.config_path, approvers=[f"@{pwd_group()}"])
    done = cli("--approve", action, config=ws.config_path)
    assert done.returncode == 0, done.stderr
    assert "written to the store directly (no service running)" in done.stdout
    assert decisions(ws)[action] == ("approve", ME)


def test_taking_a_decision_back_is_a_decision_only_approvers_make(ws: LocalWorkspace) -> None:
    """`--revoke` / `--unreject` travel like every decision: a non-approver is refused and the
    decision stands (they used to write the store directly, whoever ran them)."""
    action = awaiting_delete(ws)
    assert cli("--approve", action, config=ws.config_path).returncode == 0
    set_approval(ws.config_path, approvers=["alice"])
    for flag in ("--revoke", "--unreject"):
        done = cli(flag, action, config=ws.config_path, env={"USER": "alice"})
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"{ME} (uid {os.geteuid()}) is not an approver" in done.stderr
    assert decisions(ws)[action] == ("approve", ME)


def test_a_running_service_records_a_revoke_itself_all_or_nothing(
    ws: LocalWorkspace, start_service
) -> None:  # type: ignore[no-untyped-def]
    action = awaiting_delete(ws)
    set_approval(ws.config_path, approvers=[ME])
    start_service(ws)
    assert cli("--approve", action, config=ws.config_path).returncode == 0
    unknown = "0123456789abcdef"
    bad = cli("--revoke", action, unknown, config=ws.config_path)
    assert bad.returncode == 64, bad.stdout + bad.stderr
    assert f"{unknown}: no decision is recorded for it" in bad.stderr
    assert decisions(ws)[action] == ("approve", ME)  # nothing undone
    done = cli("--revoke", action, config=ws.config_path)
    assert done.returncode == 0, done.stderr
    assert f"revoked the approval of {action} ({SCAN}) as {ME}" in done.stdout
    assert "recorded by the running service" in done.stdout
    assert action not in decisions(ws)
    store = StateStore(ws.state_path, readonly=True)
    try:
        (event,) = [
            e for e in store.events(action_id=action) if e["kind"] == "action.approval_revoked"
        ]
    finally:
        store.close()
    assert event["message"] == f"approval revoked by {ME}"
    assert (event["data"]["uid"], event["data"]["via"]) == (os.geteuid(), "service")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the store to another user")
def test_without_a_service_only_the_store_owner_writes(ws: LocalWorkspace) -> None:
    action = awaiting_delete(ws)  # no `approvers`: the store's owner alone decides
    for path in ws.state_path.parent.iterdir():
        os.chown(path, 65534, -1)  # the store now belongs to another (service) user
    done = cli("--approve", action, config=ws.config_path)
    assert done.returncode == 1
    assert "is not the service user" in done.stderr and "nobody" in done.stderr
    assert "start" in done.stderr
    assert action not in decisions(ws)


def test_a_large_delete_waits_for_a_second_different_approver(ws: LocalWorkspace) -> None:
    """One approver approving twice is still one approver."""
    action = awaiting_delete(ws)
    set_approval(ws.config_path, approvers=[ME], second_approver_over_bytes=1000)
    for _ in range(2):
        done = cli("--approve", action, config=ws.config_path)
        assert done.returncode == 0, done.stderr
        assert f"approvers so far: {ME}" in done.stdout and "second" in done.stdout
    audit = json.loads(cli("--dry-run", "--json", config=ws.config_path).stdout)
    (delete,) = [a for a in audit["actions"] if a["kind"] == "delete"]
    assert delete["id"] == action and not delete["approved"]
    assert f"approved by {ME}" in delete["reason"] and "second" in delete["reason"]
    cli("--reconcile", "--once", config=ws.config_path)
    assert (ws.dtn / SCAN).exists(), "a large delete ran on one approver's word"


def pwd_group() -> str:
    import grp

    return grp.getgrgid(pwd.getpwuid(os.geteuid()).pw_gid).gr_name

"""An approval means exactly what the operator saw: one execution of one planned delete.

Through the real CLI on local endpoints, with two operators (`alice`, `bob`: the OS user name
each command runs as):

- an approval is spent by the delete it approved: a copy a user restores (`cp -p`) after the
  approved prune ran needs a new approval, and each removal leaves its own receipt;
- re-planning in other processes, a changed plan and a last look that could not run do not
  spend it;
- a reject or a hold recorded while the pass is doing its last look (re-hashing the copy it is
  about to delete) prevents the submission, for a fresh delete and for one resumed after a crash;
- two operators acting on one delete: the last decision before submission wins, and both are
  recorded.

The decision during the last look is placed by `tests/service/decision_inject` in the child.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bl931tui.approval_items import PENDING, approval_groups
from bl931tui.readmodel import load_snapshot
from engine.policy import Policy
from engine.state import StateStore
from engine.workspace import LocalWorkspace, create_workspace
from tests.conftest import RunCli

SCAN = "2026/01/scan_0001.h5"
DATA = b"tender x-rays, sulfur K edge" * 200
ACQUIRED = datetime(2026, 1, 1, tzinfo=UTC)
DECIDE = Path(__file__).parents[1] / "service" / "decision_inject"
CRASH = Path(__file__).parents[1] / "service" / "crash_inject"


def beamline(tmp_path: Path) -> LocalWorkspace:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=100_000)
    ws.write_scan(SCAN, DATA, mtime=ACQUIRED)
    return ws


def as_operator(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The child CLI's uid is named `name` (bl931 names operators from the kernel's uid, never
    from `$USER`; the account lookup is renamed by `tests/service/decision_inject`)."""
    monkeypatch.setenv("BL931_TEST_OPERATOR", name)
    hooks = str(Path(__file__).parents[1] / "service" / "decision_inject")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([hooks, os.environ.get("PYTHONPATH", "")]))


def with_hooks(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])
    )


def audit(run_cli: RunCli, ws: LocalWorkspace) -> tuple[int, dict[str, Any]]:
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert done.returncode in (0, 1, 2), done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, doc


def reconcile(run_cli: RunCli, ws: LocalWorkspace) -> None:
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def dtn_prune(doc: dict[str, Any]) -> dict[str, Any] | None:
    found = [a for a in doc["actions"] if a["kind"] == "delete" and a["target"] == "dtn"]
    return found[0] if found else None


def until_prune_awaits(run_cli: RunCli, ws: LocalWorkspace) -> dict[str, Any]:
    """Passes until the dtn prune is planned (copied to cfs and hpss, catalogued)."""
    for _ in range(6):
        action = dtn_prune(audit(run_cli, ws)[1])
        if action is not None:
            return action
        reconcile(run_cli, ws)
    raise AssertionError(f"the dtn prune was never planned: {audit(run_cli, ws)[1]}")


def decide(run_cli: RunCli, ws: LocalWorkspace, flag: str, action_id: str) -> str:
    done = run_cli(flag, action_id, config=ws.config_path)
    assert done.returncode == 0, done.stderr
    return done.stdout


def receipts(run_cli: RunCli, ws: LocalWorkspace) -> list[dict[str, Any]]:
    done = run_cli("--receipt", SCAN, "--json", config=ws.config_path)
    assert done.returncode in (0, 1), done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


def action_events(ws: LocalWorkspace, action_id: str) -> list[dict[str, Any]]:
    store = StateStore(ws.state_path, readonly=True)
    try:
        return store.events(action_id=action_id)
    finally:
        store.close()


def test_an_approval_is_spent_by_the_prune_it_approved(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = beamline(tmp_path)
    prune = until_prune_awaits(run_cli, ws)
    as_operator(monkeypatch, "alice")
    assert "as alice" in decide(run_cli, ws, "--approve", prune["id"])
    reconcile(run_cli, ws)
    assert not (ws.dtn / SCAN).exists(), "the approved prune did not run"
    [first] = receipts(run_cli, ws)
    assert first["approval"]["by"] == "alice"

    # A user restores the scan to reprocess it, with its mtime (`cp -p`): the same bytes, so the
    # same action id as the prune alice approved.
    shutil.copy2(ws.cfs / SCAN, ws.dtn / SCAN)
    for _ in range(2):
        reconcile(run_cli, ws)
        assert (ws.dtn / SCAN).exists(), "the restored copy was deleted on a spent approval"
    code, doc = audit(run_cli, ws)
    again = dtn_prune(doc)
    assert again is not None and again["id"] == prune["id"]
    assert again["requires_approval"] and not again["approved"], again
    assert doc["summary"]["awaiting_approval"] == 1 and code == 2
    text = run_cli("--dry-run", config=ws.config_path).stdout
    assert f"[awaiting approval: {prune['id']}]" in text, text
    store = StateStore(ws.state_path, readonly=True)
    try:  # what the TUI shows: the scan's row, and the approvals screen
        snapshot = load_snapshot(store, Policy.from_config(ws.config()), datetime.now(UTC))
        groups = approval_groups(store, Policy.from_config(ws.config()))
        pending = [i.id for g in groups if g.state == PENDING for i in g.items]
    finally:
        store.close()
    assert pending == [prune["id"]]
    [row] = [r for r in snapshot.rows if r.scan == SCAN]
    assert "awaiting approval" in row.next_text and "approval" in row.states, row
    assert len(receipts(run_cli, ws)) == 1

    as_operator(monkeypatch, "bob")
    assert "as bob" in decide(run_cli, ws, "--approve", prune["id"])
    reconcile(run_cli, ws)
    assert not (ws.dtn / SCAN).exists()

    # Append-only: one receipt per removal, each naming the approval it ran under.
    both = receipts(run_cli, ws)
    assert [r["approval"]["by"] for r in both] == ["alice", "bob"], both
    assert both[0] == first, "the first receipt was rewritten by the second removal"
    assert both[0]["approval"]["submission_id"] != both[1]["approval"]["submission_id"]
    listed = run_cli("--receipt", SCAN, config=ws.config_path).stdout
    assert listed.count(f"Deleted {SCAN} from dtn") == 2, listed
    assert "approval: alice" in listed and "approval: bob" in listed, listed


def test_re_planning_a_new_plan_and_a_failed_last_look_do_not_spend_an_approval(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = beamline(tmp_path)
    prune = until_prune_awaits(run_cli, ws)
    as_operator(monkeypatch, "alice")
    decide(run_cli, ws, "--approve", prune["id"])
    _, before = audit(run_cli, ws)
    assert dtn_prune(before) == {**prune, "approved": True}

    # Another scan arrives: a new plan (new digest), planned in other processes twice.
    ws.write_scan("2026/01/scan_0002.h5", b"another scan", mtime=ACQUIRED)
    for _ in range(2):
        _, doc = audit(run_cli, ws)
        assert doc["plan_digest"] != before["plan_digest"]
        assert dtn_prune(doc) == {**prune, "approved": True}

    # The last look cannot re-read the copy it is about to delete (an I/O error): skipped.
    with monkeypatch.context() as patch:
        with_hooks(patch, DECIDE)
        patch.setenv("BL931_LAST_LOOK_IO_ERROR", "1")
        reconcile(run_cli, ws)
    assert (ws.dtn / SCAN).exists()
    skipped = [e for e in action_events(ws, prune["id"]) if e["kind"] == "delete.recheck_failed"]
    assert skipped and skipped[-1]["data"]["reason_code"] == "endpoint_unknown", skipped

    reconcile(run_cli, ws)  # the same approval, still in force
    assert not (ws.dtn / SCAN).exists()
    [receipt] = receipts(run_cli, ws)
    assert receipt["approval"]["by"] == "alice" and receipt["approval"]["decision"] == "approve"


@pytest.mark.parametrize("interrupted", [False, True], ids=["fresh", "resumed_after_crash"])
@pytest.mark.parametrize("decision", ["reject", "hold"])
def test_a_decision_recorded_during_the_last_look_prevents_the_delete(
    tmp_path: Path,
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
    decision: str,
    interrupted: bool,
) -> None:
    ws = beamline(tmp_path)
    prune = until_prune_awaits(run_cli, ws)
    as_operator(monkeypatch, "alice")
    decide(run_cli, ws, "--approve", prune["id"])
    if interrupted:  # the submission was recorded, then the process died before the mover ran
        with monkeypatch.context() as patch:
            with_hooks(patch, CRASH)
            patch.setenv("BL931_CRASH_AT_DELETE", "prepared")
            done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert done.returncode == 137, done.stderr
        assert (ws.dtn / SCAN).exists()

    with monkeypatch.context() as patch:
        with_hooks(patch, DECIDE)
        patch.setenv("BL931_DECIDE_DURING_LAST_LOOK", decision)
        patch.setenv("BL931_DECIDER", "bob")
        patch.setenv("BL931_DECISION_STORE", str(ws.state_path))
        reconcile(run_cli, ws)

    assert (ws.dtn / SCAN).exists(), f"the delete ran after bob's {decision} was recorded"
    code = {"reject": "rejected", "hold": "on_hold"}[decision]
    skipped = [e for e in action_events(ws, prune["id"]) if e["kind"] == "delete.recheck_failed"]
    assert [e["data"]["reason_code"] for e in skipped][-1:] == [code], skipped
    store = StateStore(ws.state_path, readonly=True)
    try:
        tasks = [t for t in store.tasks() if t.kind == "delete"]
        assert all(t.status in ("withdrawn",) for t in tasks), tasks
        assert len(tasks) == (1 if interrupted else 0)
    finally:
        store.close()
    assert receipts(run_cli, ws) == []

    reconcile(run_cli, ws)  # and it stays so on the next pass
    assert (ws.dtn / SCAN).exists()
    outcome, doc = audit(run_cli, ws)
    assert dtn_prune(doc) is None
    blocked = [b for b in doc["blocked"] if b["kind"] == "delete" and b["endpoint"] == "dtn"]
    assert [b["reason_code"] for b in blocked] == [code], blocked
    assert outcome == 0, doc


def test_an_interrupted_delete_resumes_on_the_approval_it_was_submitted_under(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = beamline(tmp_path)
    prune = until_prune_awaits(run_cli, ws)
    as_operator(monkeypatch, "alice")
    decide(run_cli, ws, "--approve", prune["id"])
    with monkeypatch.context() as patch:  # submission recorded, then death before the mover
        with_hooks(patch, CRASH)
        patch.setenv("BL931_CRASH_AT_DELETE", "prepared")
        done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 137, done.stderr
    store = StateStore(ws.state_path, readonly=True)
    try:
        (task,) = [t for t in store.tasks() if t.kind == "delete"]
    finally:
        store.close()
    assert task.status == "preparing" and task.action_ids == (prune["id"],)

    as_operator(monkeypatch, "service")  # nobody approves again
    reconcile(run_cli, ws)
    assert not (ws.dtn / SCAN).exists(), "the interrupted delete asked for a new approval"
    (receipt,) = receipts(run_cli, ws)
    assert receipt["approval"]["by"] == "alice"
    assert receipt["approval"]["submission_id"] == task.submission_id == receipt["submission_id"]
    store = StateStore(ws.state_path, readonly=True)
    try:
        assert store.count_submissions(prune["id"]) == 1
    finally:
        store.close()


def test_two_operators_the_last_decision_before_submission_wins(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = beamline(tmp_path)
    prune = until_prune_awaits(run_cli, ws)
    as_operator(monkeypatch, "alice")
    decide(run_cli, ws, "--approve", prune["id"])
    as_operator(monkeypatch, "bob")
    assert "rejected" in decide(run_cli, ws, "--reject", prune["id"])
    reconcile(run_cli, ws)
    assert (ws.dtn / SCAN).exists(), "bob's later reject was not applied"
    outcome, doc = audit(run_cli, ws)
    (blocked,) = [b for b in doc["blocked"] if b["endpoint"] == "dtn"]
    assert blocked["reason_code"] == "rejected" and prune["id"] in blocked["reason"]
    assert outcome == 0

    as_operator(monkeypatch, "alice")  # alice decides again, after bob
    decide(run_cli, ws, "--approve", prune["id"])
    reconcile(run_cli, ws)
    assert not (ws.dtn / SCAN).exists()
    [receipt] = receipts(run_cli, ws)
    assert receipt["approval"]["by"] == "alice"
    decisions = [
        (e["kind"], e["data"]["by"], e["scan"])
        for e in action_events(ws, prune["id"])
        if e["kind"] in ("action.approved", "action.rejected")
    ]
    assert [(kind, by) for kind, by, _ in decisions] == [
        ("action.approved", "alice"),
        ("action.rejected", "bob"),
        ("action.approved", "alice"),
    ]
    assert {scan for _, _, scan in decisions} == {SCAN}


def test_reject_refuses_an_id_it_does_not_know(tmp_path: Path, run_cli: RunCli) -> None:
    ws = beamline(tmp_path)
    until_prune_awaits(run_cli, ws)
    done = run_cli("--reject", "0123456789abcdef", config=ws.config_path)
    assert done.returncode == 64
    assert "0123456789abcdef" in done.stderr and "nor in flight" in done.stderr

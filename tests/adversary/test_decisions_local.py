"""Adversarial decision sequences on a local beamline, through the real CLI (issue 11).

Two operators (`alice`, `bob`, `carol`: the kernel's uid renamed by
`tests/service/decision_inject`, see `as_operator`). Each test is a sequence of decisions
an operator could make with `--approve`, `--approve-all`, `--reject`, `--unreject` and
`--revoke`, then passes of `--reconcile --once`; each asserts what docs/safety.md promises.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest

from engine.state import StateStore
from engine.workspace import LocalWorkspace, create_workspace
from tests.cli.test_approvals import (
    ACQUIRED,
    CRASH,
    DATA,
    DECIDE,
    SCAN,
    as_operator,
    audit,
    beamline,
    decide,
    dtn_prune,
    receipts,
    reconcile,
    until_prune_awaits,
    with_hooks,
)
from tests.conftest import RunCli

NEW_DATA = b"rewritten: reprocessed frames, other bytes" * 150
SCANS = [f"2026/01/scan_{n:04d}.h5" for n in range(1, 5)]


def set_approval(ws: LocalWorkspace, line: str) -> None:
    text = ws.config_path.read_text("utf-8")
    assert "[approval]\n" in text
    ws.config_path.write_text(text.replace("[approval]\n", f"[approval]\n{line}\n", 1), "utf-8")


def receipts_of(run_cli: RunCli, ws: LocalWorkspace, scan: str) -> list[dict[str, Any]]:
    done = run_cli("--receipt", scan, "--json", config=ws.config_path)
    assert done.returncode in (0, 1), done.stderr
    out = done.stdout.strip()
    return list(json.loads(out)) if out else []


def test_decisions_an_approval_does_not_license_a_rewritten_scan(
    tmp_path: Any, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice approves the dtn prune of version 1; before any pass runs, the scan is rewritten
    in place (new bytes, new mtime). Promise: the approval is bound to the bytes alice saw, so
    the new version is never deleted on it."""
    ws = beamline(tmp_path)
    prune = until_prune_awaits(run_cli, ws)
    as_operator(monkeypatch, "alice")
    decide(run_cli, ws, "--approve", prune["id"])

    (ws.dtn / SCAN).write_bytes(NEW_DATA)  # a new version, written now
    for _ in range(4):
        reconcile(run_cli, ws)
        assert (ws.dtn / SCAN).read_bytes() == NEW_DATA, "the new version was deleted"
    assert receipts(run_cli, ws) == []
    _, doc = audit(run_cli, ws)
    for action in doc["actions"]:
        if action["kind"] == "delete" and action["scan"] == SCAN:
            assert action["id"] != prune["id"]
            assert not action["approved"], action


def test_decisions_unreject_does_not_bring_back_an_earlier_approval(
    tmp_path: Any, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice approves, bob rejects, bob takes his reject back. Promise (`--unreject`): the
    action awaits approval again — alice's approval, overridden by the reject, is not silently
    back in force."""
    ws = beamline(tmp_path)
    prune = until_prune_awaits(run_cli, ws)
    as_operator(monkeypatch, "alice")
    decide(run_cli, ws, "--approve", prune["id"])
    as_operator(monkeypatch, "bob")
    decide(run_cli, ws, "--reject", prune["id"])
    out = decide(run_cli, ws, "--unreject", prune["id"])
    assert "awaits approval again" in out, out

    _, doc = audit(run_cli, ws)
    again = dtn_prune(doc)
    assert again is not None and again["id"] == prune["id"]
    assert not again["approved"], again
    for _ in range(2):
        reconcile(run_cli, ws)
    assert (ws.dtn / SCAN).exists(), "deleted on an approval a reject had overridden"
    assert receipts(run_cli, ws) == []


def test_decisions_revoke_then_approval_by_someone_else_names_the_new_approver(
    tmp_path: Any, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = beamline(tmp_path)
    prune = until_prune_awaits(run_cli, ws)
    as_operator(monkeypatch, "alice")
    decide(run_cli, ws, "--approve", prune["id"])
    decide(run_cli, ws, "--revoke", prune["id"])
    _, doc = audit(run_cli, ws)
    assert dtn_prune(doc) == {**prune, "approved": False}
    reconcile(run_cli, ws)
    assert (ws.dtn / SCAN).exists(), "the prune ran on a revoked approval"

    as_operator(monkeypatch, "bob")
    decide(run_cli, ws, "--approve", prune["id"])
    reconcile(run_cli, ws)
    assert not (ws.dtn / SCAN).exists()
    (receipt,) = receipts(run_cli, ws)
    assert receipt["approval"]["by"] == "bob", receipt
    assert [a["by"] for a in receipt["approvers"]] == ["bob"], receipt
    # And the spent approval cannot be revoked.
    late = run_cli("--revoke", prune["id"], config=ws.config_path)
    assert late.returncode == 64, late.stdout
    assert "already acted on" in late.stderr


def many_scans(tmp_path: Any) -> LocalWorkspace:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=100_000)
    for n, scan in enumerate(SCANS):
        ws.write_scan(scan, DATA + bytes([n]) * 64, mtime=ACQUIRED)
    return ws


def all_dtn_prunes(run_cli: RunCli, ws: LocalWorkspace) -> dict[str, str]:
    prunes: dict[str, str] = {}
    for _ in range(6):
        _, doc = audit(run_cli, ws)
        prunes = {
            a["scan"]: a["id"]
            for a in doc["actions"]
            if a["kind"] == "delete" and a["target"] == "dtn"
        }
        if len(prunes) == len(SCANS):
            return prunes
        reconcile(run_cli, ws)
    raise AssertionError(f"not every dtn prune was planned: {prunes}")


def test_decisions_a_reject_of_one_scan_in_an_approved_batch(
    tmp_path: Any, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice approves everything with --approve-all --yes; bob rejects one scan of the batch
    before the pass. Only that scan stays; the others carry alice's approval in their receipts."""
    ws = many_scans(tmp_path)
    prunes = all_dtn_prunes(run_cli, ws)
    as_operator(monkeypatch, "alice")
    done = run_cli("--approve-all", "--yes", config=ws.config_path)
    assert done.returncode == 0, done.stderr
    as_operator(monkeypatch, "bob")
    decide(run_cli, ws, "--reject", prunes[SCANS[2]])
    for _ in range(2):
        reconcile(run_cli, ws)
    assert (ws.dtn / SCANS[2]).exists(), "the rejected scan of the batch was deleted"
    for scan in (SCANS[0], SCANS[1], SCANS[3]):
        assert not (ws.dtn / scan).exists(), scan
        (receipt,) = receipts_of(run_cli, ws, scan)
        assert receipt["approval"]["by"] == "alice"
    assert receipts_of(run_cli, ws, SCANS[2]) == []


def test_decisions_a_hold_during_the_last_look_of_a_batch_stops_only_that_scan(
    tmp_path: Any, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four approved prunes; while the pass is doing the last look of the first one, bob
    places a hold on that scan (another connection, as the TUI does). That scan stays; the
    batch's other scans go."""
    ws = many_scans(tmp_path)
    all_dtn_prunes(run_cli, ws)
    as_operator(monkeypatch, "alice")
    assert run_cli("--approve-all", "--yes", config=ws.config_path).returncode == 0
    with monkeypatch.context() as patch:
        with_hooks(patch, DECIDE)
        patch.setenv("BL931_DECIDE_DURING_LAST_LOOK", "hold")
        patch.setenv("BL931_DECIDER", "bob")
        patch.setenv("BL931_DECISION_STORE", str(ws.state_path))
        reconcile(run_cli, ws)
    store = StateStore(ws.state_path, readonly=True)
    try:
        held = set(store.active_holds(datetime.now(UTC)))
    finally:
        store.close()
    assert len(held) == 1, held
    reconcile(run_cli, ws)
    left = {scan for scan in SCANS if (ws.dtn / scan).exists()}
    assert left == held, f"held {held}, still on dtn {left}"


def test_decisions_revoke_of_a_submitted_but_interrupted_delete(
    tmp_path: Any, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete was submitted under alice's approval and the process died before the mover
    ran. alice then runs --revoke. Either the revoke is refused (the approval is spent: the
    delete resumes on it) or, if it is accepted, the delete must not run on it."""
    ws = beamline(tmp_path)
    prune = until_prune_awaits(run_cli, ws)
    as_operator(monkeypatch, "alice")
    decide(run_cli, ws, "--approve", prune["id"])
    with monkeypatch.context() as patch:
        with_hooks(patch, CRASH)
        patch.setenv("BL931_CRASH_AT_DELETE", "prepared")
        done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 137, done.stderr

    revoked = run_cli("--revoke", prune["id"], config=ws.config_path)
    reconcile(run_cli, ws)
    if revoked.returncode == 0:
        assert (ws.dtn / SCAN).exists(), (
            f"--revoke said {revoked.stdout!r}, yet the delete ran on the revoked approval"
        )
    else:
        assert revoked.returncode == 64, revoked.stderr
        assert not (ws.dtn / SCAN).exists()
        (receipt,) = receipts(run_cli, ws)
        assert receipt["approval"]["by"] == "alice"


def test_decisions_second_approver_counts_only_since_the_last_reject(
    tmp_path: Any, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over `second_approver_over_bytes`: alice approving twice is one approver; bob rejects,
    then bob approves: alice's approval from before the reject does not count, so it waits;
    alice approves again and it runs, with both named. A restored copy needs two new ones."""
    ws = beamline(tmp_path)
    set_approval(ws, "second_approver_over_bytes = 1000")
    prune = until_prune_awaits(run_cli, ws)
    as_operator(monkeypatch, "alice")
    decide(run_cli, ws, "--approve", prune["id"])
    run_cli("--approve", prune["id"], config=ws.config_path)  # again: nothing new
    reconcile(run_cli, ws)
    assert (ws.dtn / SCAN).exists(), "one approver was enough over the threshold"

    as_operator(monkeypatch, "bob")
    decide(run_cli, ws, "--reject", prune["id"])
    decide(run_cli, ws, "--approve", prune["id"])
    _, doc = audit(run_cli, ws)
    assert not dtn_prune(doc)["approved"], dtn_prune(doc)  # type: ignore[index]
    reconcile(run_cli, ws)
    assert (ws.dtn / SCAN).exists(), "alice's approval from before bob's reject counted"

    as_operator(monkeypatch, "alice")
    decide(run_cli, ws, "--approve", prune["id"])
    reconcile(run_cli, ws)
    assert not (ws.dtn / SCAN).exists()
    (receipt,) = receipts(run_cli, ws)
    assert sorted(a["by"] for a in receipt["approvers"]) == ["alice", "bob"], receipt

    import shutil

    shutil.copy2(ws.cfs / SCAN, ws.dtn / SCAN)  # restored with cp -p
    decide(run_cli, ws, "--approve", prune["id"])  # alice alone
    for _ in range(2):
        reconcile(run_cli, ws)
    assert (ws.dtn / SCAN).exists(), "the restored copy went on one fresh approval"


def test_decisions_only_configured_approvers_decide(
    tmp_path: Any, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`approvers = ["alice"]`: bob (the same uid renamed, the store's owner) can neither
    approve nor reject nor revoke alice's approval; nothing he tried is in the decision log."""
    ws = beamline(tmp_path)
    set_approval(ws, 'approvers = ["alice"]')
    prune = until_prune_awaits(run_cli, ws)
    as_operator(monkeypatch, "bob")
    for flag in ("--approve", "--reject"):
        done = run_cli(flag, prune["id"], config=ws.config_path)
        assert done.returncode != 0, (flag, done.stdout)
        assert "approver" in done.stderr, done.stderr
    as_operator(monkeypatch, "alice")
    decide(run_cli, ws, "--approve", prune["id"])
    as_operator(monkeypatch, "bob")
    done = run_cli("--revoke", prune["id"], config=ws.config_path)
    assert done.returncode != 0, done.stdout
    with sqlite3.connect(ws.state_path) as conn:
        rows = conn.execute("SELECT decision, decided_by FROM decisions ORDER BY seq").fetchall()
    assert [tuple(r) for r in rows] == [("approve", "alice")], rows
    reconcile(run_cli, ws)
    (receipt,) = receipts(run_cli, ws)
    assert receipt["approval"]["by"] == "alice"


def test_decisions_a_stale_id_of_an_older_version_is_refused(
    tmp_path: Any, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator looked at the plan, the scan was rewritten, then they approve the id they
    saw: it names bytes that no longer exist, so it is a usage error, not a silent approval."""
    ws = beamline(tmp_path)
    prune = until_prune_awaits(run_cli, ws)
    (ws.dtn / SCAN).write_bytes(NEW_DATA)
    reconcile(run_cli, ws)
    as_operator(monkeypatch, "alice")
    done = run_cli("--approve", prune["id"], config=ws.config_path)
    assert done.returncode == 64, done.stdout
    assert prune["id"] in done.stderr
    os.utime(ws.dtn / SCAN)  # still the new version
    reconcile(run_cli, ws)
    assert (ws.dtn / SCAN).read_bytes() == NEW_DATA

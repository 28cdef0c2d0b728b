"""More decision sequences through the real CLI on a local beamline (issue 11): a second
approver taking theirs back, a crash-resumed delete of a scan rewritten meanwhile, and two
operators deciding at the same moment."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.adversary.test_decisions_local import NEW_DATA, set_approval
from tests.cli.test_approvals import (
    CRASH,
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


def test_decisions_a_second_approver_who_revokes_leaves_one(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the threshold, alice and bob approve; alice revokes hers. One approver is left:
    the delete waits."""
    ws = beamline(tmp_path)
    set_approval(ws, "second_approver_over_bytes = 1000")
    prune = until_prune_awaits(run_cli, ws)
    as_operator(monkeypatch, "alice")
    decide(run_cli, ws, "--approve", prune["id"])
    as_operator(monkeypatch, "bob")
    decide(run_cli, ws, "--approve", prune["id"])
    _, doc = audit(run_cli, ws)
    assert dtn_prune(doc)["approved"], dtn_prune(doc)  # type: ignore[index]

    as_operator(monkeypatch, "alice")
    done = run_cli("--revoke", prune["id"], config=ws.config_path)
    assert done.returncode == 0, done.stderr
    _, doc = audit(run_cli, ws)
    assert not dtn_prune(doc)["approved"], dtn_prune(doc)  # type: ignore[index]
    reconcile(run_cli, ws)
    assert (ws.dtn / SCAN).exists(), "a large delete ran on one approver after a revoke"


def test_decisions_a_crash_resumed_delete_of_a_scan_rewritten_meanwhile(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice's approved delete was submitted, the process died before the mover ran; the scan
    is rewritten before the restart. The resumed delete's last look sees other bytes: alice's
    approval (for version 1) does not delete version 2."""
    ws = beamline(tmp_path)
    prune = until_prune_awaits(run_cli, ws)
    as_operator(monkeypatch, "alice")
    decide(run_cli, ws, "--approve", prune["id"])
    with monkeypatch.context() as patch:
        with_hooks(patch, CRASH)
        patch.setenv("BL931_CRASH_AT_DELETE", "prepared")
        done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 137, done.stderr

    (ws.dtn / SCAN).write_bytes(NEW_DATA)
    for _ in range(3):
        reconcile(run_cli, ws)
        assert (ws.dtn / SCAN).exists(), "the resumed delete removed version 2"
        assert (ws.dtn / SCAN).read_bytes() == NEW_DATA
    assert receipts(run_cli, ws) == []


def test_decisions_two_operators_deciding_at_the_same_moment(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice approves and bob rejects in two processes started together (no service: each
    writes the store directly). Whatever order they land in, both are recorded, and the pass
    does what the later one says."""
    ws = beamline(tmp_path)
    prune = until_prune_awaits(run_cli, ws)
    hooks = str(Path(__file__).parents[1] / "service" / "decision_inject")
    procs = []
    for who, flag in (("alice", "--approve"), ("bob", "--reject")):
        env = {
            **os.environ,
            "BL931_TEST_OPERATOR": who,
            "PYTHONPATH": os.pathsep.join([hooks, os.environ.get("PYTHONPATH", "")]),
        }
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bl931tui",
                    "--config",
                    str(ws.config_path),
                    flag,
                    prune["id"],
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        )
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with sqlite3.connect(ws.state_path) as conn:
        rows = conn.execute(
            "SELECT decision, decided_by FROM decisions WHERE action_id = ? ORDER BY seq",
            (prune["id"],),
        ).fetchall()
    assert sorted(rows) == [("approve", "alice"), ("reject", "bob")], rows
    last = rows[-1][0]
    reconcile(run_cli, ws)
    if last == "reject":
        assert (ws.dtn / SCAN).exists(), "the later reject was not applied"
    else:
        assert not (ws.dtn / SCAN).exists(), "the later approval was not applied"
        (receipt,) = receipts(run_cli, ws)
        assert receipt["approval"]["by"] == "alice"

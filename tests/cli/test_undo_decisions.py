"""`--unreject ID…` and `--revoke ID…`: a decision is undone before it is spent, recorded with
who and when, and the action awaits approval again.

Before: a rejection was final (no way back but editing the database) and an approval could not
be withdrawn before the pass that acts on it; both flags were unknown arguments (exit 64).
"""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

from engine.reconciler import os_user
from engine.state import StateStore
from engine.workspace import LocalWorkspace, scan_path, synthetic_scan_bytes


def _gated_delete(run_cli, workspace: LocalWorkspace) -> str:  # type: ignore[no-untyped-def]
    workspace.write_scan(scan_path(1), synthetic_scan_bytes(random.Random(1), 2_000))
    for _ in range(3):
        assert run_cli("--reconcile", "--once", config=workspace.config_path).returncode == 0
    audit = json.loads(run_cli("--dry-run", "--json", config=workspace.config_path).stdout)
    (delete,) = [a for a in audit["actions"] if a["kind"] == "delete" and a["target"] == "dtn"]
    assert delete["requires_approval"] and not delete["approved"]
    return str(delete["id"])


def _decisions(workspace: LocalWorkspace) -> list[tuple[str, str]]:
    """The decisions not withdrawn (spent approvals included), from the append-only log."""
    with sqlite3.connect(workspace.state_path) as conn:
        return conn.execute(
            "SELECT action_id, decision FROM decisions WHERE superseded = 0 ORDER BY seq"
        ).fetchall()


def _events(workspace: LocalWorkspace, kind: str) -> list[str]:
    with sqlite3.connect(workspace.state_path) as conn:
        rows = conn.execute("SELECT message FROM events WHERE kind = ?", (kind,)).fetchall()
    return [r[0] for r in rows]


def test_unreject_puts_a_rejected_prune_back_before_the_operator(  # type: ignore[no-untyped-def]
    run_cli, workspace: LocalWorkspace
) -> None:
    aid = _gated_delete(run_cli, workspace)
    store = StateStore(workspace.state_path)
    try:
        from datetime import UTC, datetime

        store.reject([aid], "someone", datetime.now(UTC))
    finally:
        store.close()
    assert run_cli("--reconcile", "--once", config=workspace.config_path).returncode == 0
    blocked = json.loads(run_cli("--dry-run", "--json", config=workspace.config_path).stdout)
    assert any(b["reason_code"] == "rejected" for b in blocked["blocked"])

    done = run_cli("--unreject", aid, config=workspace.config_path)
    assert done.returncode == 0, done.stderr
    assert f"un-rejected {aid}" in done.stdout and f"as {os_user()}" in done.stdout
    assert "awaits approval again" in done.stdout
    assert _decisions(workspace) == []
    assert _events(workspace, "action.unrejected") == [f"rejection withdrawn by {os_user()}"]
    audit = json.loads(run_cli("--dry-run", "--json", config=workspace.config_path).stdout)
    (again,) = [a for a in audit["actions"] if a["id"] == aid]
    assert again["requires_approval"] and not again["approved"]

    twice = run_cli("--unreject", aid, config=workspace.config_path)
    assert twice.returncode == 64
    assert f"{aid}: no decision is recorded for it" in twice.stderr


def test_revoke_withdraws_an_approval_not_yet_acted_on(  # type: ignore[no-untyped-def]
    run_cli, workspace: LocalWorkspace
) -> None:
    aid = _gated_delete(run_cli, workspace)
    assert run_cli("--approve", aid, config=workspace.config_path).returncode == 0

    wrong = run_cli("--unreject", aid, config=workspace.config_path)
    assert wrong.returncode == 64
    assert f"{aid}: it is approved, not rejected (--revoke withdraws an approval)" in wrong.stderr
    assert _decisions(workspace) == [(aid, "approve")]

    done = run_cli("--revoke", aid, config=workspace.config_path)
    assert done.returncode == 0, done.stderr
    assert f"revoked the approval of {aid}" in done.stdout
    assert _events(workspace, "action.approval_revoked") == [f"approval revoked by {os_user()}"]
    audit = json.loads(run_cli("--dry-run", "--json", config=workspace.config_path).stdout)
    (again,) = [a for a in audit["actions"] if a["id"] == aid]
    assert not again["approved"]


def test_an_approval_already_acted_on_cannot_be_revoked(  # type: ignore[no-untyped-def]
    run_cli, workspace: LocalWorkspace, tmp_path: Path
) -> None:
    aid = _gated_delete(run_cli, workspace)
    assert run_cli("--approve", aid, config=workspace.config_path).returncode == 0
    assert run_cli("--reconcile", "--once", config=workspace.config_path).returncode == 0
    late = run_cli("--revoke", aid, config=workspace.config_path)
    assert late.returncode == 64
    assert f"{aid}: already acted on (succeeded); nothing to revoke" in late.stderr
    assert _decisions(workspace) == [(aid, "approve")]

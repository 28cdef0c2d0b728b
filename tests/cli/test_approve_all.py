"""`--approve-all` shows what it approves and has the count typed back; approving an approved id
says whose approval stands.

Before: `--approve-all` printed the action lines and asked `[y/N]` (a stray `y` approved every
prune), a wrong answer exited 0, and `--approve ID` on an approved id said only "already
approved" without naming who approved it or when.
"""

from __future__ import annotations

import json
import os
import pty
import random
import sqlite3
import subprocess
from datetime import UTC, datetime

from engine.reconciler import os_user
from engine.workspace import LocalWorkspace, scan_path, synthetic_scan_bytes
from tests.conftest import CLI

WHEN = datetime(2026, 1, 5, tzinfo=UTC)


def gated_deletes(run_cli, workspace: LocalWorkspace, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    for n in range(1, count + 1):
        workspace.write_scan(scan_path(n, WHEN), synthetic_scan_bytes(rng, 2_000), mtime=WHEN)
    for _ in range(3):
        assert run_cli("--reconcile", "--once", config=workspace.config_path).returncode == 0
    audit = json.loads(run_cli("--dry-run", "--json", config=workspace.config_path).stdout)
    ids = [a["id"] for a in audit["actions"] if a["requires_approval"] and not a["approved"]]
    assert len(ids) == count, audit["actions"]
    return ids


def approvals(workspace: LocalWorkspace) -> list[tuple[str, str, str]]:
    with sqlite3.connect(workspace.state_path) as conn:
        return conn.execute(
            "SELECT action_id, decided_by, decided_at FROM decisions "
            "WHERE decision = 'approve' AND superseded = 0 ORDER BY seq"
        ).fetchall()


def on_a_terminal(workspace: LocalWorkspace, answer: str) -> subprocess.CompletedProcess[str]:
    """`bl931tui --approve-all` with its stdin on a pseudo-terminal on which `answer` is typed."""
    leader, follower = pty.openpty()
    try:
        os.write(leader, answer.encode())
        return subprocess.run(
            [*CLI, "--config", str(workspace.config_path), "--approve-all"],
            stdin=follower,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        os.close(follower)
        os.close(leader)


def test_approve_all_names_count_bytes_endpoint_and_the_first_scans(  # type: ignore[no-untyped-def]
    run_cli, workspace: LocalWorkspace
) -> None:
    gated_deletes(run_cli, workspace, 12)
    done = run_cli("--approve-all", "--yes", config=workspace.config_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Approve 12 deletes from dtn (24.0 kB):"
    named = [line for line in lines[1:11] if line.startswith("  2026/01/ALS-11234/")]
    assert len(named) == 10, lines
    assert all(line.endswith(" · dtn · 2.0 kB") for line in named)
    assert lines[11] == "  … and 2 more"
    assert len(approvals(workspace)) == 12


def test_approve_all_asks_for_the_count_typed_back_and_a_wrong_answer_approves_nothing(  # type: ignore[no-untyped-def]
    run_cli, workspace: LocalWorkspace
) -> None:
    gated_deletes(run_cli, workspace, 3)
    wrong = on_a_terminal(workspace, "y\n")
    assert "Type 3 to approve these 3 actions (6.0 kB); anything else approves nothing: " in (
        wrong.stdout
    )
    assert wrong.returncode == 1
    assert "Nothing approved: you typed 'y', not 3." in wrong.stderr
    assert approvals(workspace) == []

    right = on_a_terminal(workspace, "3\n")
    assert right.returncode == 0, right.stderr
    assert len(approvals(workspace)) == 3
    assert right.stdout.count("approved ") >= 3


def test_approve_all_without_a_terminal_approves_nothing_and_says_how(  # type: ignore[no-untyped-def]
    run_cli, workspace: LocalWorkspace
) -> None:
    gated_deletes(run_cli, workspace, 2)
    done = run_cli("--approve-all", config=workspace.config_path, input="2\n")
    assert done.returncode == 64
    assert done.stdout.startswith("Approve 2 deletes from dtn (4.0 kB):")
    assert (
        "Nothing approved: --approve-all asks for the count typed back on a terminal, and stdin "
        "is not one; add --yes to approve without asking." in done.stderr
    )
    assert approvals(workspace) == []


def test_approving_an_approved_id_says_whose_approval_stands(  # type: ignore[no-untyped-def]
    run_cli, workspace: LocalWorkspace
) -> None:
    (aid,) = gated_deletes(run_cli, workspace, 1)
    assert run_cli("--approve", aid, config=workspace.config_path).returncode == 0
    ((_, by, at),) = approvals(workspace)
    again = run_cli("--approve", aid, config=workspace.config_path)
    assert again.returncode == 0, again.stderr
    at_words = datetime.fromisoformat(at).isoformat(timespec="seconds")
    assert f"{aid} is already approved (by {by} at {at_words}); nothing new recorded" in (
        again.stdout
    )
    assert by == os_user()
    assert len(approvals(workspace)) == 1

    everything = run_cli("--approve-all", "--yes", config=workspace.config_path)
    assert everything.returncode == 0
    assert "Nothing awaits approval (1 approved, not yet run)." in everything.stdout


def test_the_summary_gives_count_and_bytes_per_kind_and_endpoint() -> None:
    """Mixed approvals (prunes at two endpoints, a recall from tape) are counted and sized
    per kind and endpoint, so an operator sees what each endpoint loses."""
    from bl931tui.approve_all import summary
    from engine.model import Action, ActionKind

    def action(n: int, kind: ActionKind, source: str | None, target: str, size: int) -> Action:
        return Action(f"id{n}", kind, f"2026/01/ALS-1/s{n}.h5", source, target, size, True, "r")

    actions = [
        action(1, ActionKind.DELETE, None, "dtn", 1_000),
        action(2, ActionKind.DELETE, None, "dtn", 2_000),
        action(3, ActionKind.DELETE, None, "cfs", 5_000_000),
        action(4, ActionKind.COPY, "hpss", "cfs", 7_000),
    ]
    lines = summary(actions).splitlines()
    assert lines[:4] == [
        "Approve 4 actions (5.0 MB):",
        "  2 deletes from dtn (3.0 kB)",
        "  1 delete from cfs (5.0 MB)",
        "  1 copy to cfs (7.0 kB)",
    ]
    assert lines[4:] == [
        "  2026/01/ALS-1/s1.h5 · dtn · 1.0 kB",
        "  2026/01/ALS-1/s2.h5 · dtn · 2.0 kB",
        "  2026/01/ALS-1/s3.h5 · cfs · 5.0 MB",
        "  2026/01/ALS-1/s4.h5 · hpss→cfs · 7.0 kB",
    ]

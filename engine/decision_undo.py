"""Undoing an operator's decision before it is spent: un-reject, or revoke an approval.

A rejection holds an action back for as long as the scan stays the same; an approval lets the
next pass run it. Either can be undone until the action runs: the decision's record is removed
and the undo is appended to the audit log (`action.unrejected`, `action.approval_revoked`) with
who and when. The next pass then plans the action as if it had never been decided: it awaits
approval again. An approval whose action was already submitted or done is spent: there is nothing
left to revoke.

Kept apart from the store's decision methods on purpose: one function, so it can follow the
decisions wherever they are kept.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from engine.errors import UsageError
from engine.state import StateStore, iso

Decision = Literal["reject", "approve"]

_PAST = {"reject": "rejected", "approve": "approved"}
_HOW = {"reject": "--unreject withdraws a rejection", "approve": "--revoke withdraws an approval"}
_EVENT = {
    "reject": ("action.unrejected", "rejection withdrawn by {by}"),
    "approve": ("action.approval_revoked", "approval revoked by {by}"),
}


@dataclass(frozen=True, slots=True)
class Undone:
    """One decision taken back: the action, its scan (when known) and what was undone."""

    action_id: str
    scan: str | None
    decision: Decision


def undo_decisions(
    store: StateStore, action_ids: Iterable[str], decision: Decision, *, by: str, now: datetime
) -> list[Undone]:
    """Withdraw `decision` (a rejection or an approval) from each action, all or none.

    Args:
        store: a writable state store.
        action_ids: the actions whose decision is withdrawn.
        decision: which decision they must carry: "reject" (un-reject) or "approve" (revoke).
        by: the operator, recorded with the time in each undo's event.
        now: when.

    Returns:
        What was undone, in the order asked.

    Raises:
        UsageError: naming every id that has no such decision, carries the other one, or whose
            approval is already spent; nothing is undone then.
    """
    ids = list(dict.fromkeys(action_ids))
    kind, message = _EVENT[decision]
    undone: list[Undone] = []
    # Checked and written in one write transaction: the executor's submission of an approved
    # delete (status `submitted`) is either seen here, or happens after the approval is gone,
    # and its last look then skips it (`approval_withdrawn`).
    with store.transaction() as conn:
        problems = [p for aid in ids if (p := _problem(conn, aid, decision)) is not None]
        if problems:
            raise UsageError("nothing undone: " + "; ".join(problems))
        for aid in ids:
            row = conn.execute(
                """SELECT scan FROM actions WHERE id = ?
                   UNION ALL
                   SELECT scan FROM events WHERE action_id = ? AND scan IS NOT NULL
                   LIMIT 1""",
                (aid, aid),
            ).fetchone()
            scan = row[0] if row else None
            conn.execute(
                "DELETE FROM approvals WHERE action_id = ? AND decision = ?", (aid, decision)
            )
            conn.execute(
                """INSERT INTO events(at, level, kind, scan, action_id, message)
                   VALUES (?, 'info', ?, ?, ?, ?)""",
                (iso(now), kind, scan, aid, message.format(by=by)),
            )
            undone.append(Undone(aid, scan, decision))
    return undone


def _problem(conn: sqlite3.Connection, aid: str, decision: Decision) -> str | None:
    """Why `decision` cannot be withdrawn from `aid`, or None."""
    row = conn.execute("SELECT decision FROM approvals WHERE action_id = ?", (aid,)).fetchone()
    if row is None:
        return f"{aid}: no decision is recorded for it"
    if row[0] != decision:
        return f"{aid}: it is {_PAST[row[0]]}, not {_PAST[decision]} ({_HOW[row[0]]})"
    if decision == "approve":
        status = conn.execute("SELECT status FROM actions WHERE id = ?", (aid,)).fetchone()
        if status is not None and status[0] in ("submitted", "succeeded"):
            return f"{aid}: already acted on ({status[0]}); nothing to revoke"
    return None

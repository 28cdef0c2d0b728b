"""Undoing an operator's decision before it is spent: un-reject, or revoke an approval.

A rejection holds an action back for as long as the scan stays the same; an approval lets the
next submission run it. Either can be undone while it stands: the decision's row in the
append-only decision log (`engine/decisions.py`) is marked superseded, with no decision after
it, and the undo is appended to the audit log (`action.unrejected`, `action.approval_revoked`)
with who, when and how it arrived — in one transaction. The next pass then plans the action as
if it had never been decided: it awaits approval again (and, for a large delete, a revoke
restarts the list of approvers, `engine/approvals.py`).

An approval is spent by the submission that used it (`DecisionLog.admit`): there is nothing left
to revoke then. A revoke committed before that submission's transaction is seen by `admit`,
which re-reads the decisions under the same write lock and refuses the action (`not_approved`);
one attempted after it finds the approval spent and is refused, naming the id.

Only approvers undo: the request travels like every other decision (`engine/operator_decisions.py`,
ops `unreject` and `revoke`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from engine.errors import UsageError
from engine.state import FAILED, SUBMITTED, SUCCEEDED, StateStore, iso
from engine.store.events import action_scan, write_events

Decision = Literal["reject", "approve"]

_PAST = {"reject": "rejected", "approve": "approved"}
_HOW = {"reject": "--unreject withdraws a rejection", "approve": "--revoke withdraws an approval"}
UNREJECTED, REVOKED = "action.unrejected", "action.approval_revoked"
_EVENT = {
    "reject": (UNREJECTED, "rejection withdrawn by {by}"),
    "approve": (REVOKED, "approval revoked by {by}"),
}


@dataclass(frozen=True, slots=True)
class Undone:
    """One decision taken back: the action, its scan (when known) and what was undone."""

    action_id: str
    scan: str | None
    decision: Decision


def undo_decisions(
    store: StateStore,
    action_ids: Iterable[str],
    decision: Decision,
    *,
    by: str,
    now: datetime,
    signed: dict[str, Any] | None = None,
) -> list[Undone]:
    """Withdraw the standing `decision` (a rejection or an approval) of each action, all or none.

    Args:
        store: a writable state store.
        action_ids: the actions whose decision is withdrawn.
        decision: which decision they must carry: "reject" (un-reject) or "approve" (revoke).
        by: the operator, recorded with the time in each undo's event.
        now: when.
        signed: recorded in each event's data (the operator's uid, how the request arrived).

    Returns:
        What was undone, in the order asked.

    Raises:
        UsageError: naming every id that has no standing decision, carries the other one, or
            whose approval is already spent; nothing is undone then.
    """
    ids = list(dict.fromkeys(action_ids))
    kind, message = _EVENT[decision]
    data = {"decision": decision, "by": by, "at": iso(now), **(signed or {})}
    undone: list[Undone] = []
    # Checked and written in one write transaction: a submission (which spends an approval
    # under the same lock) is either seen here, or comes after and finds no approval.
    with store.transaction() as conn:
        standing: dict[str, int] = {}
        problems: list[str] = []
        for aid in ids:
            seq, problem = _standing(conn, aid, decision)
            if problem is not None:
                problems.append(problem)
            elif seq is not None:
                standing[aid] = seq
        if problems:
            raise UsageError("nothing undone: " + "; ".join(problems))
        for aid in ids:
            scan = action_scan(conn, aid, from_events=True)
            conn.execute("UPDATE decisions SET superseded = 1 WHERE seq = ?", (standing[aid],))
            write_events(conn, [(now, "info", kind, scan, aid, message.format(by=by), data)])
            undone.append(Undone(aid, scan, decision))
    return undone


def _standing(
    conn: sqlite3.Connection, aid: str, decision: Decision
) -> tuple[int | None, str | None]:
    """(the seq of the standing decision to withdraw, None) or (None, why it cannot be)."""
    row = conn.execute(
        """SELECT seq, decision, spent_by FROM decisions
           WHERE action_id = ? AND superseded = 0 ORDER BY seq DESC LIMIT 1""",
        (aid,),
    ).fetchone()
    if row is None:
        return None, f"{aid}: no decision is recorded for it"
    seq, recorded, spent_by = row
    if recorded != decision:
        return None, f"{aid}: it is {_PAST[recorded]}, not {_PAST[decision]} ({_HOW[recorded]})"
    if spent_by is not None:
        status = conn.execute("SELECT status FROM actions WHERE id = ?", (aid,)).fetchone()
        acted = status is not None and status[0] in (SUBMITTED, SUCCEEDED, FAILED)
        how = status[0] if acted else f"its approval spent by submission {spent_by}"
        return None, f"{aid}: already acted on ({how}); nothing to revoke"
    return int(seq), None

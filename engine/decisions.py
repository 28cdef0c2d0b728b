"""Operator decisions on actions: an append-only log, the decision in force, spent approvals.

Operators approve or reject actions by id (an id hashes the kind, the scan, the version's
checksum, the source and the target, so a decision never carries over to other bytes). Every
decision is a row of the `decisions` log, written by whichever process the operator used (CLI,
TUI), and an `action.approved` / `action.rejected` event.

*The decision in force* for an action is its latest decision, except an approval that has been
spent. An approval covers **one execution**: it is spent by the submission that carries the
action (`admit`, inside the transaction that records the submission), so a later action with the
same id — the same bytes restored by a user after the approved prune removed them — waits for a
new approval. While the submission that spent it is still open (the task is being prepared or
runs, the action in it), the approval stays in force for that submission only: a delete
interrupted by a crash is resubmitted under the same submission id on the approval it was
submitted under. An approval comes back (`refund_unused`) only when its submission is known to
have removed nothing and never will: an interrupted delete that is withdrawn, or whose local
task was lost, with a fresh listing showing every file still there (no receipt for it).
Re-verifying, re-planning (in any process) or a changed plan never spend an approval.

A reject is never spent: it stands until a later approval. Holds are checked with decisions.

*At submission* (`admit`), decisions and holds are read again inside the write transaction that
records the submission, so a reject or hold recorded while the pass was doing its last looks
(minutes, re-hashing a large copy) prevents the submission; one recorded after it is committed
is a later decision — its own event — and changes neither the submission nor its receipt, which
names the approval spent by the submission (`spent_by`).

The `approvals` view shows the decisions in force with the columns of the table it replaced,
for readers such as the TUI.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.model import Action, ActionKind
from engine.store.connection import iso, parse_time
from engine.store.events import action_scan, write_events

if TYPE_CHECKING:
    from engine.store import StateStore

APPROVE, REJECT = "approve", "reject"
PAST = {APPROVE: "approved", REJECT: "rejected"}

# Reason codes of an action refused at submission (`delete.recheck_failed` events).
REJECTED, ON_HOLD, NOT_APPROVED = "rejected", "on_hold", "not_approved"

_OLD_SCHEMA_IN_FORCE = """
    SELECT ap.* FROM approvals ap
    WHERE ap.decision = 'reject' OR coalesce((
        SELECT t.status IN ('preparing', 'active') FROM task_items i
        JOIN tasks t ON t.submission_id = i.submission_id
        WHERE i.action_id = ap.action_id AND t.created_at >= ap.decided_at
        ORDER BY t.created_at DESC, t.rowid DESC LIMIT 1), 1)
"""

_CHUNK = 500  # ids per `IN (…)` query (well under SQLite's variable limit)


@dataclass(frozen=True, slots=True)
class Decision:
    """One operator decision on one action, as the log keeps it."""

    seq: int
    action_id: str
    decision: str  # approve | reject
    by: str
    at: datetime
    note: str = ""
    spent_by: str | None = None  # the submission id that used this approval
    spent_at: datetime | None = None

    def as_receipt(self) -> dict[str, Any]:
        """The `approval` of a receipt: who decided and when, and the submission that used it."""
        return {
            "decision": self.decision,
            "by": self.by,
            "at": iso(self.at),
            "submission_id": self.spent_by,
            "spent_at": iso(self.spent_at),
        }


@dataclass(frozen=True, slots=True)
class Refused:
    """An action not submitted because of a decision or hold read at submission."""

    action: Action
    code: str  # REJECTED | ON_HOLD | NOT_APPROVED
    why: str


def _decision(row: sqlite3.Row) -> Decision:
    return Decision(
        seq=int(row["seq"]),
        action_id=row["action_id"],
        decision=row["decision"],
        by=row["decided_by"],
        at=parse_time(row["decided_at"]) or datetime.min,
        note=row["note"],
        spent_by=row["spent_by"],
        spent_at=parse_time(row["spent_at"]),
    )


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def removes_bytes(action: Action) -> bool:
    """A delete, or a copy over a verified older version (a replace): holds stop both."""
    return action.kind is ActionKind.DELETE or (
        action.kind is ActionKind.COPY and action.replaces is not None
    )


class DecisionLog:
    """The `decisions` log of one state store."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    # ---- writing ---------------------------------------------------------------------------
    def record(
        self,
        action_ids: Iterable[str],
        decision: str,
        by: str,
        now: datetime,
        note: str = "",
        *,
        scans: Mapping[str, str] | None = None,
    ) -> None:
        """Append one decision per action (it supersedes the action's earlier ones) and its
        event. A decision on an action in flight is recorded too, for later executions.

        Args:
            scans: action id → scan, for the events of actions the service has not recorded
                (an id from a fresh dry run); otherwise the scan comes from `actions`, or from
                the action's earlier events (a rejected action is no longer planned).
        """
        if decision not in PAST:
            raise ValueError(f"unknown decision {decision!r}")
        ids = list(dict.fromkeys(action_ids))
        past = PAST[decision]
        message = f"{past} by {by}" + (f": {note}" if note else "")
        data = {"decision": decision, "by": by, "at": iso(now)}
        with self.store.transaction() as conn:
            conn.executemany(
                "UPDATE decisions SET superseded = 1 WHERE action_id = ? AND superseded = 0",
                [(aid,) for aid in ids],
            )
            conn.executemany(
                """INSERT INTO decisions(action_id, decision, decided_by, decided_at, note)
                   VALUES (?,?,?,?,?)""",
                [(aid, decision, by, iso(now), note) for aid in ids],
            )
            write_events(
                conn,
                [
                    (
                        now,
                        "info",
                        f"action.{past}",
                        action_scan(conn, aid, (scans or {}).get(aid), from_events=True),
                        aid,
                        message,
                        data,
                    )
                    for aid in ids
                ],
            )

    # ---- reading ---------------------------------------------------------------------------
    def in_force(self) -> dict[str, Decision]:
        """action id → the decision in force (see the module docstring)."""
        store = self.store
        if not store.has_table("decisions"):
            # A read-only store at an older schema (an audit run before the service migrated
            # it): an approval a task carried after it was given and that has finished is
            # spent, as the migration will record it.
            rows = store.connection().execute(_OLD_SCHEMA_IN_FORCE)
            return {
                row["action_id"]: Decision(
                    0,
                    row["action_id"],
                    row["decision"],
                    row["decided_by"],
                    parse_time(row["decided_at"]) or datetime.min,
                    row["note"],
                )
                for row in rows
            }
        rows = store.connection().execute("SELECT * FROM approvals")
        return {row["action_id"]: _decision(row) for row in rows}

    def latest(self, action_ids: Iterable[str]) -> dict[str, Decision]:
        """action id → its latest decision, spent or not."""
        out: dict[str, Decision] = {}
        conn = self.store.connection()
        for chunk in _chunks(list(action_ids)):
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(
                f"SELECT * FROM decisions WHERE superseded = 0 AND action_id IN ({marks})", chunk
            ):
                out[row["action_id"]] = _decision(row)
        return out

    def history(self, action_id: str) -> list[Decision]:
        """Every decision on one action, oldest first."""
        rows = self.store.connection().execute(
            "SELECT * FROM decisions WHERE action_id = ? ORDER BY seq", (action_id,)
        )
        return [_decision(row) for row in rows]

    def spent_by(self, submission_id: str | None, action_id: str) -> Decision | None:
        """The approval a submission used for an action (the latest, if it used several)."""
        if submission_id is None or not self.store.has_table("decisions"):
            return None
        row = (
            self.store.connection()
            .execute(
                """SELECT * FROM decisions WHERE spent_by = ? AND action_id = ?
                   ORDER BY seq DESC LIMIT 1""",
                (submission_id, action_id),
            )
            .fetchone()
        )
        return _decision(row) if row else None

    # ---- at submission ---------------------------------------------------------------------
    def admit(
        self, actions: Sequence[Action], submission_id: str, now: datetime
    ) -> tuple[list[Action], list[Refused]]:
        """Which actions may be submitted under `submission_id` now; spends their approvals.

        Call it inside the write transaction that records the submission (`BEGIN IMMEDIATE`
        holds the write lock, so no decision can be committed between this read and the
        submission's record). Decisions and holds are read afresh, not from the plan:

        - the latest decision a reject → refused (`rejected`), whatever the policy;
        - a delete or replace of a scan on hold → refused (`on_hold`);
        - an action that needs approval is admitted only on an approval not spent by another
          submission (one spent by this same submission: a resumed delete); it is spent now.
        """
        conn = self.store.connection()
        if not conn.in_transaction:
            raise RuntimeError("admit() must run inside the submission's transaction")
        latest = self.latest([a.id for a in actions])
        holds = self.store.active_holds(now)
        admitted: list[Action] = []
        refused: list[Refused] = []
        spend: list[int] = []
        for action in actions:
            decision = latest.get(action.id)
            hold = holds.get(action.scan)
            if decision is not None and decision.decision == REJECT:
                refused.append(
                    Refused(action, REJECTED, f"rejected by {decision.by} at {iso(decision.at)}")
                )
            elif hold is not None and removes_bytes(action):
                refused.append(Refused(action, ON_HOLD, f"held by {hold.placed_by}: {hold.reason}"))
            elif action.requires_approval and (
                decision is None or decision.spent_by not in (None, submission_id)
            ):
                why = "it awaits approval"
                if decision is not None:
                    why = (
                        f"the approval by {decision.by} was spent by submission "
                        f"{decision.spent_by}; a new approval is needed"
                    )
                refused.append(Refused(action, NOT_APPROVED, why))
            else:
                admitted.append(action)
                if action.requires_approval and decision is not None and not decision.spent_by:
                    spend.append(decision.seq)
        conn.executemany(
            "UPDATE decisions SET spent_by = ?, spent_at = ? WHERE seq = ?",
            [(submission_id, iso(now), seq) for seq in spend],
        )
        return admitted, refused

    def refund_unused(self, submission_id: str, action_ids: Iterable[str]) -> int:
        """Return the approvals a submission spent on actions it removed nothing of.

        Only for a submission that will never run those actions (withdrawn, or its task lost)
        and left no receipt for them (no file confirmed removed). Returns how many came back.
        """
        with self.store.transaction() as conn:
            cur = conn.executemany(
                """UPDATE decisions SET spent_by = NULL, spent_at = NULL
                   WHERE spent_by = ? AND action_id = ? AND NOT EXISTS (
                     SELECT 1 FROM deletions d WHERE d.submission_id = ? AND d.action_id = ?)""",
                [(submission_id, aid, submission_id, aid) for aid in action_ids],
            )
            return int(cur.rowcount)

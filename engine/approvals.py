"""Who approved an action: every approver, in order, and the second-approver rule.

Each decision an operator makes on an action is also written as a `decision.signed` event
(decision, the kernel-resolved name and uid, and how it arrived), in the same transaction as
the decision itself. The events table is append-only, so the list of approvals of an action
can always be read back — for the receipt of the delete they licensed, and for
`[approval] second_approver_over_bytes`, under which a delete (or replace) of more bytes than
that runs only once two *different* approvers approved it.

An approval counts for one execution: the list restarts after a rejection, a revoked approval
and after each submission of the action (a restored copy deleted again needs new approvals).

*What licensed a delete* is recorded when its task is persisted, before the mover touches a
file: a `delete.licensed` event per delete, in the transaction that records the submission and
spends its approval (`record_licences`), names that approval and every approver. The receipt
reads its approvers from it (`approvals_for(at_submission=True, submission_id=…)`), so a delete
cut by a crash before the mover answered (no `delete.submitted`) and then rejected or revoked
is still receipted, for what it removed, under the approvals it ran on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.decisions import DecisionLog
from engine.model import Action, ActionKind, Plan
from engine.operators import Operator
from engine.state import StateStore, iso
from engine.store.events import action_scan, write_events

if TYPE_CHECKING:
    from engine.recorder import Recorder

SIGNED = "decision.signed"
# A rejection, or a revoked approval (engine/decision_undo.py), restarts the list.
_RESTARTS = ("action.rejected", "action.approval_revoked")
_SUBMITTED = ("delete.submitted", "copy.replace_submitted")
LICENSED = "delete.licensed"  # what licensed a delete, recorded as its task is persisted
_EVENT_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Approval:
    """One approver's approval of an action.

    Attributes:
        by: the approver's name (from the kernel's uid, via passwd).
        uid: their uid; None for an approval recorded without one (older records).
        at: when it was recorded.
        via: `service` (the decision socket), `direct` (the service user's own command) or
            `store` (an approval recorded before approvers were tracked).
    """

    by: str
    uid: int | None
    at: datetime
    via: str

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "uid": self.uid, "at": iso(self.at), "via": self.via}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Approval:
        return cls(
            str(data["by"]), data.get("uid"), datetime.fromisoformat(data["at"]), data["via"]
        )


def sign(
    conn: sqlite3.Connection,
    action_ids: Iterable[str],
    decision: str,
    operator: Operator,
    now: datetime,
    via: str,
) -> None:
    """Append a `decision.signed` event per action, inside the decision's own transaction."""
    data = {"decision": decision, "by": operator.name, "uid": operator.uid, "via": via}
    write_events(
        conn,
        [
            (
                now,
                "info",
                SIGNED,
                action_scan(conn, aid),
                aid,
                f"{decision} signed by {operator.describe()} ({via})",
                data,
            )
            for aid in action_ids
        ],
    )


def record_licences(
    store: StateStore,
    recorder: Recorder,
    deletes: Iterable[Action],
    submission_id: str,
    now: datetime,
) -> None:
    """A `delete.licensed` event per delete of a submission: the approval it spent and every
    approver. Call it in the transaction that records the submission, after
    `DecisionLog.admit`: no file is touched before it is committed, and a decision recorded
    later (a reject while the task runs, or after a crash cut it) does not change it."""
    decisions = DecisionLog(store)
    for action in deletes:
        decision = decisions.spent_by(submission_id, action.id)
        approvers = [a.to_json() for a in approvals_for(store, action.id)]
        who = f"the approval by {decision.by}" if decision else "no approval (none needed)"
        recorder.event(
            now,
            LICENSED,
            f"delete at {action.target} licensed by {who} (submission {submission_id})",
            scan=action.scan,
            action_id=action.id,
            data={
                "submission_id": submission_id,
                "approval": decision.as_receipt() if decision else None,
                "approvers": approvers,
            },
        )


def approvals_for(
    store: StateStore,
    action_id: str,
    *,
    at_submission: bool = False,
    submission_id: str | None = None,
) -> list[Approval]:
    """The distinct approvers of an action's current execution, first approval first.

    Args:
        store: the state store.
        action_id: the action.
        at_submission: the approvals in force when the action was last submitted (for its
            receipt) rather than those that would license its next submission.
        submission_id: with `at_submission`, the submission whose approvers are wanted: those
            its `delete.licensed` event recorded, whatever was decided since (a store from
            before that event existed: the approvals in force at its `delete.submitted`).
    """
    current: dict[str, Approval] = {}
    submitted: dict[str, Approval] | None = None
    licensed: list[Approval] | None = None
    signed_any = False
    for event in store.events(action_id=action_id, limit=_EVENT_LIMIT):
        kind, data = event["kind"], event.get("data") or {}
        if kind == LICENSED and isinstance(data, dict):
            if submission_id is not None and data.get("submission_id") == submission_id:
                licensed = [Approval.from_json(a) for a in data.get("approvers") or ()]
        elif kind in _RESTARTS:
            current = {}
        elif kind in _SUBMITTED:
            # A resubmission of the same execution (after a crash) keeps what licensed it.
            submitted = current or submitted or {}
            current = {}
        elif kind == SIGNED and isinstance(data, dict):
            signed_any = True
            if data.get("decision") == "reject":
                current = {}
            elif data.get("decision") == "approve" and data.get("by"):
                name = str(data["by"])
                at = datetime.fromisoformat(event["at"])
                current.setdefault(name, Approval(name, data.get("uid"), at, str(data["via"])))
    if at_submission and licensed is not None:
        return licensed
    chosen = submitted if at_submission and submitted is not None else current
    if chosen or signed_any:
        return list(chosen.values())
    decision = store.decisions().get(action_id)  # recorded without a signature
    if decision is not None and decision[0] == "approve":
        return [Approval(decision[1], None, decision[2], "store")]
    return []


def needs_second_approver(
    kind: ActionKind, replaces: str | None, size: int, over: int | None
) -> bool:
    """Whether a delete (or a replace, which removes bytes too) needs two approvers."""
    removes = kind is ActionKind.DELETE or replaces is not None
    return over is not None and removes and size > over


def require_second_approver(plan: Plan, store: StateStore, over: int | None) -> Plan:
    """The plan with each large approved delete back to awaiting approval until a second,
    different approver has approved it too (its reason says who approved so far)."""
    if over is None:
        return plan
    changed = False
    actions = []
    for action in plan.actions:
        if (
            action.requires_approval
            and action.approved
            and needs_second_approver(action.kind, action.replaces, action.bytes, over)
        ):
            approvers = approvals_for(store, action.id)
            if len(approvers) < 2:
                names = ", ".join(a.by for a in approvers) or "nobody yet"
                reason = (
                    f"{action.reason} [approved by {names}; over {over} bytes a second, "
                    "different approver must approve too]"
                )
                action = action._replace(approved=False, reason=reason)
                changed = True
        actions.append(action)
    return replace(plan, actions=tuple(actions)) if changed else plan

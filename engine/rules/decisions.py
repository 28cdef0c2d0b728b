"""The gate of one action: operator decisions and recorded failures.

A rejected action is not planned (`rejected`; approving it overrides the reject). A failed action
waits: for a person when the failure was not transient (`needs_attention` or `failed`, until an
operator retries it), or for its back-off (`backing_off`). Otherwise it is allowed, approved if
an operator approved its id.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from engine.model import ActionKind, Failure, Scan, action_id
from engine.rules.facts import Case
from engine.rules.reasons import ReasonCode


def gate(
    decisions: Mapping[str, str],
    failures: Mapping[str, Failure],
    now: datetime,
    scan: Scan,
    case: Case,
    kind: ActionKind,
    source: str | None,
    target: str | None,
) -> tuple[bool, bool]:
    """Whether the action may be planned, and whether an operator approved it.

    Args:
        decisions: action id → "approve" or "reject" (the latest decision counts).
        failures: action id → its last failure.
        now: the pass's time, for back-off.
        scan: the scan, whose id and checksum make the action's id.
        case: the scan's case, which a refused action is blocked in.
        kind, source, target: the action.

    Returns:
        (allowed, approved).
    """
    aid = action_id(kind, scan.id, scan.checksum, source, target)
    decision = decisions.get(aid)
    if decision == "reject":
        case.block(
            kind,
            target,
            ReasonCode.REJECTED,
            f"rejected by an operator (approving {aid} overrides it)",
        )
        return False, False
    failure = failures.get(aid)
    if failure is not None:
        if failure.retry_at is None:
            code = (
                ReasonCode.NEEDS_ATTENTION
                if failure.error_class.value == "needs_human"
                else ReasonCode.FAILED
            )
            case.block(kind, target, code, f"{failure.message} (retry it to try again)")
            return False, False
        if now < failure.retry_at:
            case.block(
                kind,
                target,
                ReasonCode.BACKING_OFF,
                f"retrying after {failure.retry_at.isoformat(timespec='seconds')}: "
                f"{failure.message}",
            )
            return False, False
    return True, decision == "approve"

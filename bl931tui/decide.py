"""`--approve`, `--approve-all`, `--reject`, `--unreject` and `--revoke`: operator decisions on
the command line.

Each decision goes to the running service, which names the caller from the kernel and appends
it to the decision log (`engine/decisions.py`; without a service, the store's owner writes it
directly: `bl931tui/decision_channel.py`); the last decision recorded before an action is submitted is the one it
runs under. An approval covers one execution: once the delete it approved has been submitted,
the same action needs a new approval. A reject stands until a later approval overrides it.

Ids are checked against a fresh plan (a dry run), so a mistyped or stale id is a usage error
naming it, never a silent no-op:

- `--approve` takes actions awaiting approval, and actions an operator rejected (the approval
  overrides the reject);
- `--reject` takes any planned action, and actions in flight: a reject of a delete in flight
  makes the service cancel its running task at the next poll (`engine/withdrawn_deletes.py`:
  what it removed by then keeps its receipt, naming the approval it ran under; a task already
  finished is too late); it is recorded as its own event and stands for any later execution
  of the same action;
- `--unreject` / `--revoke` take back a standing rejection / an approval not yet spent
  (`engine/decision_undo.py`): checked by whoever records them, all or nothing, each bad id
  named (exit 64). The action then awaits approval again.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from engine.config import Config
from engine.decisions import REJECT, Decision, DecisionLog
from engine.errors import UsageError
from engine.model import Action, ActionKind, InFlight, Plan
from engine.operator_decisions import DecisionResult


def _plan(config: Config) -> tuple[Plan, dict[str, Decision], datetime]:
    """The current plan, action id → the decision in force (approval or reject), and now."""
    from bl931tui.session import readonly_reconciler

    with readonly_reconciler(config) as reconciler:
        plan = reconciler.dry_run()
        now = reconciler.clock()
        in_force = DecisionLog(reconciler.store).in_force()
    return plan, in_force, now


def _rejects(in_force: dict[str, Decision]) -> dict[str, tuple[str, str]]:
    """action id → (by, at) of the rejects in force."""
    return {aid: _by_at(d) for aid, d in in_force.items() if d.decision == REJECT}


def _by_at(decision: Decision) -> tuple[str, str]:
    return decision.by, decision.at.isoformat(timespec="seconds")


def _unknown(ids: list[str], what: str) -> UsageError:
    return UsageError(
        f"{what}: {', '.join(ids)} "
        "(run --dry-run to see the current ids; ids change when a scan changes)"
    )


def _send(
    config: Config, op: str, ids: list[str], now: datetime, scans: dict[str, str]
) -> DecisionResult:
    """Through the running service (which names the caller from the kernel), or written
    directly by the store's owner when none runs (`bl931tui/decision_channel.py`)."""
    from bl931tui.decision_channel import decide
    from engine.operator_decisions import DecisionRequest

    labels = tuple(sorted((aid, scan) for aid, scan in scans.items() if aid in ids))
    return decide(config, DecisionRequest(op, tuple(ids), scans=labels), clock=lambda: now)


def approve(config: Config, args: argparse.Namespace) -> int:
    from bl931tui import approve_all
    from bl931tui.decision_channel import recorded_where

    plan, in_force, now = _plan(config)
    rejected = _rejects(in_force)
    gated = {a.id: a for a in plan.actions if a.requires_approval and not a.approved}
    approved_already = {a.id for a in plan.actions if a.requires_approval and a.approved}
    overriding: list[str] = []
    if args.approve_all:
        chosen = list(gated.values())
        if not chosen:
            waiting = (
                f" ({len(approved_already)} approved, not yet run)" if approved_already else ""
            )
            print(f"Nothing awaits approval{waiting}.")
            return 0
        print(approve_all.summary(chosen), flush=True)
        if not args.yes:
            try:
                approve_all.confirm(chosen)
            except approve_all.NotConfirmed as exc:
                print(str(exc), file=sys.stderr)
                return 1
    else:
        known = gated.keys() | approved_already | rejected.keys()
        unknown = [aid for aid in args.approve if aid not in known]
        if unknown:
            raise _unknown(unknown, "not awaiting approval in the current plan")
        chosen = [gated[aid] for aid in args.approve if aid in gated]
        overriding = [aid for aid in args.approve if aid in rejected and aid not in gated]
        for aid in dict.fromkeys(args.approve):
            if aid in approved_already:
                standing = in_force.get(aid)
                whose = " (by {} at {})".format(*_by_at(standing)) if standing else ""
                print(f"{aid} is already approved{whose}; nothing new recorded")
    ids = [a.id for a in chosen] + overriding
    if not ids:
        return 0
    result = _send(config, "approve", ids, now, {a.id: a.scan for a in plan.actions})
    for action in chosen:
        print(f"approved {action.id} ({action.kind.value} {action.scan}) as {result.by}")
        print("  " + approvers_words(config, action, result.approvals.get(action.id, [])))
    for aid in overriding:
        by, at = rejected[aid]
        print(f"approved {aid} as {result.by}, over the reject by {by} at {at}")
    print(f"({recorded_where(result)})")
    return 0


def approvers_words(config: Config, action: Action, names: list[str]) -> str:
    """`approvers so far: alice` and, for a large delete, whether it still waits for a second."""
    from engine.approvals import needs_second_approver

    words = f"approvers so far: {', '.join(names) or '—'}"
    over = config.approval.second_approver_over_bytes
    if needs_second_approver(action.kind, action.replaces, action.bytes, over) and len(names) < 2:
        words += f"; over {over} bytes it runs only once a second, different approver approves"
    return words


def reject(config: Config, args: argparse.Namespace) -> int:
    from bl931tui.decision_channel import recorded_where

    plan, in_force, now = _plan(config)
    rejected = _rejects(in_force)
    planned: dict[str, Action] = {a.id: a for a in plan.actions}
    flying: dict[str, InFlight] = {f.action_id: f for f in plan.in_flight}
    unknown = [
        aid
        for aid in args.reject
        if aid not in planned and aid not in flying and aid not in rejected
    ]
    if unknown:
        raise _unknown(unknown, "not in the current plan, nor in flight")
    scans = {a.id: a.scan for a in planned.values()} | {
        f.action_id: f.scan for f in flying.values()
    }
    result = _send(config, "reject", list(args.reject), now, scans)
    user = result.by
    for aid in args.reject:
        if aid in planned:
            action = planned[aid]
            print(f"rejected {aid} ({action.kind.value} {action.scan}) as {user}")
        elif aid in flying:
            f = flying[aid]
            print(
                f"rejected {aid} ({f.kind.value} {f.scan}) as {user}; it was already submitted: "
                + (
                    "the service cancels its running task at the next poll (what it removed "
                    "before the cancel took effect gets a receipt naming the approval it ran "
                    "under, the rest stays; a task already finished keeps its receipt and this "
                    "reject is recorded as too late)"
                    if f.kind is ActionKind.DELETE
                    else "this reject cannot stop it"
                )
                + ". The reject stands for any later execution of the same action"
            )
        else:
            print(f"rejected {aid} as {user} (it was rejected already by {rejected[aid][0]})")
    print(f"({recorded_where(result)})")
    return 0


def undo(config: Config, args: argparse.Namespace) -> int:
    """`--unreject` / `--revoke`: withdraw standing decisions, through the decision channel."""
    from bl931tui.decision_channel import decide, recorded_where
    from engine.operator_decisions import DecisionRequest

    if not config.state.path.exists():
        raise UsageError("there is no state store yet, so no decision to undo")
    op, given = ("unreject", args.unreject) if args.unreject else ("revoke", args.revoke)
    ids = tuple(dict.fromkeys(given))
    result = decide(config, DecisionRequest(op, ids))
    what = "un-rejected" if op == "unreject" else "revoked the approval of"
    for aid in ids:
        scan = result.scans.get(aid)
        print(f"{what} {aid}{f' ({scan})' if scan else ''} as {result.by}")
    print("The next pass plans them again: each awaits approval again.")
    print(f"({recorded_where(result)})")
    return 0

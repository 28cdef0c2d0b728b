"""`--approve`, `--approve-all` and `--reject`: operator decisions on the command line.

Each decision is appended to the decision log with the OS user who ran the command
(`engine/decisions.py`); the last decision recorded before an action is submitted is the one it
runs under. An approval covers one execution: once the delete it approved has been submitted,
the same action needs a new approval. A reject stands until a later approval overrides it.

Ids are checked against a fresh plan (a dry run), so a mistyped or stale id is a usage error
naming it, never a silent no-op:

- `--approve` takes actions awaiting approval, and actions an operator rejected (the approval
  overrides the reject);
- `--reject` takes any planned action, and actions in flight: a reject that comes after the
  submission cannot stop it (the receipt keeps naming the approval it ran under), but it is
  recorded as its own event and stands for any later execution of the same action.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from engine.config import Config
from engine.decisions import APPROVE, REJECT, DecisionLog
from engine.errors import UsageError
from engine.model import Action, InFlight, Plan


def _plan(config: Config) -> tuple[Plan, dict[str, tuple[str, str]], datetime]:
    """The current plan, action id → (by, at) of the rejects in force, and the time now."""
    from bl931tui.session import readonly_reconciler

    with readonly_reconciler(config) as reconciler:
        plan = reconciler.dry_run()
        now = reconciler.clock()
        rejected = {
            aid: (d.by, d.at.isoformat(timespec="seconds"))
            for aid, d in DecisionLog(reconciler.store).in_force().items()
            if d.decision == REJECT
        }
    return plan, rejected, now


def _unknown(ids: list[str], what: str) -> UsageError:
    return UsageError(
        f"{what}: {', '.join(ids)} "
        "(run --dry-run to see the current ids; ids change when a scan changes)"
    )


def approve(config: Config, args: argparse.Namespace) -> int:
    from bl931tui.render import render_ids, size
    from bl931tui.session import writable_store
    from engine.reconciler import os_user

    plan, rejected, now = _plan(config)
    gated = {a.id: a for a in plan.actions if a.requires_approval and not a.approved}
    approved_already = {a.id for a in plan.actions if a.requires_approval and a.approved}
    overriding: list[str] = []
    if args.approve_all:
        chosen = list(gated.values())
        if not chosen:
            print("Nothing awaits approval.")
            return 0
        print(render_ids(chosen))
        total = sum(a.bytes for a in chosen)
        question = f"Approve these {len(chosen)} actions ({size(total)})? [y/N] "
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("--approve-all without a terminal needs --yes")
            if input(question).strip().lower() not in ("y", "yes"):
                print("Nothing approved.")
                return 0
    else:
        known = gated.keys() | approved_already | rejected.keys()
        unknown = [aid for aid in args.approve if aid not in known]
        if unknown:
            raise _unknown(unknown, "not awaiting approval in the current plan")
        chosen = [gated[aid] for aid in args.approve if aid in gated]
        overriding = [aid for aid in args.approve if aid in rejected and aid not in gated]
    user = os_user()
    ids = [a.id for a in chosen] + overriding
    scans = {a.id: a.scan for a in chosen}
    with writable_store(config) as store:
        DecisionLog(store).record(ids, APPROVE, user, now, scans=scans)
    for action in chosen:
        print(f"approved {action.id} ({action.kind.value} {action.scan}) as {user}")
    for aid in overriding:
        by, at = rejected[aid]
        print(f"approved {aid} as {user}, over the reject by {by} at {at}")
    return 0


def reject(config: Config, args: argparse.Namespace) -> int:
    from bl931tui.session import writable_store
    from engine.reconciler import os_user

    plan, rejected, now = _plan(config)
    planned: dict[str, Action] = {a.id: a for a in plan.actions}
    flying: dict[str, InFlight] = {f.action_id: f for f in plan.in_flight}
    unknown = [
        aid
        for aid in args.reject
        if aid not in planned and aid not in flying and aid not in rejected
    ]
    if unknown:
        raise _unknown(unknown, "not in the current plan, nor in flight")
    user = os_user()
    scans = {a.id: a.scan for a in planned.values()} | {
        f.action_id: f.scan for f in flying.values()
    }
    with writable_store(config) as store:
        DecisionLog(store).record(args.reject, REJECT, user, now, scans=scans)
    for aid in args.reject:
        if aid in planned:
            action = planned[aid]
            print(f"rejected {aid} ({action.kind.value} {action.scan}) as {user}")
        elif aid in flying:
            f = flying[aid]
            print(
                f"rejected {aid} ({f.kind.value} {f.scan}) as {user}; it was already submitted, "
                "so this reject cannot stop it (its receipt names the approval it runs under), "
                "and stands for any later execution of the same action"
            )
        else:
            print(f"rejected {aid} as {user} (it was rejected already by {rejected[aid][0]})")
    return 0

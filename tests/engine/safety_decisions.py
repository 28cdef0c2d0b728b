"""Operator decisions at random points of the safety property, and what they must mean.

The harness keeps its own record of every decision it makes (approve, reject, revoke,
un-reject, hold, lift), in the order it made them, independent of the engine's decision log,
and checks every delete the executor hands to a mover (`Submission.send`: right after the
transaction that records the submission, for fresh and resumed deletes alike) against it:

- **an approval in force**: when deletes are gated, the latest decision the harness made on
  the action is an approval, not revoked since;
- **spent once**: an approval licenses one submission. Another submission may use it only if
  the first one removed nothing of the scan (no receipt under it: the engine returns an
  approval whose submission was withdrawn, lost or cancelled with nothing removed); the same
  submission resumed after a crash may;
- **a reject or hold before the submission stops it**: the latest decision is not a reject,
  and the scan is not on hold.

Decisions arrive between steps (`decide`) and inside a pass, between a delete's last look and
its submission (`arm`: the decision waits for the next delete batch that passed its last
looks, in whatever pass that is; a hook on `Submission.submit`, before its transaction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.decision_undo import undo_decisions
from engine.errors import UsageError
from engine.model import ActionKind

if TYPE_CHECKING:
    from tests.engine.safety_world import World

OPS = ("approve", "reject", "revoke", "unreject", "hold", "lift")
AT_SUBMISSION = ("reject", "revoke", "hold")


@dataclass
class Said:
    """The latest decision the harness made on one action."""

    decision: str  # approve | reject
    seq: int
    used_by: set[str] = field(default_factory=set)  # submissions that used this approval


@dataclass
class Operators:
    """The harness's own record of decisions, and the checks at each delete submission."""

    said: dict[str, Said] = field(default_factory=dict)  # action id → latest decision
    held: set[str] = field(default_factory=set)  # scans on hold
    seq: int = 0
    violations: list[str] = field(default_factory=list)
    submissions_checked: int = 0
    interceptions: int = 0  # decisions that arrived between a last look and its submission
    armed: str | None = None  # a decision to make at the next delete submission
    fired: list[str] = field(default_factory=list)  # the armed decisions made so far

    # ---- deciding -------------------------------------------------------------------------
    def _note(self, world: World, aid: str, decision: str | None) -> None:
        self.seq += 1
        if decision is None:
            self.said.pop(aid, None)
        else:
            self.said[aid] = Said(decision, self.seq)
        world.log.append(f"operator {decision or 'undo'} {aid[:8]}")

    def approve(self, world: World, ids: list[str]) -> None:
        if ids:
            world.store.approve(ids, "operator", world.clock.now())
            for aid in ids:
                self._note(world, aid, "approve")

    def reject(self, world: World, aid: str) -> None:
        world.store.reject([aid], "operator-b", world.clock.now())
        self._note(world, aid, "reject")

    def undo(self, world: World, aid: str, decision: str) -> bool:
        """Revoke an approval or un-reject; False when the engine refuses (e.g. spent)."""
        try:
            undo_decisions(world.store, [aid], decision, by="operator-b", now=world.clock.now())  # type: ignore[arg-type]
        except UsageError as exc:
            world.log.append(f"operator undo {decision} {aid[:8]} refused: {exc}")
            return False
        self._note(world, aid, None)
        return True

    def hold(self, world: World, scan: str) -> None:
        world.store.place_hold(scan, "reprocessing", "operator-b", world.clock.now())
        self.held.add(scan)
        world.log.append(f"operator hold {scan!r}")

    def lift(self, world: World, scan: str) -> None:
        world.store.lift_hold(scan, "operator-b", world.clock.now())
        self.held.discard(scan)
        world.log.append(f"operator lift {scan!r}")

    def decide(self, world: World, op: str, pick: int) -> None:
        """One decision of kind `op` on the `pick`-th candidate (nothing if there is none)."""
        plan = world.reconciler.dry_run(world.clock.now())
        deletes = [a for a in plan.actions if a.kind is ActionKind.DELETE]
        flying = [f for f in plan.in_flight if f.kind is ActionKind.DELETE]
        if op == "approve":
            ids = [a.id for a in plan.actions if a.requires_approval and not a.approved]
            if ids:
                self.approve(world, [ids[pick % len(ids)]])
        elif op == "reject":
            ids = [a.id for a in deletes] + [f.action_id for f in flying]
            if ids:
                self.reject(world, ids[pick % len(ids)])
        elif op in ("revoke", "unreject"):
            want = "approve" if op == "revoke" else "reject"
            ids = sorted(aid for aid, s in self.said.items() if s.decision == want)
            if ids:
                self.undo(world, ids[pick % len(ids)], want)
        elif op == "hold":
            scans = sorted({a.scan for a in deletes} | {f.scan for f in flying})
            if scans:
                self.hold(world, scans[pick % len(scans)])
        elif op == "lift" and self.held:
            self.lift(world, sorted(self.held)[pick % len(self.held)])

    def fire_armed(self, world: World, actions: Any) -> None:
        """The armed decision, on the first action of a delete batch about to be submitted."""
        op, self.armed = self.armed, None
        action = actions[0]
        if op == "reject":
            self.reject(world, action.id)
        elif op == "hold":
            self.hold(world, action.scan)
        elif op == "revoke" and not self.undo(world, action.id, "approve"):
            return
        self.interceptions += 1
        self.fired.append(str(op))
        world.log.append(f"  ({op} {action.id[:8]} arrived between its last look and submission)")

    # ---- checking -------------------------------------------------------------------------
    def watch(self, world: World) -> None:
        """Check every delete handed to a mover by this (new) process's executor."""
        executor: Any = world.reconciler.executor
        real_send, real_submit = executor.submission.send, executor.submission.submit

        def send(mover: Any, task: Any, request: Any, now: Any) -> bool:
            if request.kind == "delete":
                self.check_submission(world, request)
            return bool(real_send(mover, task, request, now))

        def submit(
            mover: Any, kind: str, source: Any, target: str, actions: Any, *rest: Any, **kw: Any
        ) -> bool:
            # After the batch's last looks, before the transaction that records its submission.
            if kind == "delete" and actions and self.armed is not None:
                self.fire_armed(world, actions)
            return bool(real_submit(mover, kind, source, target, actions, *rest, **kw))

        executor.submission.send, executor.submission.submit = send, submit

    def check_submission(self, world: World, request: Any) -> None:
        self.submissions_checked += 1
        sid = request.submission_id
        for item in request.items:
            aid, scan = item.action_id, item.scan
            said = self.said.get(aid)
            where = f"delete {aid[:8]} of {scan!r} at {request.target} (submission {sid})"
            if said is not None and said.decision == "reject":
                self.violations.append(f"{where} was submitted after it was rejected")
            if scan in self.held:
                self.violations.append(f"{where} was submitted while its scan was on hold")
            if not world.gated:
                continue
            if said is None or said.decision != "approve":
                self.violations.append(f"{where} was submitted with no approval in force")
                continue
            earlier = said.used_by - {sid}
            removed_under = {
                r.get("submission_id")
                for r in world.store.receipts(scan)
                if r["action_id"] == aid and r.get("submission_id") in earlier
            }
            if removed_under:
                self.violations.append(
                    f"{where} used an approval already spent by {sorted(removed_under)}, "
                    "which removed files under it"
                )
            said.used_by.add(sid)

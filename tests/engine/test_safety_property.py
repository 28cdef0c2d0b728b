"""Property: whatever happens between passes, no scan version that was ever verified (copied
with a checksum, or inventoried at the dtn) loses its last intact copy, and every verified copy
that goes away is accounted for by an approved receipt.

Hypothesis drives the real engine in-process (local folders, a `FakeClock`, no subprocesses)
through random sequences of: new scans (names are reused after a prune), passes, rewrites at the
dtn (in place or by rename), truncation to zero, files added to or removed from directory scans,
bit rot of a verified copy (while another copy holds its version), unmounted and *aliased*
endpoints (a symlink to another endpoint's root), operator decisions (approve, reject, revoke,
un-reject, hold, lift: between steps, and between a delete's last look and its submission,
`safety_decisions.py`), time passing, and crashes
at every persisted step of a delete (`safety_crash.crash_in_delete`, sometimes followed by an
unmount or alias of the endpoint deleted from) or in the middle of a pass. After every step the
invariants of `safety_checks.py` are checked against the bytes on disk; at the end everything is
remounted, passes run until the world settles, and every removal must then have its receipt.

CI runs a fixed, derandomised set of examples (`CI` set); locally the examples are random, and
`BL931_SAFETY_EXAMPLES=500` runs a longer search. Known engine gaps narrow what is generated
until they are fixed: see the switches at the top of `safety_checks.py`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, Phase, event, settings, target
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tests.engine.safety_checks import FORGED_REWRITES, Knowledge, check_all
from tests.engine.safety_crash import CRASH_POINTS, Crash, crash_in_delete
from tests.engine.safety_decisions import AT_SUBMISSION, OPS
from tests.engine.safety_world import ENDPOINTS, World

T = TypeVar("T")
IN_CI = bool(os.environ.get("CI"))


SAFETY_SETTINGS = settings(
    max_examples=int(os.environ.get("BL931_SAFETY_EXAMPLES", 100)),
    stateful_step_count=35,
    deadline=None,
    derandomize=IN_CI,  # CI is reproducible: the same examples on every run
    database=None if IN_CI else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    # One bug at a time, shrunk, without the (slow) explain phase: a failure reads as a short
    # sequence of steps and the world's log of what happened.
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)

small_bytes = st.binary(min_size=1, max_size=48)
# Which scan / endpoint a step acts on is drawn as a plain number and taken modulo the
# candidates the world offers *now*. The draws never depend on the world's state (no
# `sampled_from` over a listing, no precondition over files on disk): a replay that finds the
# world slightly different (a pass that got further, a directory's ctime) still draws the same
# choices, so hypothesis never reports its data generation as flaky.
PICK = st.integers(0, 255)


class SafetyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="bl931-safety-"))
        self.world: World | None = None
        self.knowledge = Knowledge()

    @property
    def w(self) -> World:
        assert self.world is not None
        return self.world

    @initialize(
        directory=st.booleans(),
        gated=st.booleans(),
        keep=st.sampled_from([(0, 0), (1, 0), (0, 1), (1, 2)]),
        scans=st.lists(st.lists(small_bytes, min_size=1, max_size=3), min_size=1, max_size=3),
        passes=st.integers(0, 3),
    )
    def start(
        self,
        directory: bool,
        gated: bool,
        keep: tuple[int, int],
        scans: list[list[bytes]],
        passes: int,
    ) -> None:
        """A beamline with a few scans and a few passes behind it (so that most examples
        spend their steps on versions already copied, verified and due for pruning)."""
        self.world = World(
            self.tmp / "ws",
            directory=directory,
            gated=gated,
            dtn_keep_days=keep[0],
            cfs_keep_days=keep[1],
        )
        self.w.log.append(f"start directory={directory} gated={gated} keep days={keep}")
        for name, files in zip(self.w.scan_names(), scans, strict=False):
            self.w.write(name, files if directory else files[:1])
        for _ in range(passes):
            self.w.run_pass()
            check_all(self.w, self.knowledge)

    # ---- users at the dtn ---------------------------------------------------------------
    def free_names(self) -> list[str]:
        at_dtn = self.w.at_dtn()
        return [s for s in self.w.changeable() if s not in at_dtn]

    def pick(self, candidates: list[T], number: int, what: str) -> T | None:
        """The candidate `number` designates (modulo their count), or None (logged) if none."""
        if not candidates:
            self.w.log.append(f"(no {what}: nothing to act on)")
            return None
        return candidates[number % len(candidates)]

    def at_dtn(self) -> list[str]:
        """Scans on the dtn a user may change now (`World.changeable`)."""
        changeable = self.w.changeable()
        return [s for s in self.w.at_dtn() if s in changeable]

    @rule(
        pick=PICK,
        files=st.lists(small_bytes, min_size=1, max_size=3),
        fixed_mtime=st.booleans() if FORGED_REWRITES else st.just(False),
    )
    def new_scan(self, pick: int, files: list[bytes], fixed_mtime: bool) -> None:
        """A new scan, or a name used again (after a prune, or after a crash cut it)."""
        scan = self.pick(self.free_names(), pick, "new scan")
        if scan is None:
            return
        self.w.write(scan, files if self.w.directory else files[:1], fixed_mtime=fixed_mtime)

    @rule(
        pick=PICK,
        content=small_bytes,
        index=st.integers(0, 3),
        in_place=st.booleans(),
        keep=st.booleans() if FORGED_REWRITES else st.just(False),
    )
    def rewrite(self, pick: int, content: bytes, index: int, in_place: bool, keep: bool) -> None:
        scan = self.pick(self.at_dtn(), pick, "rewrite")
        if scan is None:
            return
        self.w.rewrite(scan, content, index=index, in_place=in_place, keep=keep)

    @rule(pick=PICK, every=st.booleans(), keep_mtime=st.booleans())
    def truncate(self, pick: int, every: bool, keep_mtime: bool) -> None:
        scan = self.pick(self.at_dtn(), pick, "truncate")
        if scan is None:
            return
        self.w.truncate(scan, every=every, keep_mtime=keep_mtime)

    @precondition(lambda self: self.w.directory)
    @rule(pick=PICK, content=small_bytes, grow=st.booleans())
    def change_files(self, pick: int, content: bytes, grow: bool) -> None:
        scan = self.pick(self.at_dtn(), pick, "change files")
        if scan is None:
            return
        if grow or len(self.w.content_at("dtn", scan)) < 2:
            self.w.add_file(scan, content)
        else:
            self.w.remove_file(scan)

    @rule(pick=PICK, at=st.integers(0, 1000))
    def rot(self, pick: int, at: int) -> None:
        """A verified copy rots in place while another copy still holds its version: whatever
        relies on the rotted copy must find out (the last look re-hashes)."""
        candidate = self.pick(self.w.rot_candidates(), pick, "rot")
        if candidate is None:
            return
        scan, checksum, endpoint = candidate
        self.w.rot(scan, checksum, endpoint, at)

    # ---- the service and its operator ---------------------------------------------------
    @rule(count=st.integers(1, 3))
    def run_passes(self, count: int) -> None:
        for _ in range(count):
            self.w.log.append("pass")
            self.w.run_pass()
            check_all(self.w, self.knowledge)

    @rule(then_pass=st.booleans())
    def approve(self, then_pass: bool) -> None:
        """An operator approves everything awaiting approval (a later step may change the
        scan first: an approval must never carry over to other bytes)."""
        ids = self.w.approve_all()
        self.w.log.append(f"approve {len(ids)}")
        if then_pass:
            self.w.log.append("pass")
            self.w.run_pass()

    @rule(op=st.sampled_from(OPS), pick=st.integers(0, 5), then_pass=st.booleans())
    def decide(self, op: str, pick: int, then_pass: bool) -> None:
        """An operator (a second one, for rejects, revokes and holds) decides on one planned
        or in-flight delete, or holds its scan: between passes, and so also while a pass's
        tasks are open."""
        self.w.operators.decide(self.w, op, pick)
        if then_pass:
            self.w.log.append("pass")
            self.w.run_pass()

    @rule(op=st.sampled_from(AT_SUBMISSION))
    def decide_at_submission(self, op: str) -> None:
        """A reject, revoke or hold will arrive after the next delete's last look, before its
        submission (in whatever pass that is): that delete must not be submitted."""
        self.w.operators.armed = op
        self.w.log.append(f"armed: {op} at the next delete submission")

    @rule(seconds=st.sampled_from([1, 30, 600, 86_400]))
    def time_passes(self, seconds: int) -> None:
        self.w.clock.advance(seconds=seconds)

    # ---- filesystems --------------------------------------------------------------------
    @rule(pick=PICK, alias_pick=PICK, alias=st.booleans())
    def unmount(self, pick: int, alias_pick: int, alias: bool) -> None:
        if self.w.passes == 0 or len(self.w.unmounted) >= 2:
            self.w.log.append("(no unmount: no pass yet, or two endpoints already unmounted)")
            return
        mounted = [e for e in ENDPOINTS if e not in self.w.unmounted]
        endpoint = self.pick(mounted, pick, "unmount")
        assert endpoint is not None
        others = [e for e in ENDPOINTS if e != endpoint and e not in self.w.unmounted]
        target = self.pick(others, alias_pick, "alias") if alias else None
        self.w.unmount(endpoint, target)

    @rule(pick=PICK)
    def remount(self, pick: int) -> None:
        endpoint = self.pick(sorted(self.w.unmounted), pick, "remount")
        if endpoint is None:
            return
        # Another endpoint aliased onto this one goes first (it points at this mount point).
        for other, alias in list(self.w.unmounted.items()):
            if alias == endpoint:
                self.w.remount(other)
        left = self.w.remount(endpoint)
        assert left == [], f"the engine wrote onto the unmounted {endpoint}: {left}"

    # ---- crashes ------------------------------------------------------------------------
    @rule(
        point=st.sampled_from(CRASH_POINTS),
        approve=st.booleans(),
        then=st.sampled_from(["restart", "restart", "unmount", "alias"]),
    )
    def crash_in_delete(self, point: str, approve: bool, then: str) -> None:
        """A pass that dies at one step of its first delete (after the operator approved what
        awaited approval, so that there is more often a delete to interrupt). Sometimes the
        delete's endpoint is unmounted, or aliased to another's root, before the restart: the
        interrupted delete must not be settled from a listing that proves nothing."""
        if approve:
            self.w.log.append(f"approve {len(self.w.approve_all())}")
        target: str | None = None
        try:
            with crash_in_delete(self.w, point):
                self.w.run_pass()
            self.w.log.append(f"pass (a crash at {point} had no delete to hit)")
        except Crash as crash:
            self.w.crashes += 1
            self.w.log.append(f"CRASH in a delete at {point}")
            target = crash.target
        others = [e for e in ENDPOINTS if e != target and e not in self.w.unmounted]
        if target is not None and then != "restart" and target not in self.w.unmounted and others:
            self.w.unmount(target, others[0] if then == "alias" else None)
        self.w.restart()

    @rule()
    def crash_mid_pass(self) -> None:
        """The process dies after submitting, before any task's outcome is recorded."""
        self.w.run_pass(drain=False)
        self.w.log.append("CRASH after submitting, before draining")
        self.w.restart()

    # ---- after every step ---------------------------------------------------------------
    @invariant()
    def safe(self) -> None:
        if self.world is not None:
            check_all(self.w, self.knowledge)
            check_decisions(self.w)

    def teardown(self) -> None:
        try:
            if self.world is not None:
                self._settle()
        finally:
            if self.world is not None:
                self.w.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _settle(self) -> None:
        """Everything remounted, a clean restart, passes (with approvals) until nothing is open:
        then every removal must have its receipt, not just an open task."""
        for endpoint in [e for e, alias in self.w.unmounted.items() if alias is not None]:
            self.w.remount(endpoint)
        for endpoint in list(self.w.unmounted):
            assert self.w.remount(endpoint) == []
        self.w.restart()
        for _ in range(8):
            self.w.approve_all()
            self.w.run_pass()
            check_all(self.w, self.knowledge)
            idle = not self.w.reconciler.dry_run(self.w.clock.now()).actions
            if idle and not self.w.store.tasks(("preparing", "active")):
                break
        check_all(self.w, self.knowledge, settled=True)
        check_decisions(self.w)
        self._tally()

    def _tally(self) -> None:
        """What the example exercised (`--hypothesis-show-statistics`), and a nudge towards
        examples that verify, replace, prune and crash more."""
        conn = self.w.store.connection()
        replaced = conn.execute("SELECT count(*) FROM events WHERE kind='copy.replaced'")
        receipts = conn.execute("SELECT count(*) FROM deletions")
        counts = {
            "versions verified": sum(len(v) for v in self.w.verified.values()),
            "replaces": replaced.fetchone()[0],
            "receipts": receipts.fetchone()[0],
            "crashes": self.w.crashes,
            "operator decisions": self.w.operators.seq,
            "delete submissions checked": self.w.operators.submissions_checked,
            "decisions at a submission": self.w.operators.interceptions,
        }
        for name, count in counts.items():
            event(f"{name}: {min(count, 5)}{'+' if count >= 5 else ''}")
        target(float(sum(min(c, 5) for c in counts.values())))
        for op in sorted(set(self.w.operators.fired)):
            event(f"at a submission: {op}")
        target(float(min(self.w.operators.interceptions, 5)), label="decisions at a submission")


def check_decisions(world: World) -> None:
    """No delete was submitted against the operators' decisions (`safety_decisions.py`)."""
    if world.operators.violations:
        history = "\n  ".join(world.log[-40:])
        raise AssertionError(f"{world.operators.violations[0]}\nlast steps:\n  {history}")


SafetyMachine.TestCase.settings = SAFETY_SETTINGS
test_safety_property = SafetyMachine.TestCase


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_every_crash_point_is_reached(tmp_path: Path, point: str) -> None:
    """The crash hooks really interrupt a delete (so the property exercises each step)."""
    world = World(tmp_path / "ws", directory=True, gated=False)
    try:
        knowledge = Knowledge()
        world.write("scan_0", [b"a" * 10, b"b" * 20])
        for _ in range(6):  # until a delete (the dtn prune) is planned
            if any(a.kind.value == "delete" for a in world.reconciler.dry_run().actions):
                break
            world.run_pass()
            check_all(world, knowledge)
        crashed = False
        try:
            with crash_in_delete(world, point):
                world.run_pass()
        except Crash:
            crashed = True
        assert crashed, f"no delete was interrupted at {point}"
        world.restart()
        for _ in range(4):
            world.run_pass()
            check_all(world, knowledge)
        check_all(world, knowledge, settled=True)
    finally:
        world.close()


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "ungated"])
@pytest.mark.parametrize("op", AT_SUBMISSION)
def test_a_decision_between_the_last_look_and_the_submission_stops_the_delete(
    tmp_path: Path, op: str, gated: bool
) -> None:
    """The harness's hook really lands between a delete's last look and its submission, and
    the delete is then not submitted (the property draws this at random points)."""
    world = World(tmp_path / "ws", directory=True, gated=gated)
    try:
        knowledge = Knowledge()
        world.write("scan_0", [b"a" * 10, b"b" * 20])
        for _ in range(6):  # until a delete (the dtn prune) is planned
            if any(a.kind.value == "delete" for a in world.reconciler.dry_run().actions):
                break
            world.run_pass()
            check_all(world, knowledge)
        world.approve_all()
        world.operators.armed = op
        world.run_pass()
        if op == "revoke" and not gated:
            assert world.operators.interceptions == 0  # nothing to revoke: it ran, unapproved
        else:
            assert world.operators.interceptions == 1, world.log
            assert world.operators.submissions_checked == 0, "the withdrawn delete was submitted"
            assert world.holds("dtn", "scan_0", world.versions[next(iter(world.versions))])
        check_decisions(world)
        check_all(world, knowledge)
    finally:
        world.close()


def test_a_spent_approval_never_licenses_a_second_delete(tmp_path: Path) -> None:
    """The same bytes put back after an approved prune: the same delete id, a spent approval.
    The harness counts every submission against its own record (`safety_decisions.py`)."""
    world = World(tmp_path / "ws", directory=True, gated=True)
    try:
        knowledge = Knowledge()
        files = [b"a" * 10, b"b" * 20]
        world.write("scan_0", files)
        for _ in range(8):  # until the approved dtn prune ran
            world.approve_all()
            world.run_pass()
            check_all(world, knowledge)
            if world.store.receipts("scan_0"):
                break
        assert world.operators.submissions_checked == 1
        world.write("scan_0", files)  # a user restores the pruned bytes (same checksum)
        for _ in range(4):
            world.run_pass()
            check_all(world, knowledge)
            check_decisions(world)
        assert world.operators.submissions_checked == 1, "the spent approval ran a second delete"
        plan = world.reconciler.dry_run(world.clock.now())
        (again,) = [a for a in plan.actions if a.kind.value == "delete"]
        assert again.requires_approval and not again.approved
    finally:
        world.close()

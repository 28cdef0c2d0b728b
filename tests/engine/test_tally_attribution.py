"""Each action outcome is counted once, in the tallies of what recorded it: the pass whose drain
or poll finished a task, a drain run between passes (its own `Outcome`), the restarted process
that finished the task a crashed one submitted. Never twice, never in a later pass."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.executor import Executor
from engine.pass_report import ActionOutcome, ActionTallies
from engine.state import StateStore
from engine.storage.globus_mover import GlobusMover
from engine.storage.local_mover import LocalMover
from engine.workspace import create_workspace
from tests.conftest import MakeEngine
from tests.engine.tally_oracle import audited_tallies, last_seq
from tests.engine_world import Engine
from tests.storage.globus_world import OLD, World, globus_world

START = datetime(2026, 3, 1, tzinfo=UTC)
SUBMITTED, SUCCEEDED = ActionOutcome.SUBMITTED, ActionOutcome.SUCCEEDED


def copies(tallies: ActionTallies) -> tuple[int, int]:
    """(copies submitted, copies succeeded) in one tally."""
    return (
        tallies.outcomes.get(("copy", SUBMITTED), 0),
        tallies.outcomes.get(("copy", SUCCEEDED), 0),
    )


def audited(engine: Engine) -> Counter[str]:
    """The copy events of the audit log, by kind."""
    events = engine.store.events(limit=100_000)
    return Counter(e["kind"] for e in events if e["kind"] in ("copy.submitted", "copy.verified"))


def local_engine(tmp_path: Path, make_engine: MakeEngine, scans: int = 2) -> Engine:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000, cfs_keep_days=1000)
    for i in range(scans):
        ws.write_scan(f"2026/s{i}.h5", bytes([i + 1]) * 64, mtime=START - timedelta(days=1))
    return make_engine(ws.config(), start=START)


def finish_local_tasks(engine: Engine) -> None:
    """Wait for the local mover's tasks to end without recording anything (as a task would
    while the service sleeps between passes)."""
    for task in engine.store.tasks():
        mover = engine.backends.mover_for(task.source or task.target, task.target)
        assert isinstance(mover, LocalMover) and task.task_id is not None
        mover.wait(task.task_id, timeout=30)


def test_a_pass_that_drains_counts_what_its_drain_finished(
    tmp_path: Path, make_engine: MakeEngine
) -> None:
    engine = local_engine(tmp_path, make_engine)
    first = engine.reconcile(drain=True)
    assert copies(first.actions) == (2, 2)  # to cfs: submitted and finished in this pass
    engine.clock.advance(seconds=60)
    second = engine.reconcile(drain=True)
    assert copies(second.actions) == (2, 2)  # on to hpss; the cfs copies are not counted again
    engine.clock.advance(seconds=60)
    assert copies(engine.reconcile(drain=True).actions) == (0, 0)
    assert audited(engine) == {"copy.submitted": 4, "copy.verified": 4}


def test_a_drain_between_passes_keeps_its_own_count(
    tmp_path: Path, make_engine: MakeEngine
) -> None:
    """The service's drain before a config reload records tasks outside any pass: its `Outcome`
    carries what it finished, and the next pass does not count them again."""
    engine = local_engine(tmp_path, make_engine)
    first = engine.reconcile(drain=False)
    assert copies(first.actions) == (2, 0)
    drained = engine.reconciler.executor.drain()
    assert drained.succeeded == 2 and copies(drained.actions) == (0, 2)
    engine.clock.advance(seconds=60)
    second = engine.reconcile(drain=False)
    assert copies(second.actions) == (2, 0)  # the hpss copies submitted; nothing finished
    assert audited(engine) == {"copy.submitted": 4, "copy.verified": 2}


def test_a_task_finished_by_the_next_poll_is_counted_in_that_pass(
    tmp_path: Path, make_engine: MakeEngine
) -> None:
    engine = local_engine(tmp_path, make_engine)
    assert copies(engine.reconcile(drain=False).actions) == (2, 0)
    finish_local_tasks(engine)
    engine.clock.advance(seconds=60)
    second = engine.reconcile(drain=False)
    assert copies(second.actions) == (2, 2)  # the cfs copies polled at its start
    finish_local_tasks(engine)
    engine.clock.advance(seconds=60)
    third = engine.reconcile(drain=False)
    assert copies(third.actions)[1] == 2  # the hpss copies; the cfs ones not again


def test_counts_of_a_pass_that_raised_are_not_carried_into_the_next(
    tmp_path: Path, make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass that dies after its copies were submitted reports nothing; the next pass of the
    same process counts only what it recorded itself."""
    engine = local_engine(tmp_path, make_engine)
    executor = engine.reconciler.executor
    execute = executor.execute

    def execute_then_die(plan: Any, seen: Any, now: datetime) -> Any:
        execute(plan, seen, now)
        raise RuntimeError("killed after submitting")

    monkeypatch.setattr(executor, "execute", execute_then_die)
    with pytest.raises(RuntimeError, match="killed after submitting"):
        engine.reconcile(drain=False)
    monkeypatch.setattr(executor, "execute", execute)
    finish_local_tasks(engine)
    engine.clock.advance(seconds=60)
    second = engine.reconcile(drain=True)
    # The two cfs copies finish here (polled), the hpss copies are submitted and drained; the
    # dead pass's two submissions are in no pass.
    assert copies(second.actions) == (2, 4)
    assert audited(engine) == {"copy.submitted": 4, "copy.verified": 4}


# ---- across a restart (Globus tasks outlive the process) --------------------------------------


@pytest.fixture
def globus(tmp_path: Path) -> Iterator[World]:
    with globus_world(tmp_path) as w:
        yield w


def test_a_crashed_process_s_task_is_counted_once_by_the_restarted_one(
    globus: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Process A submits a Globus task and dies before its report; process B's first poll
    finishes the task and counts it; B's next pass does not count it again."""
    for i in range(3):
        globus.write(f"2029/s{i}.h5", bytes([i + 1]) * 32, OLD)
    execute = Executor.execute

    def execute_then_die(self: Executor, plan: Any, seen: Any, now: datetime) -> Any:
        execute(self, plan, seen, now)
        raise RuntimeError("process killed after submitting")

    monkeypatch.setattr(Executor, "execute", execute_then_die)
    with pytest.raises(RuntimeError, match="process killed"):
        globus.run_pass()
    monkeypatch.setattr(Executor, "execute", execute)
    assert len(globus.fake.tasks) == 1
    globus.clock.advance(minutes=1)
    report, store = globus.run_pass()  # process B
    store.close()
    assert copies(report.actions) == (0, 3) and report.succeeded == 3
    globus.clock.advance(minutes=1)
    report, store = globus.run_pass()  # process C
    verified = [e for e in store.events(limit=1000) if e["kind"] == "copy.verified"]
    store.close()
    assert copies(report.actions) == (0, 0) and len(verified) == 3


class Killed(BaseException):
    """The process died here (a `BaseException`: nothing in the engine swallows it)."""


def test_a_delete_found_at_globus_after_a_crash_is_counted_by_the_pass_that_found_it(
    globus: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Process B dies right after Globus accepted its delete (the answer never recorded);
    process C finds the task by its submission id, records it submitted, and finishes it:
    counted in C's pass, as its audit rows say, once."""
    # The dtn pruned once cfs holds a verified copy, no approval.
    world = replace(
        globus, retention={"dtn": {"keep_days": 0, "delete_requires": ["cfs"]}}, approval=[]
    )
    for i in range(2):
        world.write(f"2029/s{i}.h5", bytes([i + 1]) * 32, OLD)
    report, store = world.run_pass()  # A: the copies
    store.close()
    world.clock.advance(minutes=1)
    submit = GlobusMover.submit

    def submit_then_die(self: GlobusMover, request: Any) -> str:
        task_id = submit(self, request)
        if request.kind == "delete":
            raise Killed(task_id)
        return task_id

    monkeypatch.setattr(GlobusMover, "submit", submit_then_die)
    with pytest.raises(Killed):
        world.run_pass()  # B: the copies verified, the delete accepted, then death
    monkeypatch.setattr(GlobusMover, "submit", submit)
    world.clock.advance(minutes=1)
    probe = StateStore(world.config().state.path)
    mark = last_seq(probe)
    probe.close()
    report, store = world.run_pass()  # C
    try:
        events = [e["kind"] for e in store.events(after_seq=mark, limit=1000)]
        assert report.actions == audited_tallies(store, mark)
    finally:
        store.close()
    assert events.count("delete.submitted") == 2, events
    assert report.actions.outcomes.get(("delete", ActionOutcome.SUBMITTED)) == 2

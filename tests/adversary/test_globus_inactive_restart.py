"""Adversary: a Globus task that sits INACTIVE is given up after the same hour whether or not the
service restarts while it waits (and under `--reconcile --once`, where every pass is a new
process). Through the reconciler and the real globus-sdk client against the fake Transfer API,
on a FakeClock shared by both.

Transfer marks a task INACTIVE when it cannot go on without help (Transfer docs, "Task
Behavior": a paused task, an endpoint down, expired credentials) and would keep it so until its
deadline; bl931 cancels one that stays INACTIVE over an hour and plans its scans again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from engine.model import ErrorClass
from engine.state import StateStore
from engine.storage.globus_mover import DEFAULT_INACTIVE_GRACE
from tests.engine_world import Engine, open_engine
from tests.storage.globus_world import OLD, World, globus_world

GRACE = timedelta(seconds=DEFAULT_INACTIVE_GRACE)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    # stall_hours far away: only the INACTIVE grace may end the task.
    with globus_world(tmp_path, globus={"stall_hours": 100}) as w:
        yield w


class Service:
    """The service over `world`: `restart` ends its process and starts a new one."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.engine: Engine | None = None

    def run_pass(self) -> None:
        if self.engine is None:
            self.engine = open_engine(
                self.world.config(), clock=self.world.clock, environ=self.world.fake.environ
            )
        self.engine.reconciler.reconcile_once()

    def restart(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def inactive_failures(world: World) -> tuple[list[str], list[tuple[str, str]]]:
    """The errors of the tasks that ended for sitting INACTIVE, and (error class, message) of
    each action failed with them."""
    store = StateStore(world.config().state.path)
    try:
        conn = store.connection()
        tasks = conn.execute("SELECT error FROM tasks WHERE error LIKE '%inactive for over%'")
        actions = conn.execute(
            "SELECT error_class, error FROM actions WHERE error LIKE '%inactive for over%'"
        )
        return [str(r[0]) for r in tasks], [(str(r[0]), str(r[1])) for r in actions]
    finally:
        store.close()


@pytest.mark.parametrize("restarts", ["never", "mid_stall", "every_pass"])
def test_an_inactive_task_is_given_up_after_the_same_grace_across_restarts(
    world: World, restarts: str
) -> None:
    world.write("2029/a.h5", b"a" * 10, OLD)
    world.fake.stall_next_task("PAUSED_BY_ADMIN")
    service = Service(world)
    try:
        service.run_pass()  # submits; Transfer holds the task INACTIVE
        (task,) = world.fake.tasks.values()
        world.clock.advance(minutes=1)
        service.run_pass()  # the first poll that sees it INACTIVE: the grace starts here
        assert task.status == "INACTIVE"
        seen_inactive = world.clock.now()
        steps = 0
        while world.clock.now() - seen_inactive <= GRACE:
            assert world.fake.calls["cancel_run"] == 0, "given up before its grace"
            world.clock.advance(minutes=10)
            steps += 1
            if restarts == "every_pass" or (restarts == "mid_stall" and steps == 3):
                service.restart()
            service.run_pass()
        # Past the grace (10 minutes after at most): cancelled once, and its scan failed as
        # a task that sat INACTIVE, to be planned again.
        assert world.clock.now() - seen_inactive <= GRACE + timedelta(minutes=10)
        assert world.fake.calls["cancel_run"] == 1
        assert task.status == "FAILED" and task.fatal_error["code"] == "CANCELED"
        tasks, actions = inactive_failures(world)
        assert len(tasks) == 1 and "PAUSED_BY_ADMIN" in tasks[0] and "3600 s" in tasks[0], tasks
        # Its scan failed transiently, to be planned again as a new task.
        ((error_class, message),) = actions
        assert error_class == ErrorClass.TRANSIENT.value and "PAUSED_BY_ADMIN" in message
    finally:
        service.restart()

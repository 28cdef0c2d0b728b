"""Retry-After on every Transfer task call, kept in the state store: each pass here builds its
backends and store afresh (a new process, as `--reconcile --once` does) on a FakeClock shared
with the fake Transfer API, so a wait Globus asked of one pass is honoured by the next."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from engine.model import ErrorClass
from engine.state import StateStore
from tests.storage.globus_world import (
    OLD,
    START,
    World,
    faulted_copy,
    flip,
    globus_world,
    one_pass,
    paths_asked,
    task_alerts,
)

pytestmark = pytest.mark.usefixtures("quick_sdk_retries")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with globus_world(tmp_path) as w:
        yield w


def holds(world: World) -> list[tuple[str, str]]:
    store = StateStore(world.tmp / "state.sqlite")
    try:
        rows = store.connection().execute("SELECT key, until FROM retry_holds ORDER BY key")
        return [(r["key"], r["until"]) for r in rows]
    finally:
        store.close()


def test_a_throttled_event_list_is_not_asked_again_by_the_next_process_before_the_wait(
    world: World,
) -> None:
    """The failed batch's event list answers 429 with Retry-After 600: nothing is settled from
    a guess, the next pass (a new process, 2 minutes later) sends no task call at all, and once
    the wait is over the culprit alone is blamed."""
    for name in ("2029/a.h5", "2029/b.h5", "2029/c.h5"):
        world.write(name, name.encode() * 10, OLD)
    assert one_pass(world).submitted == 3
    (task,) = world.fake.tasks.values()
    flip(world.raw / "2029/b.h5")
    world.fake.fail_next("event_list", 3, 429, retry_after=600)
    world.clock.advance(minutes=1)
    one_pass(world)
    assert task.status == "FAILED" and world.fake.calls["event_list"] == 3
    assert not world.failures()
    assert [key for key, _ in holds(world)] == ["tasks"]
    asked = dict(world.fake.calls)
    world.clock.advance(minutes=2)
    one_pass(world)
    for route in ("task", "event_list", "cancel", "task_list", "transfer", "submission_id"):
        assert world.fake.calls[route] == asked.get(route, 0), route
    assert not world.failures()
    world.clock.advance(minutes=8)
    one_pass(world)
    failed = world.failures()
    assert failed["2029/b.h5"][0] == ErrorClass.NEEDS_HUMAN.value
    for other in ("2029/a.h5", "2029/c.h5"):
        assert failed[other][0] == ErrorClass.TRANSIENT.value, failed[other]
    assert not holds(world)  # a wait that is over is forgotten


def test_a_throttled_cancel_is_held_then_sent_and_the_scan_still_names_the_fault(
    world: World,
) -> None:
    assert task_alerts(faulted_copy(world, fault_minutes=10))
    world.clock.advance(minutes=10)
    world.fake.fail_next("cancel", 3, 429, retry_after=300)
    one_pass(world)  # the cancel is due, and throttled
    (task,) = world.fake.tasks.values()
    assert task.status == "ACTIVE" and world.fake.calls["cancel"] == 3
    world.clock.advance(minutes=1)
    report = one_pass(world)
    assert world.fake.calls["cancel"] == 3  # held back: not asked again inside the wait
    (alert,) = task_alerts(report)
    assert "persistent_fault_minutes" in alert.message  # the intent is shown meanwhile
    world.clock.advance(minutes=5)
    one_pass(world)
    assert world.fake.calls["cancel"] == 4 and task.status == "FAILED"
    world.clock.advance(minutes=1)
    one_pass(world)
    error_class, message = world.failures()["2029/a.h5"]
    assert error_class == ErrorClass.NEEDS_HUMAN.value
    assert "PERMISSION_DENIED" in message and world.ids["cfs"] in message


def test_a_hold_whose_start_lies_ahead_of_a_clock_set_back_is_dropped(world: World) -> None:
    """A clock set back (NTP after a bad start) must not stretch a wait beyond what Globus
    asked: a hold that began after `now` is over."""
    world.write("2029/a.h5", b"a" * 10, OLD)
    seen = paths_asked(world)
    world.fake.fail_next("ls", 3, 429, retry_after=600)
    one_pass(world)
    (throttled,) = [key for key, _ in holds(world)]
    assert throttled in world.ids.values()
    seen.clear()
    world.clock.advance(minutes=1)
    one_pass(world)
    assert not [p for p in seen if p.endswith("/ls") and throttled in p]
    world.clock.set(START - timedelta(hours=1))
    seen.clear()
    one_pass(world)
    assert [p for p in seen if p.endswith("/ls") and throttled in p]
    assert not holds(world)


def test_a_cancel_meant_but_never_sent_does_not_take_over_the_task_s_own_failure(
    world: World,
) -> None:
    """The fault-cancel is recorded, then throttled; meanwhile the fault clears and the task
    fails on its own (the file was rewritten: CHECKSUM_MISMATCH). The scan fails for what
    really ended the task, not for a cancel that never reached Transfer."""
    faulted_copy(world, fault_minutes=10)
    world.clock.advance(minutes=10)
    world.fake.fail_next("cancel", 3, 429, retry_after=300)
    one_pass(world)  # the cancel is meant (recorded) and throttled
    (task,) = world.fake.tasks.values()
    assert task.status == "ACTIVE"
    world.fake.clear_collection_fault(world.ids["cfs"])
    flip(world.raw / "2029/a.h5")
    world.clock.advance(minutes=6)
    one_pass(world)  # the wait is over: the poll finds the task failed on its own
    assert task.status == "FAILED" and task.fatal_error["code"] == "CHECKSUM_MISMATCH"
    assert world.fake.calls["cancel"] == 3  # never sent again: the task had ended
    error_class, message = world.failures()["2029/a.h5"]
    assert "CHECKSUM_MISMATCH" in message and "persistent_fault_minutes" not in message
    assert error_class == ErrorClass.NEEDS_HUMAN.value

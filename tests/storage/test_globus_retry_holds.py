"""Retry-After on every Transfer task call, kept in the state store: each pass here builds its
backends and store afresh (a new process, as `--reconcile --once` does) on a FakeClock shared
with the fake Transfer API, so a wait Globus asked of one pass is honoured by the next."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.clock import FakeClock
from engine.model import ErrorClass
from engine.state import StateStore
from tests.adversary.test_task_watch_inprocess import flip, one_pass
from tests.fakes.transfer_api import FakeTransferAPI
from tests.storage.test_globus_task_watch import OLD, START, World, task_alerts


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = FakeClock(START)
    with FakeTransferAPI(clock=clock) as fake:
        ids = {name: fake.add_collection(tmp_path / name) for name in ("dtn", "cfs")}
        (tmp_path / "cfs" / "raw").mkdir(parents=True)
        w = World(fake, clock, tmp_path, ids)
        w.raw.mkdir(parents=True)
        yield w


@pytest.fixture(autouse=True)
def quick_sdk_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """globus-sdk's own two retries sleep 10 ms instead of up to 5 s (wall time)."""
    from globus_sdk.transport import RetryConfig

    from engine.storage.globus_auth import GlobusSession

    monkeypatch.setattr(
        GlobusSession,
        "_retry_config",
        lambda self: RetryConfig(max_retries=self._max_retries, max_sleep=0.01),
    )


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
    world.globus = {"persistent_fault_minutes": 10, "stall_hours": 100}
    world.write("2029/a.h5", b"a" * 10, OLD)
    world.fake.fault_collection(world.ids["cfs"], "PERMISSION_DENIED")
    one_pass(world)
    world.clock.advance(minutes=1)
    assert task_alerts(one_pass(world))
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
    seen: list[str] = []
    handle = world.fake.handle

    def spy(method: str, path: str, *args: Any) -> Any:
        seen.append(path)
        return handle(method, path, *args)

    world.fake.handle = spy  # type: ignore[method-assign]
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
    world.globus = {"persistent_fault_minutes": 10, "stall_hours": 100}
    world.write("2029/a.h5", b"a" * 10, OLD)
    world.fake.fault_collection(world.ids["cfs"], "PERMISSION_DENIED")
    one_pass(world)
    world.clock.advance(minutes=1)
    one_pass(world)
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

"""Globus tasks as the real service runs them, through the reconciler on a fake clock: faults an
ACTIVE task keeps retrying, stalls, and task slots with a backlog. Each pass builds its backends
and store afresh (as `--reconcile --once` does); the fake Transfer API shares the clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.model import ErrorClass
from tests.storage.globus_world import OLD, World, globus_world, task_alerts


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with globus_world(tmp_path) as w:
        yield w


def test_a_permission_error_on_an_active_task_is_surfaced_then_cancelled(world: World) -> None:
    world.globus = {"persistent_fault_minutes": 30}
    world.write("2029/a.h5", b"a" * 10, OLD)
    world.fake.fault_collection(world.ids["cfs"], "PERMISSION_DENIED", "permission denied")
    report, store = world.run_pass()
    store.close()
    assert report.submitted == 1
    (task,) = world.fake.tasks.values()

    world.clock.advance(minutes=1)
    report, store = world.run_pass()  # the first poll sees the fault: surfaced at once
    store.close()
    (alert,) = task_alerts(report)
    assert "PERMISSION_DENIED" in alert.message and world.ids["cfs"] in alert.message
    assert alert.endpoint == "cfs"
    assert task.status == "ACTIVE" and world.fake.calls["cancel"] == 0
    assert not report.ok

    world.clock.advance(minutes=29)
    world.run_pass()[1].close()
    assert world.fake.calls["cancel"] == 0
    world.clock.advance(minutes=1)
    report, store = world.run_pass()  # the fault persisted 30 minutes: cancelled
    store.close()
    assert world.fake.calls["cancel"] == 1 and task.status == "FAILED"
    assert task_alerts(report)

    world.clock.advance(minutes=1)
    report, store = world.run_pass()  # Transfer shows it ended: the scan needs attention
    store.close()
    error_class, message = world.failures()["2029/a.h5"]
    assert error_class == ErrorClass.NEEDS_HUMAN.value
    assert "PERMISSION_DENIED" in message and world.ids["cfs"] in message
    assert "persistent_fault_minutes" in message
    assert not task_alerts(report)  # the condition went away with the task


def test_a_busy_endpoint_is_left_to_globus(world: World) -> None:
    world.write("2029/a.h5", b"a" * 10, OLD)
    world.fake.fault_collection(world.ids["cfs"], "ENDPOINT_TOO_BUSY")
    world.run_pass()[1].close()
    for _ in range(3):
        world.clock.advance(hours=2)
        report, store = world.run_pass()
        store.close()
        assert not task_alerts(report)
    assert world.fake.calls["cancel"] == 0
    world.fake.clear_collection_fault(world.ids["cfs"])
    world.clock.advance(minutes=1)
    world.run_pass()[1].close()
    assert (world.tmp / "cfs" / "raw" / "2029" / "a.h5").read_bytes() == b"a" * 10


def test_a_task_stalled_without_progress_is_cancelled_after_stall_hours(world: World) -> None:
    world.globus = {"stall_hours": 6}
    world.write("2029/a.h5", b"a" * 10, OLD)
    world.fake.fault_collection(world.ids["cfs"], "CONNECTION_RESET")  # transient, no progress
    world.run_pass()[1].close()
    world.clock.advance(hours=5)
    world.run_pass()[1].close()
    assert world.fake.calls["cancel"] == 0
    world.clock.advance(hours=1, seconds=1)
    world.run_pass()[1].close()
    assert world.fake.calls["cancel"] == 1
    world.clock.advance(minutes=1)
    world.run_pass()[1].close()
    error_class, message = world.failures()["2029/a.h5"]
    assert error_class == ErrorClass.NEEDS_HUMAN.value and "stall_hours" in message


def test_new_scans_are_copied_in_the_pass_that_finds_them_while_a_backlog_drains(
    world: World,
) -> None:
    """A backlog of old scans that takes many passes to drain (12 batches; each task moves one
    file per poll) holds the shared slots; a new scan still goes out in the pass that finds it,
    in the slot kept for new scans. Deletes would have their own three slots."""
    world.globus = {"max_items_per_task": 5, "max_active_tasks": 3, "realtime_slots": 1}
    world.fake.files_per_poll = 1
    for i in range(60):
        world.write(f"2020/old_{i:03d}.h5", bytes([i]) * 8, OLD + i)
    report, store = world.run_pass()
    store.close()
    # Two shared slots take backlog batches; the real-time slot stays free for new scans.
    assert report.submitted == 10 and len(world.fake.tasks) == 2
    for step in range(3):
        world.clock.advance(minutes=1)
        name = f"2030/new_{step}.h5"
        world.write(name, b"new" * 4, world.clock.now().timestamp() - 60)
        report, store = world.run_pass()
        store.close()
        new_tasks = [t for t in world.fake.tasks.values() if "new scans" in (t.label or "")]
        assert any(
            item["source_path"] == f"/raw/{name}" for t in new_tasks for item in t.body["DATA"]
        ), f"{name} was not submitted in the pass that found it"
        # Never more than 3 transfer tasks open at once (Transfer would queue the rest).
        open_tasks = [t for t in world.fake.tasks.values() if t.status == "ACTIVE"]
        assert len(open_tasks) <= 3

"""Adversary: faults on ACTIVE Globus tasks, stalls, slots and prefix-named culprits, through
the reconciler on a FakeClock (each pass builds backends and store afresh, as `--reconcile
--once` does, so every pass is also a restart)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.model import ErrorClass
from engine.storage.globus_mover import GlobusMover
from tests.engine_world import open_engine
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


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with globus_world(tmp_path) as w:
        yield w


@pytest.mark.parametrize("bad", ["2029/a.h5", "2029/a.h5.1"])
def test_a_culprit_whose_name_is_a_prefix_of_another_is_told_apart(world: World, bad: str) -> None:
    for name in ("2029/a.h5", "2029/a.h5.1", "2029/b.h5"):
        world.write(name, name.encode() * 10, OLD)
    assert one_pass(world).submitted == 3
    (task,) = world.fake.tasks.values()
    flip(world.raw / bad)
    world.clock.advance(minutes=1)
    one_pass(world)
    assert task.status == "FAILED" and task.fatal_error["code"] == "CHECKSUM_MISMATCH"
    failed = world.failures()
    assert failed[bad][0] == ErrorClass.NEEDS_HUMAN.value and f"/raw/{bad}:" in failed[bad][1]
    for other in {"2029/a.h5", "2029/a.h5.1", "2029/b.h5"} - {bad}:
        if other in failed:
            error_class, message = failed[other]
            assert error_class == ErrorClass.TRANSIENT.value and bad not in message, message


@pytest.mark.parametrize(
    ("nice_status", "person"),
    [
        ("PERMISSION_DENIED", True),
        ("FILE_NOT_FOUND", True),
        ("QUOTA_EXCEEDED", True),
        ("NO_IDENTITY_MAPPING", True),
        ("ENDPOINT_TOO_BUSY", False),
        ("CONNECTION_FAILED", False),
        ("CONNECTION_RESET", False),
    ],
)
def test_fault_classes_on_an_active_task(world: World, nice_status: str, person: bool) -> None:
    """Person-only faults: a `task_fault` alert in the first pass that polls, naming the
    collection, and a cancel after `persistent_fault_minutes` with the scan needs_human naming
    the collection. Busy/connection: no alert, no cancel (stall_hours is far away)."""
    world.globus = {"persistent_fault_minutes": 20, "stall_hours": 100}
    world.write("2029/a.h5", b"a" * 10, OLD)
    world.fake.fault_collection(world.ids["cfs"], nice_status)
    one_pass(world)
    world.clock.advance(minutes=1)
    report = one_pass(world)
    alerts = task_alerts(report)
    if not person:
        assert not alerts
        world.clock.advance(minutes=30)
        report = one_pass(world)
        assert not task_alerts(report) and world.fake.calls["cancel"] == 0
        return
    (alert,) = alerts
    assert nice_status in alert.message and world.ids["cfs"] in alert.message
    world.clock.advance(minutes=20)
    one_pass(world)
    assert world.fake.calls["cancel"] == 1
    world.clock.advance(minutes=1)
    one_pass(world)
    error_class, message = world.failures()["2029/a.h5"]
    assert error_class == ErrorClass.NEEDS_HUMAN.value
    assert nice_status in message and world.ids["cfs"] in message


def test_a_fault_that_clears_before_the_limit_is_not_cancelled_and_its_clock_restarts(
    world: World,
) -> None:
    assert task_alerts(faulted_copy(world, fault_minutes=30))
    world.clock.advance(minutes=25)
    one_pass(world)
    world.fake.clear_collection_fault(world.ids["cfs"])
    # The fault returns at once: the clock must count from now, not from the first sighting...
    world.clock.advance(minutes=1)
    world.fake.files_per_poll = 0  # the task makes no progress while we look
    report = one_pass(world)
    assert not task_alerts(report)
    world.fake.fault_collection(world.ids["cfs"], "PERMISSION_DENIED")
    world.clock.advance(minutes=1)
    one_pass(world)
    world.clock.advance(minutes=20)
    one_pass(world)
    assert world.fake.calls["cancel"] == 0  # 21 minutes of the second fault only
    world.fake.clear_collection_fault(world.ids["cfs"])
    world.fake.files_per_poll = None
    world.clock.advance(minutes=1)
    one_pass(world)
    assert world.fake.calls["cancel"] == 0
    assert (world.tmp / "cfs" / "raw" / "2029" / "a.h5").read_bytes() == b"a" * 10
    assert "2029/a.h5" not in world.failures()


def test_a_cancel_the_process_died_during_still_ends_needs_human_naming_the_collection(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel reached Transfer but the process died before recording it: the next pass sees
    the task FAILED with CANCELED. Promised: the scan needs a person, naming the fault and the
    collection (not a terminal 'CANCELED' that names neither)."""
    faulted_copy(world, fault_minutes=10)
    world.clock.advance(minutes=10)
    real_cancel = GlobusMover.cancel

    def cancel_then_die(self: GlobusMover, task_id: str) -> None:
        real_cancel(self, task_id)
        raise SystemExit("killed right after the cancel was sent")

    monkeypatch.setattr(GlobusMover, "cancel", cancel_then_die)
    with pytest.raises(SystemExit):
        one_pass(world)
    monkeypatch.setattr(GlobusMover, "cancel", real_cancel)
    (task,) = world.fake.tasks.values()
    assert task.status == "FAILED" and task.fatal_error["code"] == "CANCELED"
    world.clock.advance(minutes=1)
    one_pass(world)
    error_class, message = world.failures()["2029/a.h5"]
    assert error_class == ErrorClass.NEEDS_HUMAN.value, (error_class, message)
    assert "PERMISSION_DENIED" in message and world.ids["cfs"] in message, message


def test_cancelled_tasks_that_linger_still_hold_their_slots(world: World) -> None:
    """Three transfer tasks stuck on a permission fault are cancelled, but Transfer has not
    stopped them yet: bl931 must not open a fourth transfer task meanwhile."""
    world.globus = {
        "persistent_fault_minutes": 5,
        "stall_hours": 100,
        "max_items_per_task": 1,
        "realtime_slots": 1,
    }
    for i in range(6):
        world.write(f"2029/s{i}.h5", bytes([i]) * 8, OLD + i)
    world.fake.fault_collection(world.ids["cfs"], "PERMISSION_DENIED")
    world.fake.cancels_linger = 100
    one_pass(world)
    for _ in range(4):
        world.clock.advance(minutes=5)
        one_pass(world)
        transfers = [t for t in world.fake.tasks.values() if t.kind == "TRANSFER"]
        assert len([t for t in transfers if t.status == "ACTIVE"]) <= 3
    assert world.fake.calls["cancel"] >= 2


def test_a_slow_transfer_that_keeps_progressing_outlives_24_hours_without_a_cancel(
    world: World,
) -> None:
    """No deadline on a transfer: a slow one that keeps progressing (one file per 110 minutes,
    stall_hours = 2) runs past Transfer's initial 24 h deadline and is never cancelled."""
    world.globus = {"stall_hours": 2, "max_items_per_task": 20}
    world.fake.files_per_poll = 1
    for i in range(16):
        world.write(f"2029/s{i}.h5", bytes([i]) * 8, OLD + i)
    one_pass(world)
    (task,) = world.fake.tasks.values()
    assert "deadline" not in task.body or not task.body["deadline"]
    for _ in range(20):
        world.clock.advance(hours=1, minutes=50)  # less than stall_hours between progress
        one_pass(world)
        if task.status != "ACTIVE":
            break
    assert world.fake.calls["cancel"] == 0
    assert task.status == "SUCCEEDED", (task.status, task.nice_status, task.fatal_error)
    assert world.clock.now() - START > timedelta(hours=24)
    assert (world.tmp / "cfs" / "raw" / "2029" / "s15.h5").read_bytes() == bytes([15]) * 8


def test_a_crash_between_submit_and_recording_it_never_opens_a_fourth_task(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The submit reaches Transfer, the process dies before the task id is stored. The next
    pass must resend it under the same submission id (Duplicate) and still count it: never
    more than the shared slots for a backlog, never a second task for one submission."""
    world.globus = {"max_items_per_task": 1, "max_active_tasks": 3, "realtime_slots": 1}
    world.fake.files_per_poll = 0  # tasks stay open
    for i in range(6):
        world.write(f"2020/old_{i}.h5", bytes([i]) * 8, OLD + i)
    real_submit = GlobusMover.submit

    def submit_then_die(self: GlobusMover, request: Any) -> str:
        real_submit(self, request)
        raise SystemExit("killed after the submit reached Transfer")

    monkeypatch.setattr(GlobusMover, "submit", submit_then_die)
    with pytest.raises(SystemExit):
        one_pass(world)
    monkeypatch.setattr(GlobusMover, "submit", real_submit)
    assert len(world.fake.tasks) == 1
    for _ in range(3):
        world.clock.advance(minutes=1)
        one_pass(world)
        open_transfers = [t for t in world.fake.tasks.values() if t.status == "ACTIVE"]
        # All backlog: the real-time slot stays free, two shared slots at most.
        assert len(open_transfers) <= 2, [t.label for t in open_transfers]
    assert len(world.fake.submissions) == len(world.fake.tasks)


def test_retry_after_is_honoured_across_once_passes(world: World) -> None:
    world.write("2029/a.h5", b"a" * 10, OLD)
    seen = paths_asked(world)
    world.fake.fail_next("ls", 3, 429, retry_after=600)
    one_pass(world)
    throttled = next(p for p in seen if "/ls" in p)
    collection = throttled.split("/operation/endpoint/")[1].split("/")[0]
    seen.clear()
    world.clock.advance(minutes=1)
    one_pass(world)  # a new process, 60 s into the 600 s wait
    again = [p for p in seen if "/ls" in p and collection in p]
    assert not again, again


def flap(world: World, faults: list[str], steps: int) -> None:
    """Each fault in turn for 15 minutes (polled at 1 and 15 minutes)."""
    world.fake.fault_collection(world.ids["cfs"], faults[0])
    one_pass(world)
    for step in range(1, steps + 1):
        world.clock.advance(minutes=1)
        one_pass(world)
        world.clock.advance(minutes=14)
        world.fake.fault_collection(world.ids["cfs"], faults[step % len(faults)])
        one_pass(world)


def test_person_only_faults_that_change_code_still_count_as_one_persistent_fault(
    world: World,
) -> None:
    world.globus = {"persistent_fault_minutes": 20, "stall_hours": 100}
    world.write("2029/a.h5", b"a" * 10, OLD)
    flap(world, ["PERMISSION_DENIED", "QUOTA_EXCEEDED"], 5)
    assert world.clock.now() - START >= timedelta(minutes=75)
    assert world.fake.calls["cancel"] == 1


def test_a_person_fault_interleaved_with_a_transient_one_is_bounded_by_stall_hours(
    world: World,
) -> None:
    """PERMISSION_DENIED and CONNECTION_RESET take turns every 15 minutes (limit 20): each
    sighting of the person-only fault counts afresh (it cleared in between, so no
    fault-cancel), but the task makes no progress, so `stall_hours` (1.5 h) ends it and the
    scan needs a person."""
    world.globus = {"persistent_fault_minutes": 20, "stall_hours": 1.5}
    world.write("2029/a.h5", b"a" * 10, OLD)
    flap(world, ["PERMISSION_DENIED", "CONNECTION_RESET"], 7)
    assert world.fake.calls["cancel"] == 1
    world.clock.advance(minutes=1)
    one_pass(world)
    error_class, message = world.failures()["2029/a.h5"]
    assert error_class == ErrorClass.NEEDS_HUMAN.value and "stall_hours" in message, message


def audit_of(world: World, run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[int, Any]:
    """`bl931tui --dry-run --json --as-of <fake now>` on the world's state, through the CLI."""
    import json

    globus = "".join(f"{k} = {v!r}\n" for k, v in world.globus.items())
    config = world.tmp / "bl931.toml"
    config.write_text(
        f"""[state]
path = "{world.tmp / "state.sqlite"}"
[inventory]
quiet_seconds = 0
[endpoints.dtn]
kind = "globus"
collection = "{world.ids["dtn"]}"
root = "/raw"
path = "{world.raw}"
[endpoints.cfs]
kind = "globus"
collection = "{world.ids["cfs"]}"
root = "/raw"
[[copy]]
from = "dtn"
to = "cfs"
[catalog]
kind = "none"
[globus]
{globus}""",
        "utf-8",
    )
    for name, value in world.fake.environ.items():
        monkeypatch.setenv(name, value)
    done = run_cli("--dry-run", "--json", "--as-of", world.clock.now().isoformat(), config=config)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_a_stalled_copy_reads_as_needing_a_person_in_the_audit(
    world: World, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.globus = {"stall_hours": 3}
    world.write("2029/a.h5", b"a" * 10, OLD)
    world.fake.files_per_poll = 0  # Transfer takes the task but moves nothing
    one_pass(world)
    code, doc = audit_of(world, run_cli, monkeypatch)
    assert code == 2 and doc["outcome"] == "pending", doc  # in flight, not settled
    world.clock.advance(hours=3, minutes=1)
    one_pass(world)  # cancelled
    world.clock.advance(minutes=1)
    one_pass(world)  # Transfer shows it ended: needs attention
    code, doc = audit_of(world, run_cli, monkeypatch)
    assert code == 1 and doc["outcome"] == "needs_person", doc
    blocked = {b["scan"]: b for b in doc["blocked"] if b["reason_code"] == "needs_attention"}
    assert "stall_hours" in blocked["2029/a.h5"]["reason"], blocked


def test_a_source_side_fault_names_the_source_collection(world: World) -> None:
    world.globus = {"persistent_fault_minutes": 10, "stall_hours": 100}
    world.write("2029/a.h5", b"a" * 10, OLD)
    world.fake.fault_collection(world.ids["dtn"], "PERMISSION_DENIED")
    one_pass(world)
    world.clock.advance(minutes=1)
    (alert,) = task_alerts(one_pass(world))
    assert world.ids["dtn"] in alert.message
    world.clock.advance(minutes=10)
    one_pass(world)
    world.clock.advance(minutes=1)
    one_pass(world)
    error_class, message = world.failures()["2029/a.h5"]
    assert error_class == ErrorClass.NEEDS_HUMAN.value and world.ids["dtn"] in message


def long_running(world: World) -> tuple[Any, Any]:
    """One process, many passes: the backends and store built once (as `--reconcile` does)."""
    engine = open_engine(world.config(), clock=world.clock, environ=world.fake.environ)
    return engine.reconciler, (engine.backends, engine.store)


@pytest.mark.usefixtures("quick_sdk_retries")
def test_retry_after_on_listings_holds_that_collection_in_a_long_running_process(
    world: World,
) -> None:
    world.write("2029/a.h5", b"a" * 10, OLD)
    reconciler, (backends, store) = long_running(world)
    try:
        seen = paths_asked(world)
        world.fake.fail_next("ls", 3, 429, retry_after=600)
        report = reconciler.reconcile_once()
        assert not report.ok
        throttled = next(p for p in seen if p.endswith("/ls")).split("/")[-2]
        seen.clear()
        world.clock.advance(minutes=1)
        report = reconciler.reconcile_once()
        assert not [p for p in seen if p.endswith("/ls") and throttled in p], seen
        assert [p for p in seen if p.endswith("/ls")], "the other collection went on"
        assert not report.ok  # still unknown: never read as in sync
        world.clock.advance(minutes=10)
        seen.clear()
        reconciler.reconcile_once()
        assert [p for p in seen if p.endswith("/ls") and throttled in p]
    finally:
        backends.close()
        store.close()


@pytest.mark.usefixtures("quick_sdk_retries")
def test_retry_after_on_task_polls_is_honoured(world: World) -> None:
    world.write("2029/a.h5", b"a" * 10, OLD)
    world.fake.files_per_poll = 0
    reconciler, (backends, store) = long_running(world)
    try:
        reconciler.reconcile_once()  # submits
        world.fake.fail_next("task", 3, 429, retry_after=600)
        world.clock.advance(minutes=1)
        reconciler.reconcile_once()  # the poll is throttled
        asked = world.fake.calls["task"]
        world.clock.advance(minutes=1)
        reconciler.reconcile_once()
        assert world.fake.calls["task"] == asked, "polled again inside Retry-After"
    finally:
        backends.close()
        store.close()


def test_a_progressing_transfer_in_flight_across_the_upgrade_is_not_stall_cancelled(
    world: World,
) -> None:
    world.globus = {"stall_hours": 100, "max_items_per_task": 40}
    world.fake.files_per_poll = 1
    for i in range(30):
        world.write(f"2029/s{i:02d}.h5", bytes([i]) * 8, OLD + i)
    one_pass(world)
    for _ in range(13):  # an older bl931 polls it hourly; it copies a file each time
        world.clock.advance(hours=1)
        one_pass(world)
    (task,) = world.fake.tasks.values()
    assert task.status == "ACTIVE" and task.files_transferred >= 12
    # The state as migration 8 leaves it: the table exists, no row for the task in flight.
    from engine.state import StateStore

    store = StateStore(world.tmp / "state.sqlite")
    with store.transaction() as conn:
        conn.execute("DELETE FROM task_watch")
    store.close()
    world.globus = {"stall_hours": 12, "max_items_per_task": 40}
    world.clock.advance(minutes=30)
    one_pass(world)  # it progressed 30 minutes ago (and now again)
    assert world.fake.calls["cancel"] == 0

"""The INACTIVE clock on the task rows of a real state store (engine/storage/globus_inactive.py):
a new process resumes it, a task without a row or a read-only store is timed in memory, and a
poll of a running task writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.state import StateStore, TaskRow
from engine.storage.globus_inactive import StoredInactiveClocks

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def store_with_task(path: Path) -> StateStore:
    store = StateStore(path)
    store.create_task(
        TaskRow("sub-1", "task-1", "globus", "copy", "dtn", "cfs", "label", "active", ()), {}, T0
    )
    return store


def test_a_new_process_resumes_the_clock_and_a_running_poll_stops_it(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = store_with_task(path)
    assert StoredInactiveClocks(store).start("task-1", T0) == T0
    store.close()
    restarted = StateStore(path)  # a new process: nothing in memory
    clocks = StoredInactiveClocks(restarted)
    assert clocks.start("task-1", T0 + timedelta(minutes=50)) == T0
    clocks.stop("task-1")  # the task runs again
    assert restarted.task_inactive_since("task-1") is None
    assert clocks.start("task-1", T0 + timedelta(hours=2)) == T0 + timedelta(hours=2)
    restarted.close()


def test_a_poll_of_a_running_task_writes_nothing(tmp_path: Path) -> None:
    store = store_with_task(tmp_path / "state.sqlite")
    writes: list[str] = []
    store.connection().set_trace_callback(writes.append)
    StoredInactiveClocks(store).stop("task-1")
    store.connection().set_trace_callback(None)
    store.close()
    assert not [w for w in writes if w.lstrip().upper().startswith(("UPDATE", "BEGIN"))], writes


def test_without_a_row_or_on_a_read_only_store_the_clock_is_kept_in_memory(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite"
    store = store_with_task(path)
    clocks = StoredInactiveClocks(store)
    assert clocks.start("unknown-task", T0) == T0
    assert clocks.start("unknown-task", T0 + timedelta(minutes=5)) == T0
    store.close()
    readonly = StateStore(path, readonly=True)
    clocks = StoredInactiveClocks(readonly)
    assert clocks.start("task-1", T0) == T0
    assert clocks.start("task-1", T0 + timedelta(minutes=5)) == T0
    readonly.close()
    reopened = StateStore(path)
    assert reopened.task_inactive_since("task-1") is None  # the audit wrote nothing
    reopened.close()

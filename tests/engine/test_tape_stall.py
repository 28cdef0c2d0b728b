"""The Globus stall rule never cancels a tape bundle job: such a task reports no progress until
it ends, and Slurm bounds it by its own walltime. A Globus copy with the same history is
cancelled (the contrast that shows the rule still bites)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.config import load_config
from engine.state import StateStore, TaskRow
from engine.storage.base import TaskStatus
from engine.task_watch import TaskWatch
from engine.workspace import create_workspace

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class _Remote:
    """What TaskWatch asks of a mover: whether its work runs here, and to cancel."""

    finishes_locally = False

    def __init__(self) -> None:
        self.cancelled: list[str] = []

    def cancel(self, task_id: str) -> None:
        self.cancelled.append(task_id)


@pytest.mark.parametrize(("mover", "cancelled"), [("tape:hpss", False), ("globus:nersc", True)])
def test_no_progress_past_stall_hours_cancels_globus_copies_only(
    tmp_path: Path, mover: str, cancelled: bool
) -> None:
    ws = create_workspace(tmp_path / "ws")
    config = load_config(ws.config_path)
    store = StateStore(ws.state_path)
    try:
        watch = TaskWatch(store, config)
        task = TaskRow("sub-1", "task-1", mover, "copy", "cfs", "hpss", "label", "active", ())
        remote = _Remote()
        watch.started(task, remote, START)  # type: ignore[arg-type]
        later = START + timedelta(hours=config.globus.stall_hours + 1)

        status = watch.check(task, TaskStatus("task-1", "active"), remote, later)  # type: ignore[arg-type]

        assert (remote.cancelled == ["task-1"]) is cancelled
        assert status.state == "active" or cancelled
    finally:
        store.close()

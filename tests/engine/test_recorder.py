"""The recorder: one call logs an event and stores it, with the same identifiers in both."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.model import ErrorClass
from engine.recorder import Recorder
from engine.state import StateStore
from engine.workspace import create_workspace

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@dataclass(frozen=True)
class Acted:
    """An action as the tallies see it (engine.tallies.Acted)."""

    kind: str
    target: str | None


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    config = create_workspace(tmp_path / "ws").config()
    store = StateStore(tmp_path / "state.sqlite")
    return Recorder(store, config)


def test_an_event_is_logged_and_stored_once_with_the_same_identifiers(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="engine.executor")
    recorder.event(
        NOW,
        "delete.recheck_failed",
        "delete from dtn skipped: a hold was placed",
        scan="2026/a.h5",
        action_id="act-1",
        level="warning",
        data={"reason_code": "on_hold"},
    )
    (row,) = recorder.store.events()
    assert (row["kind"], row["level"], row["scan"], row["action_id"]) == (
        "delete.recheck_failed",
        "warning",
        "2026/a.h5",
        "act-1",
    )
    assert row["data"] == {"reason_code": "on_hold"} and row["at"] == NOW.isoformat()
    (record,) = [r for r in caplog.records if getattr(r, "event", None)]
    assert record.levelno == logging.WARNING and record.name == "engine.executor"
    assert (record.event, record.scan, record.action_id) == (  # type: ignore[attr-defined]
        "delete.recheck_failed",
        "2026/a.h5",
        "act-1",
    )
    assert record.getMessage() == (
        "delete.recheck_failed [act-1] '2026/a.h5': delete from dtn skipped: a hold was placed"
    )


def test_levels_map_to_log_levels_and_an_unknown_word_logs_as_info(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="engine.executor")
    for level in ("info", "warning", "error", "notice"):
        recorder.event(NOW, f"test.{level}", "m", level=level)
    seen = {r.event: r.levelno for r in caplog.records}  # type: ignore[attr-defined]
    assert seen == {
        "test.info": logging.INFO,
        "test.warning": logging.WARNING,
        "test.error": logging.ERROR,
        "test.notice": logging.INFO,
    }
    assert [e["level"] for e in recorder.store.events()] == ["info", "warning", "error", "notice"]


def test_a_failure_is_stored_with_its_retry_time_and_recorded_as_one_event(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="engine.executor")
    copy = Acted("copy", "cfs")
    recorder.fail("act-2", "2026/b.h5", ErrorClass.TRANSIENT, "endpoint busy", NOW, action=copy)
    recorder.fail(
        "act-3", "2026/c.h5", ErrorClass.NEEDS_HUMAN, "permission denied", NOW, action=copy
    )
    recorder.fail(
        "act-4",
        "2026/d.h5",
        ErrorClass.TRANSIENT,
        "stopped",
        NOW,
        action=copy,
        retry_now=True,
        interrupted=True,
    )
    events = {e["action_id"]: e for e in recorder.store.events()}
    busy = events["act-2"]
    assert busy["kind"] == "action.failed" and busy["level"] == "error"
    assert busy["message"] == "transient: endpoint busy"
    base = recorder.config.retry.base_seconds
    assert busy["data"]["class"] == "transient"
    assert datetime.fromisoformat(busy["data"]["retry_at"]) == NOW + timedelta(seconds=base)
    assert events["act-3"]["data"] == {"class": "needs_human", "retry_at": None}
    cut = events["act-4"]
    assert (cut["kind"], cut["level"], cut["message"]) == (
        "action.interrupted",
        "warning",
        "stopped",
    )
    assert cut["data"]["retry_at"] == NOW.isoformat()
    classes = {r.action_id: r.error_class for r in caplog.records}  # type: ignore[attr-defined]
    assert classes == {"act-2": "transient", "act-3": "needs_human", "act-4": "transient"}

"""One back-off for failed actions and for endpoints that keep failing (`engine.backoff`)."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.backends import Backends
from engine.backoff import MAX_DOUBLINGS, backoff_seconds
from engine.breaker import CircuitBreaker
from engine.config import SafetyConfig
from engine.errors import CatalogUnavailable
from engine.workspace import create_workspace
from tests.conftest import MakeEngine

START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("doublings", "seconds"),
    [(-1, 30.0), (0, 30.0), (1, 60.0), (6, 1920.0), (7, 3600.0), (10_000, 3600.0)],
)
def test_the_delay_doubles_up_to_its_cap(doublings: int, seconds: float) -> None:
    assert backoff_seconds(doublings, 30, 3600) == seconds


def test_a_huge_cap_is_reached_without_overflow() -> None:
    assert backoff_seconds(5000, 1.0, float("inf")) == 2.0**MAX_DOUBLINGS


def test_the_breaker_waits_by_the_same_arithmetic() -> None:
    safety = SafetyConfig(
        endpoint_backoff_after=3, endpoint_backoff_seconds=60, endpoint_backoff_max_seconds=1800
    )
    breaker = CircuitBreaker(safety)
    health: dict[str, Any] = {"consecutive_failures": 2, "last_error_at": START}
    assert breaker.open_until(health) is None  # below the threshold: listed
    for failures in (3, 4, 8, 5000):
        health["consecutive_failures"] = failures
        delay = backoff_seconds(failures - 3, 60, 1800)
        assert breaker.open_until(health) == START + timedelta(seconds=delay)
    held = breaker.check({**health, "last_error": "timed out", "last_ok_at": None}, START)
    assert held is not None and "5000 consecutive failures" in held.reason
    assert breaker.check(health, START + timedelta(seconds=1800)) is None


def refuse_registrations(backends: Backends) -> None:
    """The local catalog refuses every registration as a catalog that went away mid-pass would
    (`CatalogUnavailable`: a transient failure of the action, engine.executor's
    `_catalog_failure`); everything else about it is unchanged."""

    def register(*args: Any, **kwargs: Any) -> str:
        raise CatalogUnavailable("catalog: connection reset by peer")

    backends.catalog.register = register  # type: ignore[method-assign,union-attr]


def test_an_action_that_failed_a_thousand_times_still_gets_a_retry_time(
    tmp_path: Path, make_engine: MakeEngine
) -> None:
    """A registration that has been failing for weeks (over a thousand attempts at the
    one-hour cap) fails once more: it is retried after the cap, and the pass does not crash
    (2**1100 seconds is more than a float holds)."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000, cfs_keep_days=1000)
    ws.write_scan("2026/a.h5", os.urandom(64), mtime=START - timedelta(days=1))
    config = ws.config()

    engine = make_engine(config, start=START, prepare=refuse_registrations)
    failed = None
    for _ in range(4):  # copied, verified, then registered
        engine.reconcile()
        engine.clock.advance(seconds=1)
        refused = [a for a in engine.store.actions(["failed"]) if a.kind.value == "register"]
        if refused:
            (failed,) = refused
            break
    assert failed is not None, "no registration was attempted"
    assert failed.error_class == "transient" and failed.retry_at is not None
    with sqlite3.connect(config.state.path) as db:  # weeks of failures, the retry now due
        db.execute(
            "UPDATE actions SET attempts = 1100, retry_at = ? WHERE id = ?",
            (START.isoformat(), failed.id),
        )
    engine.clock.advance(minutes=1)
    report = engine.reconcile()
    assert report.failed == 1
    (again,) = [a for a in engine.store.actions(["failed"]) if a.id == failed.id]
    assert again.retry_at == engine.clock.now() + timedelta(seconds=config.retry.max_seconds)

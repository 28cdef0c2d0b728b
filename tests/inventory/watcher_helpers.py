"""Shared helpers for the watcher tests: bounded waits and a watcher factory (no fixed sleeps)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.config import InventoryConfig
from engine.inventory.watcher import ScanWatcher
from engine.layout import ScanLayout


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, step: float = 0.02) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; returns its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def make_watcher(root: Path, **inventory: Any) -> ScanWatcher:
    """A watcher over `root` with an `[inventory]` section built from keyword arguments.

    `check_seconds` and `poll_seconds` are passed to the watcher itself; the rest to the config.
    """
    tuning = {k: inventory.pop(k) for k in ("check_seconds", "poll_seconds") if k in inventory}
    config = InventoryConfig(**inventory)
    completions: list[str] = []
    watcher = ScanWatcher(
        root,
        ScanLayout.from_config(config),
        config,
        on_complete=completions.extend,
        **tuning,
    )
    watcher.completion_log = completions  # type: ignore[attr-defined]
    return watcher

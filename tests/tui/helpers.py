"""Waiting helpers shared by the TUI tests (conditions, never sleeps)."""

from __future__ import annotations

from textual.pilot import Pilot


async def settle(pilot: Pilot[object]) -> None:
    """Wait until every worker is done and every message they posted is handled."""
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

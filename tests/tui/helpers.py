"""Waiting helpers shared by the TUI tests (conditions, never sleeps)."""

from __future__ import annotations

from textual.pilot import Pilot


async def settle(pilot: Pilot[object]) -> None:
    """Wait until every worker is done and every message they posted is handled."""
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def screen_text(pilot: Pilot[object]) -> str:
    """What the terminal shows now, as plain text lines (the screen in front, composited)."""
    strips = pilot.app.screen._compositor.render_strips()
    return "\n".join(strip.text.rstrip() for strip in strips)

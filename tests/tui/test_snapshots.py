"""Snapshots at 80×24 (the SSH default) and 160×48, with a fixed clock and fixed data.

Every screen and dialog an operator decides from is here at both sizes. Review a failure in
`snapshot_report.html`; update with `--snapshot-update` only after looking at the new pictures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from bl931tui.app import Bl931App
from engine.state import StateStore
from engine.workspace import create_workspace
from tests.tui.conftest import MakeScenario
from tests.tui.helpers import settle
from tests.tui.scenarios import SCENARIOS, USER, fixed_clock

SIZES = [(80, 24), (160, 48)]
size_ids = pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")


def keys(*pressed: str):  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot[object]) -> None:
        await settle(pilot)
        for key in pressed:
            await pilot.press(key)
            await settle(pilot)

    return run_before


@size_ids
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scans_screen(
    snap_compare, make_scenario: MakeScenario, name: str, size: tuple[int, int]
) -> None:  # type: ignore[no-untyped-def]
    app = make_scenario(name).app()
    assert snap_compare(app, terminal_size=size, run_before=settle)


# (scenario, keys pressed): each screen and dialog, at both sizes.
VIEWS = {
    "detail_awaiting": ("awaiting_approval", ("down", "enter")),
    "detail_rejected": ("decisions", ("enter",)),
    "approvals_marked": ("decisions", ("a", "space", "down", "space")),
    "reject_dialog": ("decisions", ("a", "space", "down", "space", "down", "space", "x")),
    "unreject_dialog": ("decisions", ("a", "tab", "tab", "u")),
    "delete_confirmation": ("awaiting_approval", ("a", "A")),
    "tasks": ("in_flight", ("t",)),
    "events": ("failures", ("e",)),
    "event_dialog": ("failures", ("e", "enter")),
    "alerts": ("alerts", ("exclamation_mark",)),
    "acknowledge_dialog": ("alerts", ("exclamation_mark", "y")),
    "help": ("fresh", ("question_mark",)),
    "hold_dialog": ("awaiting_approval", ("down", "h")),
    "filtered_faults": ("decisions", ("f",)),
}


@size_ids
@pytest.mark.parametrize("view", sorted(VIEWS))
def test_view(snap_compare, make_scenario: MakeScenario, view: str, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    name, pressed = VIEWS[view]
    app = make_scenario(name).app()
    assert snap_compare(app, terminal_size=size, run_before=keys(*pressed))


@size_ids
@pytest.mark.parametrize("screen", ["scans", "t", "e", "a"])
def test_empty_store(snap_compare, tmp_path: Path, screen: str, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    ws = create_workspace(tmp_path / "ws")
    StateStore(ws.config().state.path).close()
    app = Bl931App(ws.config(), user=USER, clock=fixed_clock, refresh_seconds=None)
    pressed = () if screen == "scans" else (screen,)
    assert snap_compare(app, terminal_size=size, run_before=keys(*pressed))


@size_ids
def test_no_state_store(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    ws = create_workspace(tmp_path / "ws")
    app = Bl931App(ws.config(), user=USER, clock=fixed_clock, refresh_seconds=None)
    assert snap_compare(app, terminal_size=size, run_before=settle)

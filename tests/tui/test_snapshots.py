"""Snapshots at 80×24 and 160×48 with a fixed clock and fixed data, one per scenario.

Review a failure in `snapshot_report.html`; update with `--snapshot-update` only after reviewing.
"""

from __future__ import annotations

import pytest
from textual.pilot import Pilot

from tests.tui.conftest import MakeScenario
from tests.tui.helpers import settle
from tests.tui.scenarios import SCENARIOS

SIZES = [(80, 24), (160, 48)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scans_screen(
    snap_compare, make_scenario: MakeScenario, name: str, size: tuple[int, int]
) -> None:  # type: ignore[no-untyped-def]
    app = make_scenario(name).app()
    assert snap_compare(app, terminal_size=size, run_before=settle)


def test_detail_screen(snap_compare, make_scenario: MakeScenario) -> None:  # type: ignore[no-untyped-def]
    app = make_scenario("awaiting_approval").app()

    async def run_before(pilot: Pilot[object]) -> None:
        await settle(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(160, 48), run_before=run_before)


def test_delete_confirmation(snap_compare, make_scenario: MakeScenario) -> None:  # type: ignore[no-untyped-def]
    app = make_scenario("awaiting_approval").app()

    async def run_before(pilot: Pilot[object]) -> None:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("A")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_alerts_screen(snap_compare, make_scenario: MakeScenario) -> None:  # type: ignore[no-untyped-def]
    app = make_scenario("alerts").app()

    async def run_before(pilot: Pilot[object]) -> None:
        await settle(pilot)
        await pilot.press("exclamation_mark")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_acknowledge_dialog(snap_compare, make_scenario: MakeScenario) -> None:  # type: ignore[no-untyped-def]
    app = make_scenario("alerts").app()

    async def run_before(pilot: Pilot[object]) -> None:
        await settle(pilot)
        await pilot.press("exclamation_mark")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)

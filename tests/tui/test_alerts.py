"""Alerts in the TUI: the header count, the Alerts screen, and acknowledging from it.

Every assertion about a decision reads the state store itself (`AlertLog`), never the screen.
"""

from __future__ import annotations

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Button, Input

from bl931tui.app import Bl931App
from bl931tui.screens.alerts import EMPTY, AlertsScreen
from bl931tui.screens.dialogs import AcknowledgeDialog
from bl931tui.screens.help import HelpScreen, help_table
from bl931tui.widgets.status import ContextHeader
from bl931tui.widgets.virtual_table import VirtualTable
from engine.alert_log import AlertLog, AlertRecord
from tests.tui.conftest import MakeScenario
from tests.tui.helpers import settle
from tests.tui.scenarios import NOW, USER, Scenario, scenario_alerts

pytestmark = pytest.mark.asyncio


def stored(scenario: Scenario) -> dict[str, AlertRecord]:
    store = scenario.store()
    try:
        return AlertLog(store).records(standing_only=True)
    finally:
        store.close()


def header(app: Bl931App) -> str:
    return str(app.scans_screen.query_one(ContextHeader).render())


def alerts_table(app: Bl931App) -> VirtualTable[AlertRecord]:
    return app.screen.query_one(VirtualTable)


def notifications(app: Bl931App) -> list[str]:
    return [n.message for n in app._notifications]


async def open_alerts(pilot: Pilot[object]) -> None:
    await settle(pilot)
    await pilot.press("exclamation_mark")
    await settle(pilot)
    assert isinstance(pilot.app.screen, AlertsScreen)


async def highlight(pilot: Pilot[object], code: str) -> None:
    table = pilot.app.screen.query_one(VirtualTable)
    table.move_cursor(next(i for i, row in enumerate(table.rows) if row.code == code))
    await pilot.pause()


async def test_header_counts_standing_alerts_in_words(make_scenario: MakeScenario) -> None:
    app = make_scenario("alerts").app()
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        assert "⚠ 3 alerts │" in header(app)
    quiet = make_scenario("fresh").app()
    async with quiet.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        assert "alert" not in header(quiet) and "⚠" not in header(quiet)


async def test_alerts_screen_lists_each_standing_alert(make_scenario: MakeScenario) -> None:
    scenario = make_scenario("alerts")
    app = scenario.app()
    async with app.run_test(size=(160, 40)) as pilot:
        await open_alerts(pilot)
        table = alerts_table(app)
        assert [row.code for row in table.rows] == [
            "missing_fraction",  # freeze deletes first
            "endpoint_identity",
            "foreign_files",
        ]
        texts = [[cell.plain for cell in table._cells(row)] for row in table.rows]
        assert texts[0][:5] == [
            "freeze deletes",
            "missing_fraction",
            "cfs",
            "3 hours ago",
            "⚠ open",
        ]
        assert texts[1][0] == "endpoint unknown"
        assert texts[2][0] == "notify" and texts[2][4] == "✓ ack'd"
        assert texts[2][6] == scenario.scans[1].id
        assert texts[2][7] == "jdoe, 10 minutes ago"
        pane = str(app.screen.query_one("#alert").render())
        assert "y acknowledges" in pane and "copied again from another verified holder" in pane
        await pilot.press("escape")
        assert not isinstance(app.screen, AlertsScreen)


async def test_acknowledge_with_a_reason_records_who_and_why(make_scenario: MakeScenario) -> None:
    scenario = make_scenario("alerts")
    missing = scenario_alerts(scenario.scans)[0]
    app = scenario.app()
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await open_alerts(pilot)
        await highlight(pilot, "missing_fraction")
        await pilot.press("y")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, AcknowledgeDialog)
        assert app.focused is not None and app.focused.id == "cancel"
        named = " ".join(str(w.render()) for w in dialog.query("Static"))
        for words in ("missing_fraction", "endpoint cfs", "scan —", "5 of 8", "new baseline"):
            assert words in named
        assert dialog.query_one("#acknowledge", Button).disabled  # no reason yet
        await pilot.press("tab", *"cfs was re-imaged; copies will be redone", "enter")
        await settle(pilot)
        assert isinstance(app.screen, AlertsScreen)
        row = next(r for r in alerts_table(app).rows if r.code == "missing_fraction")
        assert [c.plain for c in alerts_table(app)._cells(row)][4] == "✓ ack'd"
        assert any(f"recorded as {USER}" in n.title for n in app._notifications)
    record = stored(scenario)[missing.id]
    assert record.acknowledged_by == USER
    assert record.acknowledged_why == "cfs was re-imaged; copies will be redone"
    assert record.acknowledged_at == NOW


async def test_cancel_records_nothing(make_scenario: MakeScenario) -> None:
    scenario = make_scenario("alerts")
    before = stored(scenario)
    app = scenario.app()
    async with app.run_test(size=(160, 40)) as pilot:
        await open_alerts(pilot)
        await pilot.press("y")
        await pilot.pause()
        assert isinstance(app.screen, AcknowledgeDialog)
        await pilot.press("enter")  # Enter on the focused Cancel cancels
        await settle(pilot)
        assert isinstance(app.screen, AlertsScreen)
        await pilot.press("y")
        await pilot.pause()
        app.screen.query_one("#reason", Input).value = "typed, then thought better of it"
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, AlertsScreen)
    assert stored(scenario) == before


async def test_read_only_refuses_acknowledgement(make_scenario: MakeScenario) -> None:
    scenario = make_scenario("alerts")
    before = stored(scenario)
    app = scenario.app(read_only=True)
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await open_alerts(pilot)
        await highlight(pilot, "missing_fraction")
        await pilot.press("y")
        await pilot.pause()
        assert isinstance(app.screen, AlertsScreen)
        assert any("Read-only session: acknowledge refused" in m for m in notifications(app))
    assert stored(scenario) == before


async def test_condition_only_alert_says_why_instead_of_a_dialog(
    make_scenario: MakeScenario,
) -> None:
    scenario = make_scenario("alerts")
    before = stored(scenario)
    app = scenario.app()
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await open_alerts(pilot)
        await highlight(pilot, "endpoint_identity")
        assert "cannot be acknowledged" in str(app.screen.query_one("#alert").render())
        await pilot.press("y")
        await pilot.pause()
        assert isinstance(app.screen, AlertsScreen)
        said = notifications(app)
        assert any("endpoint_identity cannot be acknowledged" in m for m in said)
        assert any("--init-endpoint hpss" in m for m in said)
    assert stored(scenario) == before


async def test_empty_screen_says_what_would_appear(make_scenario: MakeScenario) -> None:
    app = make_scenario("fresh").app()
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await open_alerts(pilot)
        table = alerts_table(app)
        assert table.rows == () and table.empty == EMPTY
        assert not app.screen.query_one("#alert").display
        await pilot.press("y")  # nothing highlighted: nothing to acknowledge
        await pilot.pause()
        assert isinstance(app.screen, AlertsScreen)


async def test_alerts_in_help_and_palette(make_scenario: MakeScenario) -> None:
    console = Console(width=120, record=True, color_system=None)
    console.print(help_table(read_only=True))
    listed = console.export_text()
    assert "!" in listed and "Alerts" in listed
    assert "Acknowledge alert" in listed
    assert "a reason typed" in listed and "[refused: read-only]" in listed
    app = make_scenario("alerts").app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("ctrl+p", *"Alerts")
        await pilot.pause(0.3)  # the palette searches asynchronously
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, AlertsScreen)


async def test_exclamation_mark_still_negates_in_the_filter(make_scenario: MakeScenario) -> None:
    app = make_scenario("alerts").app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("slash", "exclamation_mark", *"S0001")
        await settle(pilot)
        assert app.screen is app.scans_screen
        assert app.scans_screen.query_one("#filter", Input).value == "!S0001"

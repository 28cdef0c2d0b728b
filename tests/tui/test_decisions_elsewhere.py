"""The TUI shows operator decisions that arrive from elsewhere (another operator's TUI or CLI).

Each TUI session reads the state store; decisions are written by whichever process an operator
uses. A session that is open while another operator approves or rejects must show the new
decision on its next timed refresh (the cheap fingerprint path, not a forced reload), including
two decisions on one action recorded within the same clock instant.
"""

from __future__ import annotations

import pytest

from bl931tui.approval_items import APPROVED, PENDING, REJECTED
from bl931tui.readmodel import ScanRow
from bl931tui.screens.approvals import ApprovalsScreen
from bl931tui.widgets.virtual_table import VirtualTable
from tests.tui.conftest import MakeScenario
from tests.tui.helpers import settle
from tests.tui.scenarios import NOW, delete_action

pytestmark = pytest.mark.asyncio


def row_of(app: object, scan: str) -> ScanRow:
    table: VirtualTable[ScanRow] = app.scans_screen.query_one(VirtualTable)  # type: ignore[attr-defined]
    return next(row for row in table.rows if row.scan == scan)


async def test_decisions_made_elsewhere_show_on_the_next_refresh(
    make_scenario: MakeScenario,
) -> None:
    scenario = make_scenario("awaiting_approval")  # scans 1…7: a dtn prune awaits approval
    rejected, approved, flipped = (s.id for s in scenario.scans[1:4])
    app = scenario.app()
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        assert app.snapshot is not None and app.snapshot.awaiting_approval == 7
        for scan in (rejected, approved, flipped):
            assert "awaiting approval" in row_of(app, scan).next_text

        other = scenario.store()  # another operator's process, its own connection
        try:
            by_id = {s.id: delete_action(s, "dtn").id for s in scenario.scans}
            other.reject([by_id[rejected]], "bob", NOW)
            other.approve([by_id[approved]], "bob", NOW)
            other.approve([by_id[flipped]], "carol", NOW)  # and, at the same instant, bob
            other.reject([by_id[flipped]], "bob", NOW)  # rejects what carol approved
        finally:
            other.close()

        app.refresh_data()  # what the refresh timer calls: fingerprint first
        await settle(pilot)
        assert app.snapshot.awaiting_approval == 4
        assert "rejected" in row_of(app, rejected).next_text
        assert "awaiting approval" not in row_of(app, approved).next_text
        assert "rejected" in row_of(app, flipped).next_text, "the last decision is not shown"

        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, ApprovalsScreen)
        by_state: dict[str, set[str]] = {}
        for group in app.screen.groups:  # pending, and the decisions that stand (`u`)
            by_state.setdefault(group.state, set()).update(item.scan for item in group.items)
        listed = by_state[PENDING]
        assert listed.isdisjoint({rejected, approved, flipped}) and len(listed) == 4
        assert by_state[REJECTED] == {rejected, flipped}
        assert by_state[APPROVED] == {approved}

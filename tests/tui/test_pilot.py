"""Pilot tests: the TUI driven by keys against scenario stores; assertions on the store itself."""

from __future__ import annotations

import sqlite3

import pytest
from textual.widgets import Input

from bl931tui.screens.approvals import ApprovalsScreen
from bl931tui.screens.detail import DetailScreen
from bl931tui.screens.dialogs import ConfirmDialog, HoldDialog
from bl931tui.screens.help import HelpScreen
from bl931tui.screens.scans import ScansScreen
from bl931tui.widgets.virtual_table import VirtualTable
from engine.model import ErrorClass
from tests.tui.conftest import MakeScenario
from tests.tui.helpers import settle
from tests.tui.scenarios import NOW, USER, copy_action

pytestmark = pytest.mark.asyncio


def scans_table(app: object) -> VirtualTable:  # type: ignore[type-arg]
    return app.scans_screen.query_one(VirtualTable)  # type: ignore[attr-defined,no-any-return]


def showing(app: object) -> str:
    return str(app.scans_screen.query_one("#showing").render())  # type: ignore[attr-defined]


def approvals_in_store(path: object) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as conn:  # type: ignore[arg-type]
        return conn.execute("SELECT action_id, decision, decided_by FROM approvals").fetchall()


async def test_scans_view_shows_every_scan_with_stage_cells(make_scenario: MakeScenario) -> None:
    scenario = make_scenario("in_flight")
    app = scenario.app()
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        table = scans_table(app)
        assert len(table.rows) == 8
        # Each scan shows its own share of the task (the batch is at 43%).
        cells = {row.scan: row.cells[1].text for row in table.rows}
        assert [cells[s.id] for s in scenario.scans[2:5]] == ["⇄ 100%", "⇄ 40%", "⇄ 0%"]
        assert "showing 8 of 8 scans" in showing(app)


async def test_filter_words_and_free_text(make_scenario: MakeScenario) -> None:
    scenario = make_scenario("awaiting_approval")
    app = scenario.app()
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"awaiting:approval")
        await settle(pilot)
        assert len(scans_table(app).rows) == 7
        assert "showing 7 of 8 scans" in showing(app)
        box = app.scans_screen.query_one("#filter", Input)
        box.value = "state:hold"
        await settle(pilot)
        assert [row.scan for row in scans_table(app).rows] == [scenario.scans[0].id]
        box.value = "Ångström"
        await settle(pilot)
        assert {row.scan for row in scans_table(app).rows} == {scenario.scans[3].id}
        box.value = "state:nonsense"
        await settle(pilot)
        assert "unknown state" in showing(app)
        await pilot.press("enter", "escape")
        await settle(pilot)
        assert len(scans_table(app).rows) == 8


async def test_faults_toggle_and_sort(make_scenario: MakeScenario) -> None:
    scenario = make_scenario("failures")
    app = scenario.app()
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        faulty = {row.scan for row in scans_table(app).rows}
        # Two copies failed; hpss could not be listed, which holds back every copy to it.
        assert faulty == {s.id for s in scenario.scans[3:]}
        assert "faults only" in showing(app)
        await pilot.press("f", "s", "s", "s")  # age → name → size → status
        await settle(pilot)
        assert "sort: status" in showing(app)
        assert scans_table(app).rows[0].rank == 0


async def test_cursor_stays_on_its_scan_across_live_updates(make_scenario: MakeScenario) -> None:
    scenario = make_scenario("fresh")
    app = scenario.app()
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "down")
        table = scans_table(app)
        key, top = table.cursor_key, table.scroll_y
        store = scenario.store()
        failing = copy_action(scenario.scans[0], "dtn", "cfs")
        store.record_failure(failing.id, ErrorClass.TRANSIENT, "timeout", NOW, None)
        store.close()
        app.refresh_data(force=True)
        await settle(pilot)
        assert table.cursor_key == key
        assert table.scroll_y == top
        changed = next(row for row in table.rows if row.scan == scenario.scans[0].id)
        assert changed.cells[1].text == "✗ failed"


async def test_enter_opens_detail_with_evidence_and_calendar(
    make_scenario: MakeScenario,
) -> None:
    scenario = make_scenario("awaiting_approval")
    app = scenario.app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        scans_table(app).move_cursor(1)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        detail = app.screen.detail
        assert detail is not None and detail.scan_id == scans_table(app).cursor_key
        assert {r.endpoint for r in detail.replicas if r.evidence} == {"dtn", "cfs", "hpss"}
        dtn = next(entry for entry in detail.calendar if entry.endpoint == "dtn")
        assert dtn.waits_on == "operator approval"
        assert any(a.kind.value == "delete" for a in detail.actions)
        await pilot.press("escape")
        assert isinstance(app.screen, ScansScreen)


async def test_approve_all_needs_typed_confirmation_and_records_user(
    make_scenario: MakeScenario,
) -> None:
    scenario = make_scenario("awaiting_approval")
    app = scenario.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, ApprovalsScreen)
        assert len(app.screen.groups) == 1 and len(app.screen.groups[0].items) == 7
        await pilot.press("A")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog)
        assert app.focused is not None and app.focused.id == "cancel"
        await pilot.press("enter")  # Enter on the focused Cancel cancels
        await settle(pilot)
        assert approvals_in_store(scenario.store_path) == []
        await pilot.press("A")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog) and dialog.typed is not None
        await pilot.press("tab", *"7 wrong")
        assert dialog.query_one("#confirm").disabled
        dialog.query_one("#typed", Input).value = ""
        await pilot.press(*dialog.typed, "enter")
        await settle(pilot)
        decided = approvals_in_store(scenario.store_path)
        assert len(decided) == 7
        assert {(d[1], d[2]) for d in decided} == {("approve", USER)}
        assert app.screen.pending_groups == ()  # type: ignore[attr-defined]
        (approved,) = app.screen.groups  # type: ignore[attr-defined]
        assert approved.state == "approved" and len(approved.items) == 7


async def test_approve_marked_and_reject(make_scenario: MakeScenario) -> None:
    scenario = make_scenario("awaiting_approval")
    app = scenario.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("space", "down", "space")
        items = app.screen.query_one("#items", VirtualTable)
        marked = set(items.marked)
        assert len(marked) == 2
        await pilot.press("y")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog)
        await pilot.press("tab", *dialog.typed or "", "enter")
        await settle(pilot)
        assert {d[0] for d in approvals_in_store(scenario.store_path)} == marked
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("tab", "enter")  # Reject button after Cancel
        await settle(pilot)
        decisions = {d[1] for d in approvals_in_store(scenario.store_path)}
        assert decisions == {"approve", "reject"}


async def test_read_only_refuses_decisions(make_scenario: MakeScenario) -> None:
    scenario = make_scenario("awaiting_approval")
    app = scenario.app(read_only=True)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("h")
        await pilot.pause()
        assert not isinstance(app.screen, HoldDialog)
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("A")
        await pilot.pause()
        assert isinstance(app.screen, ApprovalsScreen)
        messages = [n.message for n in app._notifications]
        assert any("Read-only session: approve refused" in m for m in messages)
        assert any("hold refused" in m for m in messages)
    assert approvals_in_store(scenario.store_path) == []


async def test_help_and_palette_come_from_the_registry(make_scenario: MakeScenario) -> None:
    scenario = make_scenario("fresh")
    app = scenario.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("ctrl+p", *"Tasks")
        await pilot.pause(0.3)  # the palette searches asynchronously
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen.SCOPE == "tasks"  # type: ignore[attr-defined]


async def test_tasks_and_events_screens(make_scenario: MakeScenario) -> None:
    scenario = make_scenario("in_flight")
    app = scenario.app()
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        tasks = app.screen.query_one(VirtualTable).rows
        assert [t.status for t in tasks] == ["active"]
        assert tasks[0].eta_seconds is not None
        await pilot.press("e")
        await settle(pilot)
        assert app.screen.SCOPE == "events"  # type: ignore[attr-defined]
        everything = len(app.screen.query_one(VirtualTable).rows)
        app.screen.query_one("#filter", Input).value = "Ångström"
        await settle(pilot)
        assert 0 < len(app.screen.query_one(VirtualTable).rows) < everything


async def test_hold_placed_in_the_tui_blocks_a_planned_delete(tmp_path: object) -> None:
    """A real workspace, real passes: after a hold, the reconciler's plan no longer deletes."""
    import random
    from pathlib import Path

    from bl931tui.app import Bl931App
    from engine.backends import build_backends
    from engine.reconciler import Reconciler
    from engine.state import StateStore
    from engine.workspace import create_workspace, scan_path, synthetic_scan_bytes

    workspace = create_workspace(Path(str(tmp_path)) / "ws", dtn_keep_days=0, cfs_keep_days=1)
    rng = random.Random(7)
    for n in range(3):
        workspace.write_scan(scan_path(n), synthetic_scan_bytes(rng, 4_000))
    config = workspace.config()
    store = StateStore(config.state.path)
    backends = build_backends(config)
    try:
        reconciler = Reconciler(config, store, backends, user="service")
        for _ in range(3):
            reconciler.reconcile_once(drain=True)
        gated = [a for a in reconciler.dry_run().actions if a.kind.value == "delete"]
        assert len(gated) == 3 and all(a.requires_approval for a in gated)
        target = gated[0].scan

        app = Bl931App(config, user=USER, refresh_seconds=None)
        async with app.run_test(size=(160, 40)) as pilot:
            await settle(pilot)
            table = scans_table(app)
            table.move_cursor(next(i for i, r in enumerate(table.rows) if r.scan == target))
            await pilot.press("h")
            await pilot.pause()
            assert isinstance(app.screen, HoldDialog)
            await pilot.press(*"keep for re-analysis", "tab", *"30d", "enter")
            await settle(pilot)
            held = next(row for row in table.rows if row.scan == target)
            assert "hold" in held.states

        holds = store.active_holds(reconciler.clock())
        assert holds[target].placed_by == USER and holds[target].expires_at is not None
        plan = reconciler.dry_run()
        assert target not in {a.scan for a in plan.actions if a.kind.value == "delete"}
        assert any(b.scan == target and b.reason_code == "on_hold" for b in plan.blocked)
    finally:
        backends.close()
        store.close()


async def test_engine_loop_runs_in_a_worker_and_stops_with_the_app(tmp_path: object) -> None:
    """The demo's arrangement: the reconciler loop in a thread worker, stopped on exit."""
    import random
    from pathlib import Path

    from bl931tui.app import Bl931App
    from engine.backends import build_backends
    from engine.reconciler import Reconciler
    from engine.service import ServiceLoop
    from engine.state import StateStore
    from engine.workspace import create_workspace, scan_path, synthetic_scan_bytes

    workspace = create_workspace(Path(str(tmp_path)) / "ws")
    workspace.write_scan(scan_path(1), synthetic_scan_bytes(random.Random(1), 2_000))
    config = workspace.config()
    store = StateStore(config.state.path)
    backends = build_backends(config)
    loop = ServiceLoop(Reconciler(config, store, backends), interval_seconds=0.1)
    app = Bl931App(config, user=USER, refresh_seconds=0.1, engine_loop=loop)
    try:
        async with app.run_test(size=(160, 40)) as pilot:
            table = scans_table(app)
            for _ in range(400):  # a condition with a generous bound, not a sleep
                rows = table.rows
                if rows and rows[0].cells[1].text == "✓ verified":
                    break
                await pilot.pause(0.05)
            assert rows
            assert rows[0].cells[1].text == "✓ verified"
            assert loop.passes >= 1
        assert loop.stopping
    finally:
        loop.stop()
        assert loop.wait_stopped(timeout=60), "the engine worker never finished its pass"
        backends.close()
        store.close()

"""The scans an operator decides from tell the truth: each checked against what the real engine
did, in-process, on a `FakeClock` (tests/tui/world.py).

What each of these caught before: a scan never registered shown "✓ registered"; the batch's
percentage painted on every scan of a task; ages frozen at the last repaint; a rejected or
blocked prune shown as "prune dtn due …" and hidden from the faults filter; rejected actions
nowhere to be found, and no way to take a rejection back.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from bl931tui.screens.approvals import ApprovalsScreen
from bl931tui.screens.detail import DetailScreen
from bl931tui.screens.dialogs import ConfirmDialog
from bl931tui.widgets.virtual_table import VirtualTable
from engine.storage import local_mover
from tests.tui.helpers import screen_text, settle
from tests.tui.world import USER, World

pytestmark = pytest.mark.asyncio
SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])


def row_of(app: Any, scan: str) -> Any:
    table = app.scans_screen.query_one(VirtualTable)
    return next(row for row in table.rows if row.scan == scan)


def catalog_cell(app: Any, scan: str) -> str:
    return str(row_of(app, scan).cells[-1].text)


@SIZES
async def test_a_scan_the_catalog_never_registered_is_not_shown_registered(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    world = World(tmp_path / "w")
    try:
        scan = world.write(1, age_days=5)
        (world.ws.root / "state" / "catalog.json").write_text("{ not json")
        world.passes(3)  # copied to cfs and hpss; registration blocked: catalog unreadable
        app = world.app()
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            assert catalog_cell(app, scan) == "? unknown"
            assert "✗ catalog:" in screen_text(pilot)  # the pulse line says why
        (world.ws.root / "state" / "catalog.json").unlink()
        world.passes(2)  # registered, then read back from the catalog
        app = world.app()
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            assert catalog_cell(app, scan) == "✓ registered"
    finally:
        world.close()


async def test_transfer_progress_is_each_scans_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two scans in one copy task: one done, one not started; each row shows its own share."""
    world = World(tmp_path / "w")
    try:
        first = world.write(1, age_days=5, size=4_000)
        second = world.write(2, age_days=4, size=4_000)
        reached, release = threading.Event(), threading.Event()
        place = local_mover.place_file

        def hold_the_second(source: Path, *args: Any, **kwargs: Any) -> Any:
            if source.name == Path(second).name:
                reached.set()
                release.wait(30)
            return place(source, *args, **kwargs)

        monkeypatch.setattr(local_mover, "place_file", hold_the_second)
        world.reconciler.reconcile_once()  # submits one task copying both scans to cfs
        assert reached.wait(30)
        world.reconciler.executor.poll_tasks(world.clock.now())  # records each scan's share
        app = world.app()
        async with app.run_test(size=(160, 40)) as pilot:
            await settle(pilot)
            assert row_of(app, first).cells[1].text == "⇄ 100%"
            assert row_of(app, second).cells[1].text == "⇄ 0%"
        release.set()
        world.reconciler.executor.drain()
    finally:
        release.set()
        world.close()


async def test_ages_are_computed_when_shown_not_when_the_row_last_changed(tmp_path: Path) -> None:
    """(Below 100 columns the age column gives way to the state and the next action.)"""
    world = World(tmp_path / "w")
    try:
        world.write(1, age_days=2)
        world.passes(2)
        app = world.app()
        async with app.run_test(size=(160, 40)) as pilot:
            await settle(pilot)
            assert " 2 days " in screen_text(pilot)
            world.clock.advance(days=5)  # nothing in the store changes
            app.refresh_data()
            await settle(pilot)
            text = screen_text(pilot)
            assert " 7 days " in text and " 2 days " not in text
    finally:
        world.close()


@SIZES
async def test_a_blocked_scan_says_why_not_when_it_is_due(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    world = World(tmp_path / "w")
    try:
        scan = world.write(1, age_days=45)  # past the dtn's 30 days
        (world.ws.root / "state" / "catalog.json").write_text("{ not json")
        world.passes(3)
        app = world.app()
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            row = row_of(app, scan)
            assert row.next_text.startswith("⊘ delete from dtn: catalog_unavailable")
            assert "due" not in row.next_text
            await pilot.press("f")  # the faults filter keeps what needs a person
            await settle(pilot)
            assert [r.scan for r in app.scans_screen.query_one(VirtualTable).rows] == [scan]
    finally:
        world.close()


def decisions(world: World) -> list[tuple[str, str, str]]:
    with sqlite3.connect(world.ws.state_path) as conn:
        return conn.execute("SELECT action_id, decision, decided_by FROM approvals").fetchall()


def events_of(world: World, kind: str) -> list[tuple[str, str]]:
    with sqlite3.connect(world.ws.state_path) as conn:
        return conn.execute("SELECT scan, message FROM events WHERE kind = ?", (kind,)).fetchall()


@SIZES
async def test_a_rejection_shows_in_row_detail_and_faults_and_can_be_taken_back(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    world = World(tmp_path / "w")
    try:
        scans = [world.write(n, age_days=45 + n) for n in range(3)]
        world.passes(4)  # copies, registration; the dtn prunes await approval
        app = world.app()
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await pilot.press("a")
            await settle(pilot)
            items = app.screen.query_one("#items", VirtualTable)
            target = items.cursor_row
            await pilot.press("x")
            await settle(pilot)
            dialog = app.screen
            assert isinstance(dialog, ConfirmDialog)
            body = screen_text(pilot)
            assert "Reject 1 delete from dtn" in body and Path(target.scan).name in body
            await pilot.press("tab", "enter")  # Cancel has the focus; Reject is next
            await settle(pilot)
        assert [(d[1], d[2]) for d in decisions(world)] == [("reject", USER)]
        world.passes()  # the rejected prune leaves the plan; the row must still say so
        app = world.app()
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            row = row_of(app, target.scan)
            assert row.next_text == "⊘ delete from dtn: rejected"
            assert "rejected" in row.states
            await pilot.press("f")
            await settle(pilot)
            shown = {r.scan for r in app.scans_screen.query_one(VirtualTable).rows}
            assert target.scan in shown
            await pilot.press("f")
            await settle(pilot)
            table = app.scans_screen.query_one(VirtualTable)
            table.move_cursor(next(i for i, r in enumerate(table.rows) if r.scan == target.scan))
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, DetailScreen)
            detail = screen_text(pilot)
            assert f"rejected by {USER}" in detail
            # The approvals screen lists the rejection; u takes it back, recorded.
            await pilot.press("a")
            await settle(pilot)
            assert isinstance(app.screen, ApprovalsScreen)
            groups = app.screen.query_one("#groups", VirtualTable)
            titles = [g.title for g in groups.rows]
            assert "⊘ rejected: delete 1 scan from dtn · 3.0 kB" in titles
            groups.move_cursor(titles.index("⊘ rejected: delete 1 scan from dtn · 3.0 kB"))
            await settle(pilot)
            await pilot.press("u")
            await settle(pilot)
            assert isinstance(app.screen, ConfirmDialog)
            assert Path(target.scan).name in screen_text(pilot)
            await pilot.press("tab", "enter")
            await settle(pilot)
        assert decisions(world) == []
        assert events_of(world, "action.unrejected") == [
            (target.scan, f"rejection withdrawn by {USER}")
        ]
        world.passes()
        gated = [a for a in world.store.actions(["planned"]) if a.scan == target.scan]
        assert [a.target for a in gated] == ["dtn"] and gated[0].requires_approval
        assert len(scans) == 3
    finally:
        world.close()


async def test_the_retention_calendar_shows_the_second_approval_round(tmp_path: Path) -> None:
    """dtn and cfs are both past retention: the cfs prune waits for the dtn prune that relies
    on it, and the operator is told a second approval round follows."""
    world = World(tmp_path / "w", dtn_keep_days=30, cfs_keep_days=40)
    try:
        world.write(1, age_days=45)
        world.passes(4)
        app = world.app()
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, DetailScreen)
            cfs = next(e for e in app.screen.detail.calendar if e.endpoint == "cfs")
            assert cfs.waits_on == (
                "still_needed: the dtn prune awaiting approval relies on this copy; this "
                "prune follows it · then its own approval (a second round)"
            )
    finally:
        world.close()


async def test_a_store_the_service_has_not_migrated_yet_is_read_without_guessing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TUI upgraded before the service: it opens the store read-only and never migrates,
    so nothing the new schema records is there. It shows what it can, and says "unknown"
    for the catalog instead of guessing from the copies."""
    from engine import state

    world = World(tmp_path / "w")
    world.close()
    old = tmp_path / "old.sqlite"
    monkeypatch.setattr(state, "MIGRATIONS", state.MIGRATIONS[:6])  # before pass findings (7)
    monkeypatch.setattr(state, "SCHEMA_VERSION", 6)
    store = state.StateStore(old)
    scan = scenario_scan()
    store.upsert_scans([scan], world.clock.now())
    store.beat(world.clock.now(), pid=1, host="elsewhere", pass_started_at=world.clock.now())
    store.close()
    monkeypatch.undo()
    world.config.state.path.unlink()
    old.rename(world.config.state.path)
    app = world.app(read_only=True)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        assert catalog_cell(app, scan.id) == "? unknown"
        assert "engine in a pass" in screen_text(pilot)


def scenario_scan():  # type: ignore[no-untyped-def]
    from tests.tui.scenarios import make_scan

    return make_scan(1, age_days=3)

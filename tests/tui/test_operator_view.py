"""The operator's view at the SSH default (80×24) and over time: marks, dialogs that name what
they act on, liveness, empty screens, events and tasks in full, and `r` with nothing to retry.

Assertions read the terminal's text (`screen_text`) or the state store, never widget internals
where the screen can be read instead.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from bl931tui.app import Bl931App
from bl931tui.screens.activity import EventsScreen, TasksScreen
from bl931tui.screens.approvals import ApprovalsScreen
from bl931tui.screens.dialogs import ConfirmDialog
from bl931tui.screens.help import HelpScreen
from bl931tui.widgets.virtual_table import VirtualTable
from engine.clock import FakeClock
from engine.workspace import create_workspace
from tests.tui.conftest import MakeScenario
from tests.tui.helpers import screen_text, settle
from tests.tui.scenarios import NOW, USER

pytestmark = pytest.mark.asyncio
SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])


def lines(pilot: Pilot[object]) -> list[str]:
    return screen_text(pilot).splitlines()


def notifications(app: Bl931App) -> list[tuple[str, str]]:
    return [(n.title or "", n.message) for n in app._notifications]


# ---- marks and dialogs ----------------------------------------------------------------------


@SIZES
async def test_marks_show_a_glyph_and_a_count_and_clear_when_the_group_changes(
    make_scenario: MakeScenario, size: tuple[int, int]
) -> None:
    scenario = make_scenario("decisions")
    app = scenario.app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, ApprovalsScreen)
        items = app.screen.query_one("#items", VirtualTable)
        first = items.cursor_key
        await pilot.press("space")  # marks the highlighted row; the cursor stays on it
        await settle(pilot)
        assert items.cursor_key == first
        marked = [line for line in lines(pilot) if line.lstrip().startswith("●")]
        assert len(marked) == 1
        await pilot.press("down", "space")
        await settle(pilot)
        text = screen_text(pilot)
        assert len([line for line in text.splitlines() if line.lstrip().startswith("●")]) == 2
        assert "2 marked" in text
        await pilot.press("tab")  # another group: the marks of the first are dropped
        await settle(pilot)
        text = screen_text(pilot)
        assert "●" not in text and "marked" not in text
        assert items.marked == set()


@SIZES
async def test_the_reject_dialog_names_scans_endpoints_and_bytes(
    make_scenario: MakeScenario, size: tuple[int, int]
) -> None:
    scenario = make_scenario("decisions")
    app = scenario.app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        group = app.screen.query_one("#groups", VirtualTable).cursor_row
        assert group.kind == "delete" and group.target == "dtn" and len(group.items) == 5
        for _ in group.items:
            await pilot.press("space", "down")
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        text = screen_text(pilot)
        assert "Reject 5 deletes from dtn (11.2 MB):" in text
        first_four = sorted(group.items, key=lambda item: item.scan)[:4]
        for item in first_four:
            assert f"{Path(item.scan).name} · dtn · " in text
        assert "… and 1 more" in text
        assert "--unreject" in text  # says how to take it back


# ---- 80×24 ----------------------------------------------------------------------------------


async def test_at_80x24_scans_keep_state_and_next_action_and_the_file_name(
    make_scenario: MakeScenario,
) -> None:
    scenario = make_scenario("awaiting_approval")
    app = scenario.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = lines(pilot)
        header = next(line for line in screen if line.startswith("scan"))
        assert "dtn" in header and "next" in header
        row = next(line for line in screen if "S0001_phosphorus_XANES.h5" in line)
        assert "✓" in row and "◷ delete" in row
        assert "last pass" in screen[0]


async def test_at_80x24_events_keep_the_scan(make_scenario: MakeScenario) -> None:
    scenario = make_scenario("awaiting_approval")
    app = scenario.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, EventsScreen)
        assert any("_XANES.h5" in line for line in lines(pilot))


@pytest.mark.parametrize("keys", [(), ("a",), ("e",), ("t",), ("enter",)])
async def test_at_80x24_the_footer_shows_every_key_or_where_to_find_them(
    make_scenario: MakeScenario, keys: tuple[str, ...]
) -> None:
    scenario = make_scenario("awaiting_approval")
    app = scenario.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        footer = lines(pilot)[-1]
        assert footer.rstrip().endswith(("? help", "? more")), footer
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)


# ---- liveness -------------------------------------------------------------------------------


def set_heartbeat(path: Path, **fields: Any) -> None:
    sets = ", ".join(f"{name} = ?" for name in fields)
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE heartbeat SET {sets} WHERE id = 1", tuple(fields.values()))


@SIZES
async def test_a_clean_stop_is_shown_at_once(
    make_scenario: MakeScenario, size: tuple[int, int]
) -> None:
    scenario = make_scenario("fresh")
    set_heartbeat(scenario.store_path, stopped_at=(NOW - timedelta(seconds=10)).isoformat())
    app = scenario.app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        assert "engine stopped" in lines(pilot)[0]


async def test_a_service_whose_process_is_gone_is_shown_stopped_at_once(
    make_scenario: MakeScenario,
) -> None:
    scenario = make_scenario("fresh")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    set_heartbeat(scenario.store_path, host=socket.gethostname(), pid=child.pid)
    app = scenario.app()
    async with app.run_test(size=(160, 24)) as pilot:
        await settle(pilot)
        assert f"engine stopped (pid {child.pid} is gone)" in lines(pilot)[0]
    set_heartbeat(scenario.store_path, pid=os.getpid())  # alive: the beat is 20 s old
    app = scenario.app()
    async with app.run_test(size=(160, 24)) as pilot:
        await settle(pilot)
        assert "engine ok" in lines(pilot)[0]


async def test_a_silent_service_is_stale_after_one_interval(make_scenario: MakeScenario) -> None:
    scenario = make_scenario("fresh")  # beat 20 s before NOW; the service interval is 60 s
    clock = FakeClock(NOW)
    app = scenario.app(clock=clock)
    async with app.run_test(size=(160, 24)) as pilot:
        await settle(pilot)
        assert "engine ok" in lines(pilot)[0]
        clock.advance(seconds=100)  # 2 minutes without a beat: more than one interval
        app.refresh_data()
        await settle(pilot)
        assert "STALE: no heartbeat for 2 minutes" in lines(pilot)[0]


async def test_the_real_service_stopping_turns_the_header_to_stopped(tmp_path: Path) -> None:
    from tests.service.helpers import ServiceProcess

    ws = create_workspace(tmp_path / "ws")
    service = ServiceProcess(ws.config_path, "--interval", "60", log_path=tmp_path / "s.log")
    try:
        service.wait_log("pass done in")
        app = Bl931App(ws.config(), user=USER, refresh_seconds=None)
        async with app.run_test(size=(160, 24)) as pilot:
            await settle(pilot)
            assert "engine ok" in lines(pilot)[0]
            service.signal(15)
            assert service.wait(60) == 0
            app.refresh_data()
            await settle(pilot)
            assert "engine stopped" in lines(pilot)[0]
    finally:
        service.close()


@SIZES
async def test_without_a_state_store_the_screen_says_what_to_do(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    ws = create_workspace(tmp_path / "ws")
    app = Bl931App(ws.config(), user=USER, refresh_seconds=None)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        text = screen_text(pilot)
        assert "no state store yet" in text
        assert "bl931tui --reconcile" in text


# ---- events, tasks, empty screens -----------------------------------------------------------


@SIZES
async def test_an_event_opens_to_its_whole_message(
    make_scenario: MakeScenario, size: tuple[int, int]
) -> None:
    scenario = make_scenario("failures")
    words = [f"word{n:03d}" for n in range(60)]
    store = scenario.store()
    store.event(NOW, "copy.failed", " ".join(words), scan=scenario.scans[3].id, level="error")
    store.close()
    app = scenario.app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        text = screen_text(pilot)
        assert all(word in text for word in words)
        assert Path(scenario.scans[3].id).name in text
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, EventsScreen)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_tasks_show_scans_start_elapsed_rate_and_eta(
    make_scenario: MakeScenario, size: tuple[int, int]
) -> None:
    scenario = make_scenario("in_flight")
    app = scenario.app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        assert isinstance(app.screen, TasksScreen)
        screen = lines(pilot)
        header = next(line for line in screen if line.startswith("status"))
        for title in ("scans", "started", "elapsed", "rate", "eta"):
            assert title in header, header
        row = next(line for line in screen if line.startswith("active"))
        assert "11:58" in row and "2m" in row and "25.0 kB/s" in row
        text = "\n".join(screen)
        for scan in scenario.scans[2:5]:  # the task's three scans, each named below
            assert Path(scan.id).name[-20:] in text


@SIZES
async def test_empty_screens_say_what_would_appear_there(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    from engine.state import StateStore

    ws = create_workspace(tmp_path / "ws")
    StateStore(ws.config().state.path).close()
    app = Bl931App(ws.config(), user=USER, refresh_seconds=None)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        assert "no scans yet: each scan found at dtn appears here" in screen_text(pilot)
        for key, words in (
            ("t", "no tasks yet: copies and deletes appear here"),
            ("e", "no events yet: every scan found, copy, delete, decision"),
            ("a", "nothing awaits approval: prunes appear here"),
        ):
            await pilot.press(key)
            await settle(pilot)
            assert words in screen_text(pilot), key


# ---- retry ----------------------------------------------------------------------------------


def count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@SIZES
async def test_retry_with_nothing_failed_says_so_and_records_nothing(
    make_scenario: MakeScenario, size: tuple[int, int]
) -> None:
    scenario = make_scenario("awaiting_approval")
    events = count(scenario.store_path, "events")
    app = scenario.app()
    async with app.run_test(size=size, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        (title, message), *_ = notifications(app)
        assert message.startswith("nothing to retry on ") and "no action of it failed" in message
        assert "recorded" not in title
    assert count(scenario.store_path, "events") == events
    assert count(scenario.store_path, "retries") == 0


async def test_retry_of_a_failed_scan_is_recorded_with_who(make_scenario: MakeScenario) -> None:
    scenario = make_scenario("failures")
    failed = scenario.scans[3].id
    app = scenario.app()
    async with app.run_test(size=(160, 24), notifications=True) as pilot:
        await settle(pilot)
        table = app.scans_screen.query_one(VirtualTable)
        table.move_cursor(next(i for i, r in enumerate(table.rows) if r.scan == failed))
        await pilot.press("r")
        await settle(pilot)
        assert any(title == f"recorded as {USER}" for title, _ in notifications(app))
    with sqlite3.connect(scenario.store_path) as conn:
        rows = conn.execute(
            "SELECT scan, message FROM events WHERE kind = 'action.retry_requested'"
        ).fetchall()
    assert rows == [(failed, f"retry requested by {USER}")]
    assert count(scenario.store_path, "retries") == 1

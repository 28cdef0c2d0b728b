"""The scan detail of a tape endpoint's scans, driven by keys (Textual pilot) over a real
workspace whose passes ran through the CLI: a scan waiting for its bundle shows
`waiting_for_bundle` with the close date; `R` records the same restore request as `--restore`,
which the next pass plans as a recall that waits for approval."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bl931tui.screens.detail import DetailScreen
from bl931tui.screens.dialogs import ConfirmDialog
from engine.clock import SYSTEM_CLOCK
from engine.workspace import LocalWorkspace, create_workspace
from tests.tui.helpers import screen_text, settle

pytestmark = pytest.mark.asyncio

JAN = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SCAN = "2026/03/ALS-7/scan_001.h5"


def tape_ws(run_cli, tmp_path: Path, close_after_days: float) -> LocalWorkspace:  # type: ignore[no-untyped-def]
    ws = create_workspace(tmp_path / "ws", hpss_kind="tape", close_after_days=close_after_days)
    ws.write_scan(SCAN, b"tape " * 900, mtime=JAN)
    for _ in range(2):  # dtn → cfs, cfs → hpss (bundled, or waiting for its bundle)
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert done.returncode == 0, done.stderr[-3000:]
    return ws


def app_over(ws: LocalWorkspace, **kw: object):  # type: ignore[no-untyped-def]
    from bl931tui.app import Bl931App

    return Bl931App(ws.config(), clock=SYSTEM_CLOCK, refresh_seconds=None, **kw)  # type: ignore[arg-type]


async def open_detail(app, pilot) -> None:  # type: ignore[no-untyped-def]
    await settle(pilot)
    app.push_screen(DetailScreen(SCAN))
    await settle(pilot)
    assert isinstance(app.screen, DetailScreen) and app.screen.detail is not None


async def test_a_scan_waiting_for_its_bundle_shows_the_close_date(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = tape_ws(run_cli, tmp_path, close_after_days=14)
    app = app_over(ws)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_detail(app, pilot)
        text = screen_text(pilot)
        assert "waiting_for_bundle" in text, text
        assert "expected to close 20" in text, text


async def test_r_requests_a_restore_that_waits_for_approval(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = tape_ws(run_cli, tmp_path, close_after_days=0)
    (ws.cfs / SCAN).unlink()  # lost on CFS
    app = app_over(ws)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_detail(app, pilot)
        await pilot.press("R")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog), app.screen
        await pilot.click("#confirm")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
    with sqlite3.connect(ws.state_path) as conn:
        requests = conn.execute("SELECT scan, target FROM tape_restores").fetchall()
    assert requests == [(SCAN, "cfs")]
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    audit = json.loads(run_cli("--dry-run", "--json", config=ws.config_path).stdout)
    (recall,) = [a for a in audit["actions"] if a["kind"] == "copy" and a["source"] == "hpss"]
    assert recall["requires_approval"] and not recall["approved"], done.stderr[-2000:]
    assert not (ws.cfs / SCAN).exists(), "the recall ran without approval"


async def test_a_read_only_session_refuses_the_restore(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = tape_ws(run_cli, tmp_path, close_after_days=0)
    app = app_over(ws, read_only=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await open_detail(app, pilot)
        await pilot.press("R")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen), "a read-only session asked to restore"
    with sqlite3.connect(ws.state_path) as conn:
        assert conn.execute("SELECT count(*) FROM tape_restores").fetchone()[0] == 0

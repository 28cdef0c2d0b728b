"""A receipt's catalog pid is the one its registration answered, read from the registration's
row (`catalog_registrations.pid`), never parsed back from the audit log."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from engine.catalog.custody import Registrations
from engine.catalog.dataset import dataset_pid
from engine.config import Config
from engine.receipts import catalog_pid
from engine.state import StateStore, iso
from engine.store.migrations import MIGRATIONS
from engine.workspace import create_workspace

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
SCAN = "2026/a.h5"
ANSWERED = "adopted/another-pid-0001"  # not what the catalog would derive


def _config(tmp_path: Path) -> Config:
    return create_workspace(tmp_path / "ws").config()


def test_the_pid_comes_from_the_registration_row_with_no_event_left(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store = StateStore(tmp_path / "state.sqlite")
    try:
        assert dataset_pid(SCAN, prefix="", beamline=config.beamline.name) != ANSWERED
        Registrations(store).record("local", [(SCAN, ANSWERED)], NOW)
        store.event(NOW, "catalog.register", f"registered as {ANSWERED}", scan=SCAN)
        with store.transaction() as conn:  # the event log loses the register event's pid
            conn.execute("DELETE FROM events WHERE kind = 'catalog.register'")
        assert catalog_pid(config, store, SCAN) == ANSWERED
    finally:
        store.close()


def test_an_older_store_gets_its_registrations_pids_from_their_events_once(
    tmp_path: Path,
) -> None:
    """Migration 11 fills in the pid of registrations recorded before it was kept in the row;
    afterwards the events are not needed (here: deleted) to find it."""
    path = tmp_path / "state.sqlite"
    config = _config(tmp_path)
    # a store from before the pid back-fill: the migrations before it, and no later one
    backfill = next(i for i, m in enumerate(MIGRATIONS) if "SET pid" in m)
    older = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:backfill]:
        older.executescript(f"BEGIN; {migration}; COMMIT;")
    older.execute(f"PRAGMA user_version = {backfill}")
    older.close()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO catalog_registrations(catalog, scan, pid, registered_at) VALUES (?,?,?,?)",
            ("local", SCAN, None, iso(NOW)),
        )
        conn.execute(
            "INSERT INTO events(at, level, kind, scan, message, data) VALUES (?,?,?,?,?,?)",
            (
                iso(NOW),
                "info",
                "catalog.register",
                SCAN,
                "registered",
                json.dumps({"pid": ANSWERED}),
            ),
        )

    store = StateStore(path)  # migrates
    try:
        with store.transaction() as conn:
            conn.execute("DELETE FROM events")
        assert Registrations(store).pid(SCAN) == ANSWERED
        assert catalog_pid(config, store, SCAN) == ANSWERED
    finally:
        store.close()

"""The pids kept per scan in the state store: seeded from old register events, never changed."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from engine.catalog.pid_book import PidSettings, StorePidBook, settings_drift
from engine.state import MIGRATIONS, StateStore

NOW = datetime(2026, 11, 27, tzinfo=UTC)
OLD = PidSettings("bl931", "9.3.1", "/ALS/9.3.1")


def test_an_older_store_is_seeded_from_its_register_events(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with sqlite3.connect(path) as conn:  # as an older bl931 left it: schema 2, pids in events
        conn.executescript(MIGRATIONS[0] + ";" + MIGRATIONS[1] + ";PRAGMA user_version = 2;")
        for scan, pid in (("a", "bl931/1"), ("b", "bl931/2"), ("a", "bl931/other")):
            conn.execute(
                "INSERT INTO events(at, kind, scan, message, data) VALUES (?, ?, ?, ?, ?)",
                (
                    "2026-01-01T00:00:00+00:00",
                    "catalog.register",
                    scan,
                    "x",
                    json.dumps({"pid": pid}),
                ),
            )
    readonly = StateStore(path, readonly=True)  # an audit before the upgrade: reads events
    assert StorePidBook(readonly).all() == {"a": "bl931/1", "b": "bl931/2"}
    readonly.close()

    store = StateStore(path)
    book = StorePidBook(store)
    assert book.all() == {"a": "bl931/1", "b": "bl931/2"}  # the first pid recorded wins
    book.record("a", "bl931/changed", OLD, NOW)
    book.record("c", "20.500/3", OLD, NOW)
    assert book.get("a") == "bl931/1" and book.get("c") == "20.500/3"
    store.close()


def test_drift_names_each_changed_setting(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    book = StorePidBook(store)
    book.record("a", "bl931/1", OLD, NOW)
    book.record("b", "bl931/2", OLD, NOW)
    assert settings_drift(book, OLD) == []
    (line,) = settings_drift(book, PidSettings("20.500.12269", "9.3.1", "ALS 9.3.1"))
    assert line.startswith("2 datasets were registered with [catalog] pid_prefix 'bl931'")
    assert "[catalog] creation_location '/ALS/9.3.1' → 'ALS 9.3.1'" in line
    assert "[beamline] name" not in line
    store.close()

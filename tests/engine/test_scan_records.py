"""Scans in the state store keep each file's identity (inode, ctime) with its checksum, and rows
written before that was kept still read back (without one, so the walk re-hashes them once)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from engine.model import Scan, ScanFile
from engine.state import StateStore

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def test_file_identity_round_trips_and_old_rows_read_without_one(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite")
    try:
        with_identity = Scan(
            "a.h5",
            (ScanFile("a.h5", 3, 1.5, "abc", 123456, 1_700_000_000_123_456_789),),
            NOW,
            "md5",
            "abc",
        )
        legacy = Scan("b.h5", (ScanFile("b.h5", 3, 1.5, "def"),), NOW, "md5", "def")
        store.upsert_scans([with_identity, legacy], NOW)
        row = store.connection().execute("SELECT files FROM scans WHERE id = 'b.h5'").fetchone()
        assert json.loads(row[0]) == [["b.h5", 3, 1.5, "def"]]  # the old shape, unchanged

        loaded = store.load_scans()
        assert loaded["a.h5"] == with_identity
        assert loaded["b.h5"].files[0].inode is None and loaded["b.h5"] == legacy
    finally:
        store.close()

"""Scans: what the inventory found (one row per scan, its files as JSON)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime

from engine.compact import Moments, shared
from engine.model import Scan, ScanFile
from engine.store.connection import StoreBase, iso


def _file_entry(f: ScanFile) -> list[object]:
    entry: list[object] = [f.path, f.size, f.mtime, f.checksum]
    if f.inode is not None and f.ctime_ns is not None:
        entry += [f.inode, f.ctime_ns]
    return entry


def _scan_from_row(row: sqlite3.Row, parse: Moments | None = None) -> Scan:
    # [path, size, mtime, checksum] plus, when known, [inode, ctime_ns]: rows written before the
    # file identity was kept have four entries and read back without one (re-hashed once).
    # Ids, paths and checksums are shared with every other layer that holds them
    # (engine.compact): a one-file scan's file path is its id.
    files = tuple(
        ScanFile(shared(entry[0]), entry[1], entry[2], shared(entry[3]), *entry[4:6])
        for entry in json.loads(row["files"])
    )
    checksum = row["checksum"]
    if len(files) == 1 and files[0].checksum == checksum:
        checksum = files[0].checksum
    return Scan(
        id=shared(row["id"]),
        files=files,
        acquired_at=(parse or datetime.fromisoformat)(row["acquired_at"]),
        checksum_algorithm=shared(row["checksum_algorithm"]),
        checksum=shared(checksum),
        version=row["version"],
        is_directory=bool(row["is_directory"]),
    )


class ScanStore(StoreBase):
    """The scans table."""

    def load_scans(self) -> dict[str, Scan]:
        parse = Moments()
        out: dict[str, Scan] = {}
        for row in self._conn().execute("SELECT * FROM scans ORDER BY id"):
            scan = _scan_from_row(row, parse)
            out[scan.id] = scan
        return out

    def get_scan(self, scan_id: str) -> Scan | None:
        row = self._conn().execute("SELECT * FROM scans WHERE id = ?", (scan_id,)).fetchone()
        return _scan_from_row(row) if row else None

    def count_scans(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM scans").fetchone()[0])

    def upsert_scans(self, scans: Iterable[Scan], now: datetime) -> int:
        rows = [
            (
                s.id,
                s.version,
                s.checksum_algorithm,
                s.checksum,
                int(s.is_directory),
                iso(s.acquired_at),
                s.size,
                s.file_count,
                json.dumps([_file_entry(f) for f in s.files], ensure_ascii=False),
                iso(now),
                iso(now),
            )
            for s in scans
        ]
        if not rows:
            return 0
        with self.transaction() as conn:
            conn.executemany(
                """INSERT INTO scans VALUES (?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT(id) DO UPDATE SET version=excluded.version,
                     checksum_algorithm=excluded.checksum_algorithm, checksum=excluded.checksum,
                     is_directory=excluded.is_directory, acquired_at=excluded.acquired_at,
                     size=excluded.size, file_count=excluded.file_count, files=excluded.files,
                     updated_at=excluded.updated_at""",
                rows,
            )
        return len(rows)

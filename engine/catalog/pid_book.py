"""The pid each scan was registered with, kept in the state store and reused forever.

A dataset's pid is derived once (`dataset_pid`: `[catalog] pid_prefix`, `[beamline] name`, scan
id) and then *remembered*: changing `pid_prefix`, the beamline name or `creation_location` later
applies to new scans only, and every look-up, update and observation of an older scan uses the
pid it was created with. Each row also records the settings the dataset was made with, so a start-up
(or `--check`) can say which settings changed since (`settings_drift`).

`StorePidBook` is the `catalog_pids` table of a `StateStore`; `MemoryPidBook` serves a process
with no state store (tests, a back-fill run against a fresh store).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from engine.state import StateStore, iso


@dataclass(frozen=True, slots=True)
class PidSettings:
    """What a dataset was created with (descriptive fields that may change for new scans)."""

    pid_prefix: str
    beamline: str
    creation_location: str


class PidBook(Protocol):
    def get(self, scan_id: str) -> str | None:
        """The pid `scan_id` was registered with, if it was."""
        ...

    def all(self) -> dict[str, str]:
        """Every recorded scan id → pid."""
        ...

    def record(self, scan_id: str, pid: str, settings: PidSettings, now: datetime) -> None:
        """Remember the pid (the first record wins: a pid never changes)."""
        ...

    def record_many(self, pids: dict[str, str], settings: PidSettings, now: datetime) -> None:
        """`record` for many scans at once (one transaction)."""
        ...

    def settings_in_use(self) -> dict[PidSettings, int]:
        """How many recorded datasets were made with each combination of settings."""
        ...


class MemoryPidBook:
    """A `PidBook` in memory."""

    def __init__(self) -> None:
        self._pids: dict[str, tuple[str, PidSettings]] = {}
        self._lock = threading.Lock()

    def get(self, scan_id: str) -> str | None:
        entry = self._pids.get(scan_id)
        return entry[0] if entry else None

    def all(self) -> dict[str, str]:
        with self._lock:
            return {scan: pid for scan, (pid, _) in self._pids.items()}

    def record(self, scan_id: str, pid: str, settings: PidSettings, now: datetime) -> None:
        with self._lock:
            self._pids.setdefault(scan_id, (pid, settings))

    def record_many(self, pids: dict[str, str], settings: PidSettings, now: datetime) -> None:
        for scan_id, pid in pids.items():
            self.record(scan_id, pid, settings, now)

    def settings_in_use(self) -> dict[PidSettings, int]:
        counts: dict[PidSettings, int] = {}
        for _, settings in self._pids.values():
            counts[settings] = counts.get(settings, 0) + 1
        return counts


class StorePidBook:
    """The `catalog_pids` table (a read-only store at an older schema reads register events)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def _has_table(self) -> bool:
        return self.store.has_table("catalog_pids")

    def get(self, scan_id: str) -> str | None:
        if not self._has_table():
            return self._from_events().get(scan_id)
        row = (
            self.store.connection()
            .execute("SELECT pid FROM catalog_pids WHERE scan = ?", (scan_id,))
            .fetchone()
        )
        return str(row["pid"]) if row else None

    def all(self) -> dict[str, str]:
        if not self._has_table():
            return self._from_events()
        rows = self.store.connection().execute("SELECT scan, pid FROM catalog_pids")
        return {str(r["scan"]): str(r["pid"]) for r in rows}

    def record(self, scan_id: str, pid: str, settings: PidSettings, now: datetime) -> None:
        self.record_many({scan_id: pid}, settings, now)

    def record_many(self, pids: dict[str, str], settings: PidSettings, now: datetime) -> None:
        if self.store.readonly or not pids or not self._has_table():
            return  # an audit records nothing
        with self.store.transaction() as conn:
            # INSERT OR IGNORE: a pid once recorded never changes.
            conn.executemany(
                "INSERT OR IGNORE INTO catalog_pids"
                "(scan, pid, pid_prefix, beamline, creation_location, recorded_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        scan_id,
                        pid,
                        settings.pid_prefix,
                        settings.beamline,
                        settings.creation_location,
                        iso(now),
                    )
                    for scan_id, pid in pids.items()
                ],
            )

    def settings_in_use(self) -> dict[PidSettings, int]:
        if not self._has_table():
            return {}
        rows = self.store.connection().execute(
            "SELECT pid_prefix, beamline, creation_location, COUNT(*) AS n FROM catalog_pids"
            " WHERE pid_prefix IS NOT NULL GROUP BY pid_prefix, beamline, creation_location"
        )
        return {
            PidSettings(r["pid_prefix"], r["beamline"], r["creation_location"]): int(r["n"])
            for r in rows
        }

    def _from_events(self) -> dict[str, str]:
        out: dict[str, str] = {}
        try:
            rows = self.store.connection().execute(
                "SELECT scan, data FROM events WHERE kind = 'catalog.register' ORDER BY seq"
            )
            for row in rows:
                data = json.loads(row["data"]) if row["data"] else {}
                if row["scan"] and isinstance(data, dict) and data.get("pid"):
                    out.setdefault(str(row["scan"]), str(data["pid"]))
        except sqlite3.Error:
            return {}
        return out


@runtime_checkable
class KeepsPids(Protocol):
    """A catalog that remembers pids per scan (SciCat); the local catalog derives them."""

    pid_book: PidBook


def keep_pids_in(catalog: object, store: StateStore) -> None:
    """Give a catalog that keeps pids the state store's book (the reconciler does at start)."""
    if isinstance(catalog, KeepsPids):
        catalog.pid_book = StorePidBook(store)


def settings_drift(book: PidBook, current: PidSettings) -> list[str]:
    """Lines saying which catalog settings differ from those recorded datasets were made with.

    Existing datasets keep their pids and fields; the new settings apply to new scans only.
    """
    lines = []
    for settings, count in sorted(book.settings_in_use().items(), key=lambda kv: -kv[1]):
        changed = [
            f"{name} {old!r} → {new!r}"
            for name, old, new in (
                ("[catalog] pid_prefix", settings.pid_prefix, current.pid_prefix),
                ("[beamline] name", settings.beamline, current.beamline),
                (
                    "[catalog] creation_location",
                    settings.creation_location,
                    current.creation_location,
                ),
            )
            if old != new
        ]
        if changed:
            lines.append(
                f"{count} datasets were registered with {', '.join(changed)}: they keep their "
                "pids and records; the new settings apply to new scans only"
            )
    return lines

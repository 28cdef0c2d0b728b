"""One row number per scan id, for the whole process: what lets per-scan facts be columns.

At 100k scans a dict over every scan costs 3.8 MB and a boxed int per entry 3.2 MB more. The
facts the service keeps for every scan between passes — the stored replicas' marks
(`engine.store.mark_table`), where each document is in the local catalog file
(`engine.catalog.doc_index`), each endpoint's evidence (`RowMap`, read by
`engine.store.replicas`) — are kept instead as arrays or lists indexed by the scan's row number
here: one dict for all of them (issue 15's memory target).

Numbers are handed out on first sight and never taken back or reused, so an array made earlier
stays right for every row it covers; a row past its end is simply not in it. The table holds
every scan id the process has met (the scans its store knows, the documents of its catalog):
what the service holds anyway. A column spans the rows from its lowest to its highest scan.
Safe to use from several threads.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

from engine.pairs_mapping import PairsMapping

T = TypeVar("T")


class ScanRows:
    """scan id → row number (see the module docstring)."""

    def __init__(self) -> None:
        self._rows: dict[str, int] = {}
        self._ids: list[str] = []  # row → scan id
        self._lock = threading.Lock()

    def row(self, scan: str) -> int:
        """The scan's row number, given now if it has none yet."""
        found = self._rows.get(scan)
        if found is not None:
            return found
        with self._lock:
            found = self._rows.get(scan)
            if found is None:
                # Ids shared with every other layer that holds them (engine.compact).
                scan = sys.intern(scan)
                found = len(self._ids)
                self._ids.append(scan)  # before the dict: a row found is always named
                self._rows[scan] = found
            return found

    def find(self, scan: object) -> int | None:
        """The scan's row number, None if it has none (never gives one)."""
        return self._rows.get(scan)  # type: ignore[call-overload]

    def scan(self, row: int) -> str:
        """The scan id of a row given before."""
        return self._ids[row]

    def scans(self, rows: Iterable[int]) -> Iterator[str]:
        """The scan ids of rows given before, in the order given."""
        ids = self._ids
        return (ids[row] for row in rows)

    def __len__(self) -> int:
        return len(self._ids)


ROWS = ScanRows()


class RowMap(PairsMapping[str, T]):
    """scan id → value, as a list indexed by row number from the lowest row it holds: 8 bytes
    a scan instead of a dict entry (~38). Read-only once made (`RowMap.of`)."""

    __slots__ = ("_base", "_len", "_values")

    def __init__(self, base: int = 0, values: list[T | None] | None = None) -> None:
        self._base = base
        self._values: list[T | None] = values if values is not None else []
        self._len = len(self._values) - self._values.count(None)

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, T]]) -> RowMap[T]:
        """The map of (scan, value) pairs; a later pair for a scan replaces an earlier one."""
        rows = [(ROWS.row(scan), value) for scan, value in pairs]
        if not rows:
            return cls()
        base = min(row for row, _ in rows)
        values: list[T | None] = [None] * (max(row for row, _ in rows) - base + 1)
        for row, value in rows:
            values[row - base] = value
        return cls(base, values)

    def _find(self, scan: object) -> T | None:
        row = ROWS.find(scan)
        if row is None:
            return None
        row -= self._base
        return self._values[row] if 0 <= row < len(self._values) else None

    def __len__(self) -> int:
        return self._len

    def _pairs(self) -> Iterator[tuple[str, T]]:
        ids, base = ROWS._ids, self._base
        for row, value in enumerate(self._values):
            if value is not None:
                yield ids[base + row], value

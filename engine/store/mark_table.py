"""The stored replicas' marks as columns: one row number per scan, one array per endpoint.

A pass compares each replica it assessed with the mark of its stored row (`replica_mark`) and
learns from the marks' keys which scans an endpoint held before. Kept as one dict per endpoint,
the marks cost a dict entry and a 32-byte int per replica: 22 MB at 100k scans on three
endpoints. Here each endpoint's marks are 8 bytes in an `array('q')` indexed by the scan's row
number (`engine.scan_rows`, shared with the other per-scan columns), `ABSENT` where it holds no
row: 2.4 MB (issue 15's memory target).

A `MarkTable` is never changed once made: a write makes a new one (`with_changes`) that shares
what did not change, so a map handed to a pass stays a snapshot of the rows when it was read.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat

from engine.compact import shared
from engine.pairs_mapping import PairsMapping
from engine.scan_rows import ROWS

ABSENT = -(1 << 63)  # no row at this endpoint (`replica_mark` never gives it)


class EndpointMarks(PairsMapping[str, int]):
    """One endpoint's marks: scan → mark of its stored row (a read-only view)."""

    __slots__ = ("_len", "_marks")

    def __init__(self, marks: array[int]) -> None:
        self._marks = marks
        self._len = len(marks) - marks.count(ABSENT)

    def _find(self, scan: object) -> int | None:
        row = ROWS.find(scan)
        marks = self._marks
        if row is None or row >= len(marks):
            return None
        mark = marks[row]
        return None if mark == ABSENT else mark

    def _pairs(self) -> Iterator[tuple[str, int]]:
        for row, mark in enumerate(self._marks):
            if mark != ABSENT:
                yield ROWS.scan(row), mark

    def __iter__(self) -> Iterator[str]:
        return ROWS.scans(row for row, mark in enumerate(self._marks) if mark != ABSENT)

    def __len__(self) -> int:
        return self._len


class MarkTable:
    """endpoint → scan → mark, for every endpoint (see the module docstring)."""

    __slots__ = ("_columns",)

    def __init__(self, columns: dict[str, array[int]]) -> None:
        self._columns = columns

    @classmethod
    def read(cls, marks: Iterable[tuple[str, str, int]]) -> MarkTable:
        """A table of (endpoint, scan, mark) rows."""
        columns: dict[str, array[int]] = {}
        for endpoint, scan, mark in marks:
            row = ROWS.row(scan)
            column = columns.get(endpoint)
            if column is None:
                column = columns[shared(endpoint)] = array("q")
            if len(column) <= row:
                column.extend(repeat(ABSENT, row + 1 - len(column)))
            column[row] = mark
        return cls(columns)

    def views(self) -> dict[str, Mapping[str, int]]:
        """endpoint → its marks, for every endpoint holding at least one row."""
        return {name: EndpointMarks(column) for name, column in self._columns.items()}

    def with_changes(
        self, endpoint: str, upserts: Mapping[str, int], removed: Iterable[str]
    ) -> MarkTable:
        """The table after one endpoint's rows were written (`upserts`) and dropped (`removed`)."""
        old = self._columns.get(endpoint)
        # Copy on write: a view handed out before keeps the marks it was made with.
        column = array("q", old) if old is not None else array("q")
        for scan in removed:
            row = ROWS.find(scan)
            if row is not None and row < len(column):
                column[row] = ABSENT
        for scan, mark in upserts.items():
            row = ROWS.row(scan)
            if len(column) <= row:
                column.extend(repeat(ABSENT, row + 1 - len(column)))
            column[row] = mark
        columns = {name: held for name, held in self._columns.items() if name != endpoint}
        if column.count(ABSENT) < len(column):  # as a fresh read: no row, no map
            columns[shared(endpoint)] = column
        return MarkTable(columns)

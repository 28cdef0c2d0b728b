"""The stored replicas' marks as columns: one row number per scan, one array per endpoint.

A pass compares each replica it assessed with the mark of its stored row (`replica_mark`) and
learns from the marks' keys which scans an endpoint held before. Kept as one dict per endpoint,
the marks cost a dict entry and a 32-byte int per replica: 22 MB at 100k scans on three
endpoints. Here every endpoint shares one dict of row numbers (scan → row), and each endpoint's
marks are 8 bytes in an `array('q')`, `ABSENT` where it holds no row: ~9 MB (issue 15's memory
target).

A `MarkTable` is never changed once made: a write makes a new one (`with_changes`) that shares
what did not change, so a map handed to a pass stays a snapshot of the rows when it was read.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat

from engine.compact import shared

ABSENT = -(1 << 63)  # no row at this endpoint (`replica_mark` never gives it)


class EndpointMarks(Mapping[str, int]):
    """One endpoint's marks: scan → mark of its stored row (a read-only view)."""

    __slots__ = ("_len", "_marks", "_rows")

    def __init__(self, rows: Mapping[str, int], marks: array[int]) -> None:
        self._rows = rows
        self._marks = marks
        self._len = len(marks) - marks.count(ABSENT)

    def __getitem__(self, scan: str) -> int:
        row = self._rows[scan]
        marks = self._marks
        if row >= len(marks) or marks[row] == ABSENT:
            raise KeyError(scan)
        return marks[row]

    def get(self, scan: str, default: int | None = None) -> int | None:  # type: ignore[override]
        row = self._rows.get(scan)
        if row is None or row >= len(self._marks):
            return default
        mark = self._marks[row]
        return default if mark == ABSENT else mark

    def __contains__(self, scan: object) -> bool:
        row = self._rows.get(scan)  # type: ignore[call-overload]
        return row is not None and row < len(self._marks) and self._marks[row] != ABSENT

    def __iter__(self) -> Iterator[str]:
        marks, held = self._marks, len(self._marks)
        return (scan for scan, row in self._rows.items() if row < held and marks[row] != ABSENT)

    def __len__(self) -> int:
        return self._len


class MarkTable:
    """endpoint → scan → mark, for every endpoint (see the module docstring)."""

    __slots__ = ("_columns", "_rows")

    def __init__(self, rows: dict[str, int], columns: dict[str, array[int]]) -> None:
        self._rows = rows
        self._columns = columns

    @classmethod
    def read(cls, marks: Iterable[tuple[str, str, int]]) -> MarkTable:
        """A table of (endpoint, scan, mark) rows."""
        rows: dict[str, int] = {}
        columns: dict[str, array[int]] = {}
        for endpoint, scan, mark in marks:
            row = rows.get(scan)
            if row is None:
                row = rows[shared(scan)] = len(rows)
            column = columns.get(endpoint)
            if column is None:
                column = columns[shared(endpoint)] = array("q")
            if len(column) <= row:
                column.extend(repeat(ABSENT, row + 1 - len(column)))
            column[row] = mark
        return cls(rows, columns)

    def views(self) -> dict[str, Mapping[str, int]]:
        """endpoint → its marks, for every endpoint holding at least one row."""
        return {name: EndpointMarks(self._rows, column) for name, column in self._columns.items()}

    def with_changes(
        self, endpoint: str, upserts: Mapping[str, int], removed: Iterable[str]
    ) -> MarkTable:
        """The table after one endpoint's rows were written (`upserts`) and dropped (`removed`)."""
        rows = self._rows
        new = [scan for scan in upserts if scan not in rows]
        if new:  # copy on write: a view handed out before keeps the rows it was made with
            rows = dict(rows)
            for scan in new:
                rows[shared(scan)] = len(rows)
        old = self._columns.get(endpoint)
        column = array("q", old) if old is not None else array("q")
        for scan in removed:
            row = rows.get(scan)
            if row is not None and row < len(column):
                column[row] = ABSENT
        if len(column) < len(rows):
            column.extend(repeat(ABSENT, len(rows) - len(column)))
        for scan, mark in upserts.items():
            column[rows[scan]] = mark
        columns = {name: held for name, held in self._columns.items() if name != endpoint}
        if column.count(ABSENT) < len(column):  # as a fresh read: no row, no map
            columns[shared(endpoint)] = column
        return MarkTable(rows, columns)

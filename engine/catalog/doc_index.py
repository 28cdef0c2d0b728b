"""The local catalog file's index: per scan, where its document is and the endpoints it records.

At 100k documents the index is held for as long as the service runs. A dict of `DocEntry`s
(a dict entry, a named tuple and two ints per scan: ~170 bytes) becomes three arrays indexed
by the scan's row number (`engine.scan_rows`): the start and length of its document and the
number of its endpoint set, 20 bytes a scan (issue 15's memory target); the few distinct
endpoint sets (`frozenset`s such as {cfs, hpss}) are kept once in a table. Reads give a
`DocEntry` back, made on demand.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from itertools import repeat
from typing import NamedTuple

from engine.pairs_mapping import PairsMapping
from engine.scan_rows import ROWS

_NONE = -1  # no document for this row


class DocEntry(NamedTuple):
    """Where one scan's document is in the file, and the endpoints it records."""

    start: int
    end: int
    endpoints: frozenset[str]


class DocIndex(PairsMapping[str, DocEntry]):
    """scan id → `DocEntry` as columns (see the module docstring). Made by `DocIndexBuilder`,
    then only read. The columns cover the rows from the lowest to the highest of its scans
    (a catalog's scans are mostly numbered together: when first listed or read)."""

    __slots__ = ("_base", "_len", "_lengths", "_sets", "_starts", "_which")

    def __init__(
        self,
        base: int = 0,
        starts: array[int] | None = None,
        lengths: array[int] | None = None,
        which: array[int] | None = None,
        sets: list[frozenset[str]] | None = None,
    ) -> None:
        self._base = base
        self._starts = starts if starts is not None else array("q")
        self._lengths = lengths if lengths is not None else array("q")
        self._which = which if which is not None else array("i")  # `_NONE`: no document
        self._sets = sets or []
        self._len = len(self._which) - self._which.count(_NONE)

    def _row(self, scan_id: object) -> int | None:
        row = ROWS.find(scan_id)
        if row is None:
            return None
        row -= self._base
        if not 0 <= row < len(self._which) or self._which[row] == _NONE:
            return None
        return row

    def _entry(self, row: int) -> DocEntry:
        start = self._starts[row]
        return DocEntry(start, start + self._lengths[row], self._sets[self._which[row]])

    def _find(self, scan_id: object) -> DocEntry | None:
        row = self._row(scan_id)
        return None if row is None else self._entry(row)

    def _pairs(self) -> Iterator[tuple[str, DocEntry]]:
        for row, number in enumerate(self._which):
            if number != _NONE:
                yield ROWS.scan(self._base + row), self._entry(row)

    def __contains__(self, scan_id: object) -> bool:  # no entry made
        return self._row(scan_id) is not None

    def __iter__(self) -> Iterator[str]:  # the ids alone
        base = self._base
        return ROWS.scans(base + row for row, number in enumerate(self._which) if number != _NONE)

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"DocIndex({len(self)} documents)"


class DocIndexBuilder:
    """Collects the entries of a file being read or written (`add`), then makes its index
    (`done`). An entry added again replaces the first."""

    def __init__(self) -> None:
        self._rows: array[int] = array("q")
        self._starts: array[int] = array("q")
        self._lengths: array[int] = array("q")
        self._which: array[int] = array("i")
        self._sets: list[frozenset[str]] = []
        self._numbers: dict[frozenset[str], int] = {}

    def add(self, scan_id: str, start: int, end: int, endpoints: frozenset[str]) -> None:
        number = self._numbers.get(endpoints)
        if number is None:
            number = self._numbers[endpoints] = len(self._sets)
            self._sets.append(endpoints)
        self._rows.append(ROWS.row(scan_id))
        self._starts.append(start)
        self._lengths.append(end - start)
        self._which.append(number)

    def done(self) -> DocIndex:
        rows = self._rows
        if not rows:
            return DocIndex()
        base = min(rows)
        span = max(rows) - base + 1
        starts, lengths = array("q", repeat(0, span)), array("q", repeat(0, span))
        which = array("i", repeat(_NONE, span))
        for at, row in enumerate(rows):  # in the order added: a later entry replaces
            row -= base
            starts[row] = self._starts[at]
            lengths[row] = self._lengths[at]
            which[row] = self._which[at]
        return DocIndex(base, starts, lengths, which, self._sets)

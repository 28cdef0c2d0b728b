"""The local catalog file's index: per scan, where its document is and the endpoints it records.

At 100k documents the index is held for as long as the service runs. A `DocEntry` per scan
(a named tuple and two ints: ~130 bytes) becomes one int per scan here (~40 bytes): the byte
range and the number of the document's endpoint set, packed; the few distinct endpoint sets
(`frozenset`s such as {cfs, hpss}) are kept once in a table. Reads give a `DocEntry` back,
made on demand. An entry that does not fit the packing (a document of 4 GiB or more, more
than 65,536 distinct endpoint sets) is kept as its `DocEntry`: nothing is ever truncated.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from typing import NamedTuple

_LENGTH_BITS = 32
_SET_BITS = 16


class DocEntry(NamedTuple):
    """Where one scan's document is in the file, and the endpoints it records."""

    start: int
    end: int
    endpoints: frozenset[str]


class DocIndex(Mapping[str, DocEntry]):
    """scan id → `DocEntry`, one packed int per scan (see the module docstring). Filled once
    by the reader or the writer that builds it (`add`), then only read."""

    __slots__ = ("_numbers", "_packed", "_sets")

    def __init__(self) -> None:
        self._packed: dict[str, int | DocEntry] = {}
        self._sets: list[frozenset[str]] = []
        self._numbers: dict[frozenset[str], int] = {}

    def add(self, scan_id: str, start: int, end: int, endpoints: frozenset[str]) -> None:
        number = self._numbers.get(endpoints)
        if number is None:
            number = self._numbers[endpoints] = len(self._sets)
            self._sets.append(endpoints)
        length = end - start
        # Ids shared with the scans and every other layer (engine.compact): a file read at
        # start-up would otherwise hold a second copy of every id.
        scan_id = sys.intern(scan_id)
        if start >= 0 and 0 <= length < 1 << _LENGTH_BITS and number < 1 << _SET_BITS:
            self._packed[scan_id] = (((start << _LENGTH_BITS) | length) << _SET_BITS) | number
        else:
            self._packed[scan_id] = DocEntry(start, end, self._sets[number])

    def __getitem__(self, scan_id: str) -> DocEntry:
        packed = self._packed[scan_id]
        if not isinstance(packed, int):
            return packed
        endpoints = self._sets[packed & ((1 << _SET_BITS) - 1)]
        packed >>= _SET_BITS
        start = packed >> _LENGTH_BITS
        return DocEntry(start, start + (packed & ((1 << _LENGTH_BITS) - 1)), endpoints)

    def __contains__(self, scan_id: object) -> bool:
        return scan_id in self._packed

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)

    def __repr__(self) -> str:
        return f"DocIndex({len(self)} documents)"


NO_ENTRIES: Mapping[str, DocEntry] = DocIndex()

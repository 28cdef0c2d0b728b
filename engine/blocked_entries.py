"""A plan's blocked entries as two columns (issue 15's memory target).

A settled plan at 100k scans blocks about two deletes per scan (kept until its retention ends):
200k `Blocked` tuples of 80 bytes each, all alike but for the scan. `BlockedEntries` keeps a
list of scan ids and a list of shared (kind, endpoint, reason code, reason) tuples instead —
16 bytes an entry — and makes a `Blocked` when one is read. It is a read-only sequence of
`Blocked` equal to the tuple of the same entries, so that every reader of `Plan.blocked` is
unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from engine.model import ActionKind, Blocked

# Everything of a blocked entry but its scan: shared by every entry alike.
Why = tuple[ActionKind, "str | None", str, str]


def _make(scan: str, why: Why) -> Blocked:
    return Blocked(scan, *why)


class BlockedEntries(Sequence[Blocked]):
    __slots__ = ("_scans", "_shared", "_whys")

    def __init__(self, entries: Iterable[Blocked] = ()) -> None:
        self._scans: list[str] = []
        self._whys: list[Why] = []
        # One tuple per distinct reason while entries are added (dropped by `done`).
        self._shared: dict[Why, Why] | None = {}
        self.extend(entries)

    def add(self, scan: str, why: Why) -> None:
        shared = self._open().setdefault(why, why)
        self._scans.append(scan)
        self._whys.append(shared)

    def append(self, entry: Blocked) -> None:
        self.add(entry.scan, (entry.kind, entry.endpoint, entry.reason_code, entry.reason))

    def extend(self, entries: Iterable[Blocked]) -> None:
        if isinstance(entries, BlockedEntries):
            self._open()
            # Their reasons are shared already: the columns as they are (a delta pass joins
            # the settled plan's 100,000s of entries with the new scans').
            self._scans.extend(entries._scans)
            self._whys.extend(entries._whys)
        else:
            for entry in entries:
                self.append(entry)

    def _open(self) -> dict[Why, Why]:
        """The sharing table, while entries may still be added."""
        if self._shared is None:
            raise TypeError("these blocked entries are done: a plan's are read-only")
        return self._shared

    def done(self) -> BlockedEntries:
        """No more entries: let go of the sharing table (the plan keeps only the columns)."""
        self._shared = None
        return self

    def reason_codes(self) -> Iterator[str]:
        """Each entry's reason code, without making the entries."""
        return (why[2] for why in self._whys)

    def scans(self) -> Iterator[str]:
        """Each entry's scan id, without making the entries."""
        return iter(self._scans)

    def __len__(self) -> int:
        return len(self._scans)

    def __iter__(self) -> Iterator[Blocked]:
        return map(_make, self._scans, self._whys)

    @overload
    def __getitem__(self, index: int) -> Blocked: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Blocked, ...]: ...

    def __getitem__(self, index: int | slice) -> Blocked | tuple[Blocked, ...]:
        if isinstance(index, slice):
            return tuple(map(_make, self._scans[index], self._whys[index]))
        return _make(self._scans[index], self._whys[index])

    def __eq__(self, other: object) -> bool:
        # Equal to the same entries as blocked entries or as a tuple (what `Plan.blocked` was),
        # and, as a tuple, to nothing else (not to a list).
        if isinstance(other, BlockedEntries):
            return self._scans == other._scans and self._whys == other._whys
        if isinstance(other, tuple):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __add__(self, other: Iterable[Blocked]) -> BlockedEntries:
        return joined(self, other)

    def __radd__(self, other: Iterable[Blocked]) -> BlockedEntries:
        return joined(other, self)

    def __reduce__(self) -> tuple[object, tuple[tuple[Blocked, ...]]]:
        return joined, (tuple(self),)  # pickled and copied as its entries, with any protocol

    def __repr__(self) -> str:
        return f"BlockedEntries({list(self)!r})"


def joined(*parts: Iterable[Blocked]) -> BlockedEntries:
    """The entries of `parts`, in order, as new (done) blocked entries."""
    out = BlockedEntries()
    for part in parts:
        out.extend(part)
    return out.done()


def scans_of(entries: Sequence[Blocked]) -> Iterable[str]:
    """Each entry's scan id (without making the entries of `BlockedEntries`)."""
    if isinstance(entries, BlockedEntries):
        return entries.scans()
    return (entry.scan for entry in entries)

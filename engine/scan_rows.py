"""One row number per scan id, for the whole process: what lets per-scan facts be columns.

At 100k scans a dict over every scan costs 3.8 MB and a boxed int per entry 3.2 MB more. The
facts the service keeps for every scan between passes — the stored replicas' marks
(`engine.store.mark_table`), where each document is in the local catalog file
(`engine.catalog.doc_index`) — are kept instead as arrays indexed by the scan's row number
here: one dict for all of them (issue 15's memory target).

Numbers are handed out on first sight and never taken back or reused (a process sees at most
the scans it lists, reads or is told about), so an array made earlier stays right for every
row it covers; a row past its end is simply not in it. Safe to use from several threads.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator


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

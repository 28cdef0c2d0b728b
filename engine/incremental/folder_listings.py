"""One local endpoint's listing of one-file scans, read from the folders of one walk.

`DirectoryCache` keeps each folder's scans as a tuple sorted by scan id. The endpoint's
listing (scan id → listing) is a view over those folders rather than a dict over every scan:
a one-file scan's id is its path, so its folder is the id's parent and a binary search finds it
there. At 100k scans that is one dict of 3.8 MB less per local endpoint and per walk (issue
15's memory target), and a full walk no longer builds three of them.

A snapshot: a walk's folders and their tuples are never changed once read (the next walk
makes a new map of folders), so a view handed to a pass keeps listing what that walk found.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping
from operator import attrgetter
from typing import TYPE_CHECKING

from engine.listing import ScanListing
from engine.pairs_mapping import PairsMapping

if TYPE_CHECKING:
    from engine.incremental.dirs import _Folder

scan_of = attrgetter("scan")


class FolderListings(PairsMapping[str, ScanListing]):
    """scan id → listing over a walk's folders (see the module docstring)."""

    __slots__ = ("_folders", "_len")

    def __init__(self, folders: Mapping[str, _Folder]) -> None:
        self._folders = {reldir: f.scans for reldir, f in folders.items() if f.scans}
        self._len = sum(len(scans) for scans in self._folders.values())

    def _find(self, scan: object) -> ScanListing | None:
        if not isinstance(scan, str):
            return None
        scans = self._folders.get(scan.rpartition("/")[0])
        if scans is None:
            return None
        at = bisect_left(scans, scan, key=scan_of)
        if at < len(scans) and scans[at].scan == scan:
            return scans[at]
        return None

    def __iter__(self) -> Iterator[str]:
        for scans in self._folders.values():
            for listing in scans:
                yield listing.scan

    def __len__(self) -> int:
        return self._len

    def _pairs(self) -> Iterator[tuple[str, ScanListing]]:
        for scans in self._folders.values():
            for listing in scans:
                yield listing.scan, listing

    def __repr__(self) -> str:
        return f"FolderListings({self._len} scans in {len(self._folders)} folders)"

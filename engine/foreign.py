"""Foreign files: what a prune found beside a scan's verified files and left where it was.

A prune removes exactly the files of the scan's verified manifest. Anything else in the scan's
folder (a name the layout excludes, a file a user added) stays and is recorded in the receipt's
`left_behind`. Those files are not a replica of the scan: the scan counts as pruned at that
endpoint. So every listing of that endpoint leaves the recorded paths out, and the scan is
absent there once nothing else of it is listed:

- at a copy endpoint (cfs, hpss), a recorded path is left out unless it is a file of the scan's
  current version (a later version written to the same path is a replica again);
- at the inventory endpoint, the walk ignores exactly the recorded paths, so a user's file left
  in a pruned scan folder is never inventoried as a new version of the scan (and never copied).
  A file added to the folder *after* the prune is not recorded, and is inventoried as usual.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from engine.layout import ScanLayout
from engine.listing import listing_of
from engine.model import Scan
from engine.state import ForeignFiles
from engine.storage.base import ScanListing, Storage

# endpoint → scan → the recorded foreign paths of that scan there
ForeignPaths = dict[str, dict[str, frozenset[str]]]


def foreign_paths(records: Iterable[ForeignFiles]) -> ForeignPaths:
    """Group `StateStore.foreign_files()` records by endpoint and scan (several deletes of one
    scan at one endpoint, e.g. of successive versions, add up)."""
    grouped: dict[str, dict[str, set[str]]] = {}
    for record in records:
        grouped.setdefault(record.endpoint, {}).setdefault(record.scan, set()).update(record.paths)
    return {
        endpoint: {scan: frozenset(paths) for scan, paths in by_scan.items()}
        for endpoint, by_scan in grouped.items()
    }


def without_foreign(
    listings: Mapping[str, ScanListing],
    foreign: Mapping[str, frozenset[str]] | None,
    scans: Mapping[str, Scan] | None = None,
) -> Mapping[str, ScanListing]:
    """The listings with the recorded foreign paths left out; a scan left empty is absent.

    Args:
        listings: one endpoint's listing, scan id → files.
        foreign: that endpoint's recorded foreign paths, scan id → paths.
        scans: the scans as known now; a recorded path that is a file of the scan's current
            version is kept (None: leave out exactly the recorded paths, as the walk does).
    """
    if not foreign:
        return listings
    out = dict(listings)
    for scan_id, paths in foreign.items():
        listing = out.get(scan_id)
        if listing is None:
            continue
        scan = scans.get(scan_id) if scans is not None else None
        hidden = paths - {f.path for f in scan.files} if scan is not None else paths
        kept = tuple(f for f in listing.files if f.path not in hidden)
        if len(kept) == len(listing.files):
            continue
        if kept:
            out[scan_id] = listing_of(scan_id, kept)
        else:
            del out[scan_id]
    return out


class WithoutForeign:
    """A `Storage` whose listings leave out recorded foreign paths (as the walk does)."""

    def __init__(self, inner: Storage, foreign: Mapping[str, frozenset[str]]) -> None:
        self.name = inner.name
        self._inner = inner
        self._foreign = foreign

    def list_scans(
        self, layout: ScanLayout, wanted: Collection[str] | None = None
    ) -> Mapping[str, ScanListing]:
        return without_foreign(self._inner.list_scans(layout, wanted), self._foreign)

    def stat_scan(self, layout: ScanLayout, scan: str) -> ScanListing | None:
        listing = self._inner.stat_scan(layout, scan)
        if listing is None:
            return None
        return without_foreign({scan: listing}, self._foreign).get(scan)

    def checksum_files(self, listing: ScanListing, algorithm: str) -> dict[str, str] | None:
        return self._inner.checksum_files(listing, algorithm)

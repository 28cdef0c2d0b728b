"""Inventory by listing, for an inventory endpoint that is not mounted here.

A Globus collection with no local `path` cannot be watched or checksummed locally, so each pass
lists it and applies the watcher's stability rule: a scan is complete when its newest file is at
least `quiet_seconds` old *and* two consecutive listings agree (file scans only, for now: a
directory scan's listing fingerprint is not something the Globus mover can verify against). The previous listing is the previous pass's; a scan seen for the first
time is listed once more, right away, so a one-shot pass (`--once`, a new process) still
completes it.

No content checksum exists for such a scan: its acquisition "checksum" is a fingerprint of the
listing (algorithm `listing`), so a rewrite still makes a new version, and copy evidence comes
only from transfers Globus verified. A delete that needs a re-hash of a local copy can never be
satisfied by it, which is the safe way to be wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from engine.errors import Bl931Error, EndpointUnavailable
from engine.inventory.walk import InventoryResult
from engine.layout import ScanLayout
from engine.model import FileStat, Problem, Scan, ScanFile
from engine.storage.base import ScanListing, Storage, listing_signature

log = logging.getLogger(__name__)

LISTING_ALGORITHM = "listing"


class ListingInventory:
    """Remembers the previous pass's listing signatures, so two passes make two snapshots."""

    def __init__(self) -> None:
        self._previous: dict[str, str] = {}

    def inventory(
        self,
        storage: Storage,
        layout: ScanLayout,
        *,
        quiet_seconds: float,
        now: datetime,
        known: Mapping[str, Scan],
    ) -> InventoryResult:
        """List the endpoint and describe every scan that is quiet and listed the same twice.

        Raises:
            EndpointUnavailable: the endpoint could not be listed (never "no scans").
        """
        if layout.unit == "directory":
            return InventoryResult(
                {},
                (),
                (
                    Problem(
                        "",
                        f"{storage.name}: directory scans on an endpoint that is not mounted "
                        "here cannot be inventoried by listing yet; give the endpoint a local "
                        "`path`",
                    ),
                ),
                0,
            )
        try:
            listings = storage.list_scans(layout)
        except EndpointUnavailable:
            raise
        except Bl931Error as exc:  # any failed listing makes the inventory unknown this pass
            raise EndpointUnavailable(
                storage.name, exc.message, error_class=exc.error_class
            ) from exc
        scans: dict[str, Scan] = {}
        incomplete: list[str] = []
        problems: list[Problem] = []
        for scan_id in sorted(listings):
            listing = listings[scan_id]
            if not _quiet(listing, now, quiet_seconds):
                incomplete.append(scan_id)
                continue
            previous = known.get(scan_id)
            if previous is not None and _same_files(previous, listing):
                scans[scan_id] = previous
                continue
            earlier = self._previous.get(scan_id)
            if earlier is None:
                try:
                    again = storage.stat_scan(layout, scan_id)
                except Bl931Error as exc:
                    problems.append(
                        Problem(scan_id, f"scan {scan_id!r}: second listing failed: {exc}")
                    )
                    continue
                earlier = again.signature if again is not None else None
            if earlier != listing.signature:
                incomplete.append(scan_id)
                continue
            scans[scan_id] = describe_listed(listing, previous, is_directory=False)
        self._previous = {scan_id: listing.signature for scan_id, listing in listings.items()}
        return InventoryResult(scans, tuple(incomplete), tuple(problems), 0)


def describe_listed(listing: ScanListing, known: Scan | None, *, is_directory: bool) -> Scan:
    """A scan whose checksums are listing fingerprints (no content was read)."""
    files = tuple(
        ScanFile(f.path, f.size, f.mtime, listing_signature([FileStat(f.path, f.size, f.mtime)]))
        for f in listing.files
    )
    checksum = listing.signature if is_directory else files[0].checksum
    version = 1
    if known is not None:
        same = known.checksum_algorithm == LISTING_ALGORITHM and known.checksum == checksum
        version = known.version if same else known.version + 1
    return Scan(
        id=listing.scan,
        files=files,
        acquired_at=datetime.fromtimestamp(max(f.mtime for f in files), tz=UTC),
        checksum_algorithm=LISTING_ALGORITHM,
        checksum=checksum,
        version=version,
        is_directory=is_directory,
    )


def _quiet(listing: ScanListing, now: datetime, quiet_seconds: float) -> bool:
    newest = max(f.mtime for f in listing.files)
    return now.timestamp() - newest >= quiet_seconds


def _same_files(previous: Scan, listing: ScanListing) -> bool:
    if previous.checksum_algorithm != LISTING_ALGORITHM:
        return False
    return [(f.path, f.size, f.mtime) for f in previous.files] == [
        (f.path, f.size, f.mtime) for f in listing.files
    ]

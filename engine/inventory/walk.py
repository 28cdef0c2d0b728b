"""The inventory by full walk: which complete scans the beamline has produced, with checksums.

A walk lists the inventory endpoint, decides which scans are complete (quiet long enough, or
marked done by the producer) and gives each complete scan its acquisition checksum. Checksums
are the expensive part, so a file whose (path, size, mtime, inode, ctime) is unchanged since the
last walk keeps the checksum recorded then: a steady-state walk over 100k scans reads no file
contents. Size and mtime alone are not enough: `cp -p` or `rsync -t` rewrite a file and put its
mtime back, and a checksum reused for such a file would vouch for bytes nobody hashed (a prune
would then delete them as if copies of them existed). Every write, and every `utime`, moves the
ctime, and a replacing rename gives a new inode, so a file that matches on all five still holds
the bytes that were hashed. A record made before inode and ctime were kept is re-hashed once.

A file that vanishes or cannot be read does not fail the walk: its scan is skipped this pass
and named in `problems`, and the next walk tries again.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter

from engine.errors import UnsafePath
from engine.inventory.checksum import file_checksum
from engine.layout import ScanLayout, glob_to_regex
from engine.model import FileStat, Problem, Scan, ScanFile, scan_digest
from engine.remnants import RemnantIndex
from engine.storage.base import ScanListing
from engine.storage.local import LocalStorage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InventoryResult:
    """What one walk found.

    Attributes:
        scans: complete scans by id, with checksums and versions.
        incomplete: ids of scans still being written (not checksummed yet).
        problems: human-readable messages about files that could not be read this pass.
        checksummed_bytes: bytes actually read to compute checksums (0 in a steady state).
    """

    scans: dict[str, Scan]
    incomplete: tuple[str, ...]
    problems: tuple[Problem, ...]
    checksummed_bytes: int


class _SkipScan(Exception):
    """A file of the scan could not be checksummed; the message says why."""


def walk_inventory(
    storage: LocalStorage,
    layout: ScanLayout,
    *,
    algorithm: str,
    quiet_seconds: float,
    now: datetime,
    known: Mapping[str, Scan],
    done_marker: str | None = None,
    declared_complete: Mapping[str, str] | None = None,
    remnants: RemnantIndex | None = None,
    steady: SteadyMemo | None = None,
) -> InventoryResult:
    """List the inventory endpoint and describe every complete scan.

    Args:
        storage: the inventory endpoint (it must be local: checksums are computed here).
        layout: how files group into scans.
        algorithm: the hashlib name of the acquisition checksum.
        quiet_seconds: a scan whose newest file is at least this old is complete.
        now: the current time (aware); passed in so that tests and audits are reproducible.
        known: the scans recorded by earlier walks; their checksums are reused for unchanged
            files and their versions carried on. Never changed afterwards by the caller: the
            walk may return it as its scans, and keep it in `steady` (the observer records a
            new scan in a new dict).
        done_marker: a glob matched against a directory scan's file paths relative to the scan
            folder (e.g. `"*.done"`); a scan holding a matching file is complete at once. It must
            name a file the layout includes, or the walk never sees it.
        declared_complete: scan id → listing signature of scans the live watcher declared
            complete (a producer's marker, a rename into place, a close after writing). Such a
            scan is complete before `quiet_seconds` have passed, but only while its listing still
            has that signature: a scan that changed since is judged afresh.
        remnants: partial delete receipts at this endpoint. A listing that is a known version
            minus files one of them says were removed keeps that version (`engine/remnants.py`):
            the rest of a half-deleted scan is not a new version of it.
        steady: the listings of the scans the last walk found complete and unchanged, and
            the scans that walk returned, filled in by this walk for the next (the service's
            incremental passes). A scan listed by
            the very same listing object (a folder the listing reused) whose known scan is the
            very same object is taken as it was without a second look: every check below
            depends only on those two (and on time, which only ever completes a scan).

    Returns:
        The complete scans, the incomplete ones, and problems met on the way.

    Raises:
        EndpointUnavailable: the endpoint could not be listed (never reported as "no scans").
    """
    listings = storage.list_scans(layout)
    marker = _Marker(done_marker) if done_marker and layout.unit == "directory" else None
    scans: dict[str, Scan] = {}
    incomplete: list[str] = []
    problems: list[Problem] = []
    hashed = 0
    last_listings, last_scans = (steady.listings, steady.scans) if steady else ({}, {})
    kept: dict[str, ScanListing] = {}
    for scan_id, listing in sorted(listings.items(), key=itemgetter(0)):
        previous = known.get(scan_id)
        if last_listings.get(scan_id) is listing and last_scans.get(scan_id) is previous:
            scans[scan_id] = previous  # type: ignore[assignment]  # `last_scans` holds no None
            kept[scan_id] = listing
            continue
        if not _is_utf8(scan_id):
            # The state store, the catalog and Globus all need text; reject clearly, never crash.
            problems.append(
                Problem(
                    scan_id,
                    f"scan {scan_id!r}: its name is not valid UTF-8; rename it to include it",
                )
            )
            continue
        undecodable = next((f.path for f in listing.files if not _is_utf8(f.path)), None)
        if undecodable is not None:
            # One file of a directory scan: the scan is left out as a reported problem; the
            # other scans proceed (the state store could not record this one anyway).
            problems.append(
                Problem(
                    scan_id,
                    f"scan {scan_id!r}: the name of its file {undecodable!r} is not valid "
                    "UTF-8; rename it to include the scan",
                )
            )
            continue
        declared = declared_complete.get(scan_id) if declared_complete else None
        # Completeness first: the signature (a hash) is needed only for a scan still settling.
        if not _is_complete(listing, now, quiet_seconds, marker) and declared != listing.signature:
            incomplete.append(scan_id)
            continue
        if previous is not None and _unchanged(previous, listing, algorithm):
            scans[scan_id] = previous  # the steady state: nothing to read, nothing to rebuild
            kept[scan_id] = listing
            continue
        if (
            previous is not None
            and remnants is not None
            and previous.checksum_algorithm == algorithm
            and remnants.is_remnant(previous, listing.files)
        ):
            scans[scan_id] = previous  # what a partial delete left: the same version
            continue
        try:
            files, read = _scan_files(storage, listing, algorithm, previous)
        except _SkipScan as skip:
            problems.append(Problem(scan_id, str(skip)))
            continue
        hashed += read
        scans[scan_id] = _describe(layout, listing, files, algorithm, previous)
    if problems:
        log.warning(
            "%s: %d scan(s) skipped this pass: %s", storage.name, len(problems), problems[0]
        )
    if isinstance(known, dict) and len(kept) == len(scans) == len(known) == len(listings):
        # The steady state of an inventory that holds every known scan: every listing kept
        # and every scan the known one, so both dicts equal the ones given. Keep those (one
        # dict over every scan, not two each; issue 15). Neither is changed after a walk.
        kept_listings: Mapping[str, ScanListing] = listings
        scans = known
    else:
        kept_listings = kept
    if steady is not None:
        steady.listings, steady.scans = kept_listings, scans
    return InventoryResult(scans, tuple(incomplete), tuple(problems), hashed)


class SteadyMemo:
    """What one walk found complete and unchanged, for the next (`walk_inventory(steady=…)`):
    the very listing of each such scan, and the scans that walk returned. A scan listed next
    time by the very same listing object, whose known scan is the very object that walk
    returned, is taken as it was. Two dicts over all scans, not a (listing, scan) tuple per
    scan (72 bytes each; issue 15's memory target). Nothing changes the returned scans dict
    after the walk (the observer copies what it adds)."""

    __slots__ = ("listings", "scans")

    def __init__(self) -> None:
        self.listings: Mapping[str, ScanListing] = {}
        self.scans: Mapping[str, Scan] = {}

    def __bool__(self) -> bool:
        return bool(self.listings)

    def clear(self) -> None:
        self.listings, self.scans = {}, {}


def _is_utf8(name: str) -> bool:
    """False for a name holding undecodable bytes (carried as surrogate escapes by os.fsdecode)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Marker:
    """A done-marker glob, matched against paths relative to the scan folder."""

    def __init__(self, pattern: str) -> None:
        self._regex = glob_to_regex(pattern)

    def found_in(self, listing: ScanListing) -> bool:
        prefix = listing.scan + "/"
        return any(
            f.path.startswith(prefix) and self._regex.match(f.path[len(prefix) :])
            for f in listing.files
        )


def _is_complete(
    listing: ScanListing, now: datetime, quiet_seconds: float, marker: _Marker | None
) -> bool:
    newest = max(f.mtime for f in listing.files)
    if now.timestamp() - newest >= quiet_seconds:
        return True
    return marker is not None and marker.found_in(listing)


def _unchanged(previous: Scan, listing: ScanListing, algorithm: str) -> bool:
    """Does the listing show exactly the files recorded last time, each still the same file
    (path, size, mtime, inode, ctime) as when it was hashed?"""
    if previous.checksum_algorithm != algorithm or len(previous.files) != len(listing.files):
        return False
    for old, new in zip(previous.files, listing.files, strict=True):
        if (
            old.ctime_ns != new.ctime_ns
            or old.inode != new.inode
            or old.inode is None
            or old.mtime != new.mtime
            or old.size != new.size
            or old.path != new.path
        ):
            return False
    return True


def _scan_files(
    storage: LocalStorage, listing: ScanListing, algorithm: str, known: Scan | None
) -> tuple[tuple[ScanFile, ...], int]:
    """The scan's files with checksums, reusing known ones; returns them and the bytes read."""
    reusable = _reusable_checksums(known, algorithm)
    files: list[ScanFile] = []
    read = 0
    for stat in listing.files:
        checksum = reusable.get(_identity(stat)) if stat.inode is not None else None
        if checksum is None:
            # Shared with the evidence that records the same value (engine.compact).
            checksum = sys.intern(_checksum(storage, listing.scan, stat, algorithm))
            read += stat.size
        files.append(
            ScanFile(stat.path, stat.size, stat.mtime, checksum, stat.inode, stat.ctime_ns)
        )
    return tuple(files), read


_FileIdentity = tuple[str, int, float, int | None, int | None]


def _identity(f: FileStat | ScanFile) -> _FileIdentity:
    return (f.path, f.size, f.mtime, f.inode, f.ctime_ns)


def _reusable_checksums(known: Scan | None, algorithm: str) -> dict[_FileIdentity, str]:
    """Checksums recorded with the file's identity; older records without one are not reused."""
    if known is None or known.checksum_algorithm != algorithm:
        return {}
    return {_identity(f): f.checksum for f in known.files if f.inode is not None}


def _checksum(storage: LocalStorage, scan: str, stat: FileStat, algorithm: str) -> str:
    """Checksum one file, and make sure it did not change while it was being read."""
    try:
        path = storage.resolve(stat.path)
        checksum = file_checksum(path, algorithm)
        after = os.stat(path)
    except FileNotFoundError:
        raise _SkipScan(
            f"scan {scan!r}: {stat.path!r} vanished before it was checksummed"
        ) from None
    except (OSError, UnsafePath) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _SkipScan(f"scan {scan!r}: cannot read {stat.path!r}: {reason}") from exc
    if (after.st_size, after.st_mtime) != (stat.size, stat.mtime) or (
        stat.inode is not None and (after.st_ino, after.st_ctime_ns) != (stat.inode, stat.ctime_ns)
    ):
        raise _SkipScan(f"scan {scan!r}: {stat.path!r} changed while it was being checksummed")
    return checksum


def _describe(
    layout: ScanLayout,
    listing: ScanListing,
    files: tuple[ScanFile, ...],
    algorithm: str,
    known: Scan | None,
) -> Scan:
    is_directory = layout.unit == "directory"
    checksum = scan_digest(algorithm, files) if is_directory else files[0].checksum
    newest = max(f.mtime for f in files)
    return Scan(
        id=listing.scan,
        files=files,
        acquired_at=datetime.fromtimestamp(newest, tz=UTC),
        checksum_algorithm=algorithm,
        checksum=checksum,
        version=_version(known, files, algorithm, checksum),
        is_directory=is_directory,
    )


def _version(known: Scan | None, files: tuple[ScanFile, ...], algorithm: str, checksum: str) -> int:
    """The known version, or the next one if the scan's content changed since it was recorded."""
    if known is None:
        return 1
    if known.checksum_algorithm == algorithm:
        unchanged = known.checksum == checksum
    else:  # the algorithm changed in the config: compare what the listing can tell
        unchanged = {(f.path, f.size, f.mtime) for f in known.files} == {
            (f.path, f.size, f.mtime) for f in files
        }
    return known.version if unchanged else known.version + 1

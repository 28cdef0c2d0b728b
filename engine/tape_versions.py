"""Versions on write-once tape: a new version is written beside the older one, never over it.

A scan whose bytes change after it was archived is a new *version* (docs/safety.md). On a disk
endpoint the new version may replace the older one (a gated *replace*); on an endpoint marked
`tape = true` nothing is ever overwritten. There, when the scan's own path holds other bytes —
a verified older version, or bytes no evidence covers — the new version is archived as a
distinct object under a **versioned name**:

    <scan path>.v<version>-<first 8 hex digits of the version's checksum>

e.g. `2026/11/s0.h5.v2-5e21d8db` for a file scan, `2026/11/scan 7.v3-0c1f2a9b/…` (the same
files below it) for a directory scan. The version number alone could name different bytes
(a store rebuilt from scratch counts again from 1); with the checksum prefix a name stands for
one version's bytes. The older version keeps the scan's own path and its own evidence.

Evidence per version: a versioned object's evidence is kept under its versioned name (the
`evidence` table's scan column holds the versioned path), with a signature over the scan's own
paths, so it is read exactly like the plain copy's (`as_scan_listing` maps the object's files
back to the scan's paths). Each pass, an endpoint's replica of a scan counts as the current
version when its versioned object is listed and verified (`upgrade`); the plain path's older
version stays recorded on the same replica (`older_version`), still protected and still a copy
other endpoints' replaces may rely on. Whatever reads the current version's copy there — the
last look before a delete, receipts, catalog locations, a restore from tape — reads it under
`name_at`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from engine.layout import ScanLayout
from engine.listing import listing_of
from engine.model import Evidence, FileStat, Level, Scan
from engine.observe import Assessed, assess
from engine.storage.base import ScanListing, Storage

log = logging.getLogger(__name__)

_MARK = ".v"


def versioned_name(scan: Scan) -> str:
    """The name the scan's current version takes on tape beside an older version."""
    return f"{scan.id}{_MARK}{scan.version}-{scan.checksum[:8]}"


def rename(path: str, scan_id: str, name: str) -> str:
    """A scan file's path with the scan's own path replaced by `name`."""
    if path == scan_id:
        return name
    if path.startswith(scan_id + "/"):
        return name + path[len(scan_id) :]
    raise ValueError(f"{path!r} does not belong to scan {scan_id!r}")


def as_scan_listing(listing: ScanListing, scan_id: str, name: str) -> ScanListing:
    """A versioned object's listing with its files under the scan's own paths."""
    if name == scan_id:
        return listing
    files = tuple(
        FileStat(rename(f.path, name, scan_id), f.size, f.mtime, f.inode, f.ctime_ns)
        for f in listing.files
    )
    return listing_of(scan_id, files)


def as_object_listing(listing: ScanListing, scan_id: str, name: str) -> ScanListing:
    """The inverse of `as_scan_listing`: the files under the object's real paths."""
    if name == scan_id:
        return listing
    files = tuple(
        FileStat(rename(f.path, scan_id, name), f.size, f.mtime, f.inode, f.ctime_ns)
        for f in listing.files
    )
    return listing_of(name, files)


def name_at(evidence: Mapping[str, Evidence], scan: Scan) -> str:
    """Where the scan's current version is kept at an endpoint with this evidence (the
    endpoint's evidence by scan key): its versioned name if a versioned object of this version
    was verified there, else the scan's own path."""
    name = versioned_name(scan)
    proof = evidence.get(name)
    if proof is not None and proof.value == scan.checksum:
        return name
    return scan.id


def evidence_of(evidence: Mapping[str, Evidence], scan: Scan) -> Evidence | None:
    """The evidence for the scan's current version at an endpoint (under its versioned name
    when there is one), else whatever is recorded for the scan's own path."""
    return evidence.get(name_at(evidence, scan))


def fresh_listing(
    storage: Storage, layout: ScanLayout, scan: Scan, name: str
) -> ScanListing | None:
    """A fresh listing of the scan's copy kept as `name`, under the scan's own paths.

    A versioned name need not match the inventory's include patterns (`s0.h5.v2-…` is no
    `*.h5`): it is listed with the same unit and depth but no filter, since bl931 wrote exactly
    the version's files there."""
    if name != scan.id:
        layout = ScanLayout(unit=layout.unit, depth=layout.depth, include=("**/*",), exclude=())
    listing = storage.stat_scan(layout, name)
    return None if listing is None else as_scan_listing(listing, scan.id, name)


def checksums(
    storage: Storage, listing: ScanListing, scan: Scan, name: str, algorithm: str
) -> dict[str, str] | None:
    """`Storage.checksum_files` for a copy kept as `name`, keyed by the scan's own paths."""
    sums = storage.checksum_files(as_object_listing(listing, scan.id, name), algorithm)
    if sums is None or name == scan.id:
        return sums
    return {rename(path, name, scan.id): value for path, value in sums.items()}


def upgrade(
    endpoint: str,
    storage: Storage,
    layout: ScanLayout,
    scans: Mapping[str, Scan],
    assessed: dict[str, Assessed],
    evidence: Mapping[str, Evidence],
) -> None:
    """Count a scan's versioned object at a tape endpoint as the copy of its current version.

    For each versioned object with evidence here (a few: scans changed after they were
    archived), the object is listed afresh and assessed like a plain copy; if it verifies, it
    becomes the scan's replica here, keeping what the scan's own path holds (`older_version`,
    `older_unproven`, `differs`). A listing that fails leaves the replica as it was (the plain
    path's verdict: the current version is then not counted here this pass).
    """
    for key, proof in evidence.items():
        base, mark, _ = key.rpartition(_MARK)
        scan = scans.get(base) if mark else None
        if scan is None or versioned_name(scan) != key or proof.value != scan.checksum:
            continue
        try:
            listing = fresh_listing(storage, layout, scan, key)
        except Exception as exc:
            log.warning("%s: cannot list the versioned object %r: %s", endpoint, key, exc)
            continue
        if listing is None:
            continue
        verdict = assess(scan, endpoint, listing, proof, is_inventory=False)
        if verdict.replica.level < Level.CHECKSUM:
            continue
        plain = assessed.get(scan.id)
        replica = verdict.replica.but(
            note=f"kept as {key}",
            name=key,
            older_version=plain.replica.older_version if plain else None,
            older_unproven=plain.replica.older_unproven if plain else False,
            differs=plain.replica.differs if plain else False,
        )
        assessed[scan.id] = Assessed.of(replica, verdict.signature)

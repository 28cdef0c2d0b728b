"""Listed but unverified copies, settled by their bytes where the endpoint can hash them.

A copy whose files are all listed with the right sizes but carry no valid evidence (its task's
outcome was lost in a crash, its mtime was touched, a person copied it by hand) is either the
scan's very bytes or something else: an older version whose evidence was lost, rot, a user's
file. So is a copy verified on storage the endpoint no longer points to (a migration). Where
the endpoint can compute checksums (a local root, or a Globus collection mounted here), the
observation re-hashes it once per listing and storage: identical bytes become `checksum`
evidence (`how = "rehash"`), so nothing is copied again and no person is asked; other bytes
mark the replica `differs`, so that a copy over them is planned as a replace (gated like a
delete), never as a plain copy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from engine.model import Evidence, Level, Scan
from engine.observe import Assessed, size_level
from engine.storage.base import ScanListing, Storage

log = logging.getLogger(__name__)

# endpoint, its storage identity, scan, listing signature, scan checksum
_Key = tuple[str, str | None, str, str, str]


class Rehasher:
    """Remembers each verdict per listing, so a replica that stays as it is is hashed once."""

    def __init__(self) -> None:
        self._verdicts: dict[_Key, bool] = {}  # True: identical bytes, False: other bytes

    def settle(
        self,
        endpoint: str,
        storage: Storage,
        scans: Mapping[str, Scan],
        listings: Mapping[str, ScanListing],
        assessed: dict[str, Assessed],
        now: datetime,
        identity: str | None = None,
    ) -> dict[str, Evidence]:
        """Re-hash the listed, unverified replicas in `assessed` (updated in place).

        `identity` is the endpoint's storage identity: a verdict is remembered per storage, so
        the same listing on other storage (a remount on another device) is hashed again.

        Returns:
            The new evidence for replicas found identical (the caller stores it when it writes).
        """
        found: dict[str, Evidence] = {}
        for scan_id, verdict in list(assessed.items()):
            replica = verdict.replica
            if replica.level not in (Level.SIZE, Level.PRESENT) or replica.older_version:
                continue
            scan, listing = scans.get(scan_id), listings.get(scan_id)
            if scan is None or listing is None:
                continue
            key = (endpoint, identity, scan_id, verdict.signature, scan.checksum)
            same = self._verdicts.get(key)
            if same is None:
                same = self._same_bytes(storage, scan, listing)
                if same is None:
                    continue  # this endpoint cannot hash, or the files moved meanwhile
                self._verdicts[key] = same
            if not same:
                # Made elsewhere: never reused by the assessment cache (it holds this dict).
                assessed[scan_id] = Assessed.of(replica.but(differs=True), verdict.signature)
            elif replica.level is Level.SIZE or (
                # verified on other storage, or found without any evidence: `present` here
                # until its bytes are re-hashed
                (replica.storage_changed is not None or replica.found_unverified)
                and size_level(scan, listing) is Level.SIZE
            ):
                evidence = Evidence(
                    Level.CHECKSUM,
                    scan.checksum_algorithm,
                    scan.checksum,
                    None,
                    now,
                    verdict.signature,
                    how="rehash",
                )
                found[scan_id] = evidence
                assessed[scan_id] = Assessed.of(
                    replica.but(
                        level=Level.CHECKSUM,
                        evidence=evidence,
                        note="",
                        storage_changed=None,
                        found_unverified=False,
                    ),
                    verdict.signature,
                )
        return found

    @staticmethod
    def _same_bytes(storage: Storage, scan: Scan, listing: ScanListing) -> bool | None:
        """Whether every listed file of the scan holds its acquisition bytes (None: unknown)."""
        try:
            sums = storage.checksum_files(listing, scan.checksum_algorithm)
        except Exception as exc:  # a failed re-hash proves nothing either way
            log.warning("%s: re-hashing %r failed: %s", storage.name, scan.id, exc)
            return None
        if sums is None:
            return None
        listed = {f.path for f in listing.files}
        own = [f for f in scan.files if f.path in listed]
        if any(f.path not in sums for f in own):
            return None
        return all(sums[f.path] == f.checksum for f in own)

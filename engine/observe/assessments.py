"""Last pass's verdicts, reused while their inputs are the very same.

In a steady state most replicas are listed exactly as before, with the same scan and evidence
objects (the store and the observer keep those across passes until they change): assessing
them again would give the same verdict, so it is reused.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.model import Evidence, Scan
from engine.observe.assess import Assessed, assess
from engine.storage.base import ScanListing


class AssessmentCache:
    def __init__(self) -> None:
        # endpoint → scan → verdict of the previous pass, carrying what it was made from
        # (listed files, scan, evidence key): reused while those are the same.
        self._previous: dict[str, dict[str, Assessed]] = {}

    def assess(
        self,
        name: str,
        scans: Mapping[str, Scan],
        listing: Mapping[str, ScanListing],
        evidence: Mapping[str, Evidence],
        elsewhere: Mapping[str, Evidence],
        *,
        is_inventory: bool,
    ) -> dict[str, Assessed]:
        """The verdict of every known scan listed at one endpoint (unknown extra paths are
        ignored), reusing last pass's verdict for every replica whose inputs are the very same
        (equal listing, identical scan and evidence objects). `elsewhere` is evidence taken on
        other storage than the endpoint's current one.
        """
        previous = self._previous.get(name, {})
        current: dict[str, Assessed] = {}
        for scan_id, listed in listing.items():
            scan = scans.get(scan_id)
            if scan is None:
                continue
            proof = evidence.get(scan_id)
            moved = elsewhere.get(scan_id) if proof is None else None
            # Evidence from other storage is never reused: the same object may have counted
            # here last pass (a remounted local root is another device).
            key: object = proof if moved is None else (moved,)
            verdict = previous.get(scan_id)
            if (
                verdict is None
                or not verdict.made_from_same(scan, key)
                or (verdict.listing is not listed and verdict.listing != listed)
            ):
                verdict = assess(
                    scan, name, listed, proof, is_inventory=is_inventory, elsewhere=moved
                )
                verdict.remember(listed, scan, key)
            current[scan_id] = verdict
        # Handed to the caller uncopied (one dict per endpoint, not two: ~5 MB each at 100k
        # scans). The caller may change it (tape versions, re-hashed copies, carried verdicts of
        # a sliced endpoint): an entry it replaces carries no `files` and is assessed afresh
        # next pass; an entry it carries over is one this cache made from the same inputs.
        self._previous[name] = current
        return current

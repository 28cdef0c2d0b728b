"""Last pass's verdicts, reused while their inputs are the very same.

In a steady state most replicas are listed exactly as before, with the same scan and evidence
objects (the store and the observer keep those across passes until they change): assessing
them again would give the same verdict, so it is reused.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.model import Evidence, FileStat, Scan
from engine.observe.assess import Assessed, assess
from engine.storage.base import ScanListing

# (listed files, scan, evidence key, verdict): reused while the first three are the same.
_Assessment = tuple[tuple[FileStat, ...], Scan, object, Assessed]


class AssessmentCache:
    def __init__(self) -> None:
        # endpoint → scan → (listed files, scan, evidence key, verdict) of the previous pass.
        self._previous: dict[str, dict[str, _Assessment]] = {}

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
        current: dict[str, _Assessment] = {}
        out: dict[str, Assessed] = {}
        for scan_id, listed in listing.items():
            scan = scans.get(scan_id)
            if scan is None:
                continue
            proof = evidence.get(scan_id)
            moved = elsewhere.get(scan_id) if proof is None else None
            # Evidence from other storage is never reused: the same object may have counted
            # here last pass (a remounted local root is another device).
            key: object = proof if moved is None else (moved,)
            before = previous.get(scan_id)
            if (
                before is not None
                and before[1] is scan
                and before[2] is key
                and before[0] == listed.files
            ):
                verdict = before[3]
            else:
                verdict = assess(
                    scan, name, listed, proof, is_inventory=is_inventory, elsewhere=moved
                )
            current[scan_id] = (listed.files, scan, key, verdict)
            out[scan_id] = verdict
        self._previous[name] = current
        return out

"""Turn endpoint listings and stored evidence into this pass's replica levels.

Listings say what is there (paths, sizes, mtimes); evidence says why a replica was once believed
to hold the acquisition's bytes. Evidence counts only while the replica's listing still has the
fingerprint it had when the evidence was taken, only for the scan's current checksum, and only
on the storage it was taken on: a rewritten scan (new version) or a touched copy drops back to
`size` or `present`; a copy verified on storage the endpoint no longer points to (a migration)
drops to `present` (`engine.evidence_identity`).
"""

from __future__ import annotations

from typing import Any

from engine.model import Evidence, Level, Replica, Scan
from engine.storage.base import ScanListing, listing_signature


class Assessed(Replica):
    """A replica as an assessment made it: the replica itself (equal to the plain `Replica`
    with the same fields), the signature of its listing, and what the verdict was made from,
    kept by `AssessmentCache` to reuse it next pass (`remember`): the listing (not its `files`,
    a fresh tuple per read of a one-file listing), the scan (`made_for`) and the evidence key.
    A verdict made elsewhere, or changed (`dataclasses.replace`, `but`), carries none of them
    and is never reused. One object per replica, not a verdict wrapping a replica: 40 bytes
    less per replica (issue 15's memory target).
    """

    __slots__ = ("listing", "made_from", "signature")
    signature: str
    listing: ScanListing | None
    # The scan it was made for, and the evidence key when that is not the replica's own
    # evidence (a `(scan, key)` pair then): one slot for both, the pair only in rare cases.
    made_from: Scan | tuple[Scan, object] | None

    def __init__(self, *args: Any, signature: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        setter = object.__setattr__
        setter(self, "signature", signature)
        setter(self, "listing", None)
        setter(self, "made_from", None)

    @classmethod
    def of(cls, replica: Replica, signature: str) -> Assessed:
        """A verdict of `replica` made elsewhere than by `assess` (never reused)."""
        return cls(
            replica.scan,
            replica.endpoint,
            replica.level,
            replica.size,
            replica.files,
            replica.evidence,
            details=replica.details,
            signature=signature,
        )

    @property
    def replica(self) -> Replica:
        return self

    def remember(self, listing: ScanListing, made_for: Scan, key: object) -> None:
        """Keep what this verdict was made from. Only on a verdict just made, before anyone
        else holds it (`AssessmentCache`)."""
        setter = object.__setattr__
        setter(self, "listing", listing)
        setter(self, "made_from", made_for if key is self.evidence else (made_for, key))

    def made_from_same(self, scan: Scan, key: object) -> bool:
        """Whether it was made for this very scan object with this very evidence key."""
        made = self.made_from
        if type(made) is tuple:
            return made[0] is scan and made[1] is key
        return made is scan and key is self.evidence

    @property
    def made_for(self) -> Scan | None:
        made = self.made_from
        return made[0] if type(made) is tuple else made  # type: ignore[return-value]

    @property
    def key(self) -> object:
        made = self.made_from
        if type(made) is tuple:
            return made[1]
        return None if made is None else self.evidence


def size_level(scan: Scan, listing: ScanListing) -> Level:
    """SIZE if every file of the scan is listed with the inventory's size, else PRESENT."""
    listed = {f.path: f.size for f in listing.files}
    for f in scan.files:
        if listed.get(f.path) != f.size:
            return Level.PRESENT
    return Level.SIZE


def inventory_signature(scan: Scan) -> str:
    return listing_signature(scan.files)


def assess(
    scan: Scan,
    endpoint: str,
    listing: ScanListing,
    evidence: Evidence | None,
    *,
    is_inventory: bool,
    elsewhere: Evidence | None = None,
) -> Assessed:
    """The verification level of one listed replica.

    The fingerprint covers the scan's own files only, so stray extra files in a copied scan
    folder (an older version's leftovers) neither verify nor unverify it.

    `elsewhere` is evidence for this copy taken on other storage than the endpoint's current
    one (`evidence` is then None): it proves nothing about these bytes, so the copy is
    `present` at best; if it was of an older version, the copy may still hold that version
    (protected, never relied on).
    """
    if elsewhere is not None and evidence is None and not is_inventory:
        return _moved(scan, endpoint, listing, elsewhere)
    if len(listing.files) == len(scan.files):
        signature = listing.signature
    else:
        own = {f.path for f in scan.files}
        signature = listing_signature([f for f in listing.files if f.path in own])
    level = size_level(scan, listing)
    used: Evidence | None = None
    note = ""
    older: str | None = None
    unproven = False
    if (
        not is_inventory
        and evidence is not None
        and evidence.level >= Level.CHECKSUM
        and evidence.value is not None
        and evidence.value != scan.checksum
    ):
        if evidence.signature in (signature, listing.signature):
            # The copy still has exactly the listing it had when an older version was verified
            # into it: it holds that version's bytes, which only a gated replace may overwrite.
            older = evidence.value
        else:
            # The listing changed since, yet the copy may still hold that version: the older
            # version's own files are not known here, and the folder may hold an even older
            # version's leftovers (a replace removes nothing) beside or in place of the new
            # version's names. Unknown is not absent: protected like a copy that holds it (a
            # replace needs the older version verified elsewhere), but never relied on.
            older, unproven = evidence.value, True
    if level is Level.SIZE:
        if is_inventory:
            expected = inventory_signature(scan)
            if signature == expected:
                level = Level.CHECKSUM
            else:
                note = "changed since it was inventoried"
        elif evidence is not None and evidence.level >= Level.CHECKSUM:
            if evidence.value != scan.checksum:
                note = "verified for an older version of the scan"
            elif evidence.signature != signature:
                note = "changed since it was verified"
            else:
                level = Level.CHECKSUM
                used = evidence
    elif level is Level.PRESENT:
        note = "incomplete or different size"
    found = level is Level.SIZE and not is_inventory and evidence is None
    if found:
        # Sizes prove nothing about bytes nobody verified: onboarding must not let a copy a
        # person made license a delete (`verify = "size"` trusts bl931's own transfers only).
        level = Level.PRESENT
        note = "found with the right sizes, never verified by bl931"
    return Assessed(
        scan.id,
        endpoint,
        level,
        listing.size,
        len(listing.files),
        used,
        note=note,
        older_version=older,
        older_unproven=unproven,
        found_unverified=found,
        signature=signature,
    )


def _moved(scan: Scan, endpoint: str, listing: ScanListing, elsewhere: Evidence) -> Assessed:
    """A copy whose only evidence was taken on the storage the endpoint pointed to before."""
    verdict = assess(scan, endpoint, listing, None, is_inventory=False)
    older, unproven = verdict.replica.older_version, verdict.replica.older_unproven
    if (
        elsewhere.level >= Level.CHECKSUM
        and elsewhere.value is not None
        and elsewhere.value != scan.checksum
    ):
        older, unproven = elsewhere.value, True
    replica = verdict.replica.but(
        level=min(verdict.replica.level, Level.PRESENT),
        note=f"verified on other storage ({elsewhere.identity or 'unrecorded'}); not re-verified",
        older_version=older,
        older_unproven=unproven,
        storage_changed=elsewhere.identity or "unrecorded",
    )
    return Assessed.of(replica, verdict.signature)

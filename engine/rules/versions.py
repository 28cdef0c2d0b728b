"""Versions: a scan rewritten after it was copied, and what its copies there may do.

Some endpoint may still hold a verified *older* version of a scan, or other bytes at its path
than any version known. The copy rules read these facts (`Case.older`, `Case.differs`,
`Case.suspect`): a new version is copied over an older one only if that older version is
verified elsewhere too (a *replace*, gated like a delete); on write-once tape it is archived
beside it under a versioned name; a version that shrank to nothing, or reappeared with other
bytes after a prune, waits for a person (a `version_suspect` alert).
"""

from __future__ import annotations

from engine.model import ActionKind, Alert, AlertEffect, ClearedBy, Replica, Scan
from engine.rules.facts import ActionPlan, PassFacts

EMPTIED = "emptied"
REAPPEARED = "reappeared"


def emptied(scan: Scan) -> bool:
    """A later version of a scan that has no bytes (it shrank to zero since it was first seen)."""
    return scan.version > 1 and scan.size == 0


def version_facts(facts: PassFacts, scan: Scan, reappeared: frozenset[str]) -> tuple[object, ...]:
    """The version facts of a scan some endpoint holds an older verified version of, or other
    bytes than this version (`ScanFacts.versions`)."""
    holders: dict[str, Replica] = {
        name: found[scan.id]
        for name, found in facts.older.items()
        if scan.id in found and found[scan.id].older_version is not None
    }
    differ = {
        name
        for name, found in facts.older.items()
        if scan.id in found and found[scan.id].older_version is None
    }
    statuses = tuple(
        "differs"
        if name in differ
        else None
        if (replica := holders.get(name)) is None
        else any(
            other.older_version == replica.older_version and not other.older_unproven
            for other_name, other in holders.items()
            if other_name != name
        )
        for name in facts.replicas
    )
    suspect: str | None = None
    if emptied(scan):
        suspect = EMPTIED
    elif scan.id in reappeared:
        suspect = REAPPEARED
    return (statuses, suspect)


def replaced(facts: PassFacts, action: ActionPlan, scan_id: str) -> str | None:
    """What a copy replaces at its target: the older version's checksum, "unverified" for
    listed bytes not known to be any version, or None for a copy into nothing."""
    if not action.replaces or action.target is None:
        return None
    older = facts.older.get(action.target, {}).get(scan_id)
    return (older.older_version if older is not None else None) or "unverified"


def source_name(facts: PassFacts, action: ActionPlan, scan_id: str) -> str | None:
    """Where a copy reads the scan at its source, when not at the scan's own path (a
    versioned object on tape, e.g. a restore)."""
    if action.kind is not ActionKind.COPY or action.source is None:
        return None
    replicas = facts.replicas.get(action.source)
    replica = replicas.get(scan_id) if replicas else None
    return replica.name if replica is not None else None


def suspect_alert(inventory_endpoint: str, scan: Scan, why: str) -> Alert:
    """The `version_suspect` alert for a new version that waits for a person."""
    if why == EMPTIED:
        text = (
            f"scan {scan.id!r} shrank to 0 bytes at {inventory_endpoint} while a "
            "verified older version holds data: nothing is copied over it until an operator "
            "approves"
        )
    else:
        text = (
            f"scan {scan.id!r} was pruned from {inventory_endpoint} and reappeared "
            "with other bytes: nothing is copied over the older version until an operator "
            "approves"
        )
    return Alert(
        "version_suspect",
        AlertEffect.NOTIFY,
        text,
        scan=scan.id,
        cleared_by=ClearedBy.CONDITION_OR_ACKNOWLEDGEMENT,
    )

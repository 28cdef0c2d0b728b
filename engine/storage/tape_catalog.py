"""A scan's copy on a tape endpoint as the catalog (bundle path + member) and a delete's
receipt (bundle, members, job, CRC verification) record it."""

from __future__ import annotations

from typing import Any

from engine.store import tape as tape_store
from engine.store.connection import StoreBase


def tape_location(store: StoreBase, endpoint: str, scan: str) -> str:
    """`<bundle>#<member>` for the newest verified bundle holding the scan (several members of
    a directory scan: the scan's own path after `#`); a member sent by `hsi cput` is its own
    HPSS file."""
    entries = tape_store.held_scans(store, endpoint).get(scan)
    if not entries:
        return f"{endpoint}:{scan}"
    bundle, _checksum, detail = entries[-1]
    files = detail.get("files", [])
    if files and all(f["via"] == "cput" for f in files) and len(files) == 1:
        return str(files[0]["hpss_path"])
    return f"{bundle.bundle}#{scan}"


def tape_receipt(store: StoreBase, endpoint: str, scan: str) -> dict[str, Any] | None:
    """What a delete receipt says of a tape copy (the newest verified bundle holding `scan`,
    kept under that name): bundle, the scan's members, the job that wrote and verified it, the
    CRC verification, `hsi cput` members and, for a legacy per-file object, where it came from."""
    entries = tape_store.held_scans(store, endpoint).get(scan)
    if not entries:
        return None
    bundle, _checksum, detail = entries[-1]
    files = detail.get("files", [])
    return {
        "bundle": bundle.bundle,
        "members": [f["listed_as"] for f in files],
        "job_id": detail.get("job_id"),
        "crc": detail.get("crc"),
        "cput": list(detail.get("cput", [])),
        "verified_at": detail.get("verified_at"),
        **({"legacy_from": detail["legacy_from"]} if detail.get("legacy_from") else {}),
    }

"""A scan's location on a tape endpoint as the catalog records it: bundle path + member."""

from __future__ import annotations

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

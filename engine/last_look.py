"""The last look's checks on the copy a delete removes, right before the delete is submitted.

The executor's re-check proves, on fresh listings, that every copy a delete relies on is still
there and still verified. Two things a listing cannot show are checked here, on the files
themselves, wherever the endpoints have a local view (`local` endpoints and Globus endpoints with
a local `path`):

- *Each copy relied on is a different file from the one deleted.* If two endpoints are secretly
  one storage (a bind mount, a hard-linked "copy", a root nested in another), the copy "verified"
  the bytes against themselves, and deleting one deletes both. Files are compared by
  (device, inode): the same pair is the same file, whatever path reaches it.
- *The copy deleted still holds the bytes its copies were verified against.* Evidence for the
  copies is about the acquisition checksums; if the bytes about to be deleted are not those
  (rewritten with size and mtime put back, or rotted), then they exist nowhere else. The copy is
  re-hashed and every file must match its acquisition checksum.

A file of the scan that is already gone from the target is not a reason to refuse: there is
nothing of it left to lose. Anything that cannot be checked refuses the delete. On a Globus
endpoint mounted here, "gone" is what Globus lists, not what the mount shows: its copy is listed
through Globus and read through the mount (`check_mounted_target`), and a mount that does not
show the listed files refuses.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.errors import Bl931Error, UnsafePath
from engine.inventory.checksum import checksums_equal, file_checksum
from engine.layout import ScanLayout
from engine.listing import listing_of
from engine.model import Scan
from engine.storage.base import Storage
from engine.storage.localfs import safe_path

SAME_STORAGE = "same_storage"
CHANGED_SINCE_INVENTORY = "changed_since_inventory"
UNCHECKABLE = "endpoint_unknown"

FileId = tuple[int, int]  # (st_dev, st_ino)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the last look refuses a delete: a stable reason code and a sentence for people."""

    code: str
    message: str

    @property
    def needs_human(self) -> bool:
        """Found, not merely uncheckable: held for a person rather than tried again."""
        return self.code in (SAME_STORAGE, CHANGED_SINCE_INVENTORY)


class _Uncheckable(Exception):
    """A file exists but could not be examined; the message says which and why."""


def check_distinct_copies(
    scan: Scan,
    target: str,
    required: Collection[str],
    local_roots: Mapping[str, Path],
) -> Refusal | None:
    """Refuse if any file of a required copy is the very file (device, inode) to be deleted.

    Args:
        scan: the scan whose delete is checked (its files are the manifest that is deleted).
        target: the endpoint the scan is deleted from.
        required: the endpoints whose copies the delete relies on.
        local_roots: endpoint → local root, for endpoints this machine can see.

    Returns:
        None if every copy that can be examined here is a different file; else the refusal.
    """
    target_root = local_roots.get(target)
    if target_root is None:
        return None  # no local view of the target: the config check covers remote roots
    try:
        doomed = _file_ids(target_root, scan)
        if not doomed:
            return None
        for name in required:
            root = local_roots.get(name)
            if root is None:
                continue
            shared = doomed.keys() & _file_ids(root, scan).keys()
            if shared:
                device, inode = first = min(shared)
                return Refusal(
                    SAME_STORAGE,
                    f"the {name} copy of {doomed[first]!r} is the same file as the one at {target} "
                    f"(device {device}, inode {inode}): {name} and {target} "
                    "are the same storage here (bind mount, hard link or nested root), so "
                    "deleting it would delete the copy too",
                )
    except _Uncheckable as exc:
        return Refusal(UNCHECKABLE, str(exc))
    return None


def check_target_unchanged(
    scan: Scan, target: str, local_roots: Mapping[str, Path]
) -> Refusal | None:
    """Re-hash the copy about to be deleted; refuse unless every file matches the acquisition.

    Args:
        scan: the scan as inventoried (its files carry the acquisition checksums the copies it
            relies on were verified against).
        target: the endpoint the scan is deleted from.
        local_roots: endpoint → local root, for endpoints this machine can see.

    Returns:
        None if the target's bytes are the acquisition's (or the target has no local view);
        else the refusal.
    """
    root = local_roots.get(target)
    if root is None:
        return None  # e.g. a Globus-only endpoint: evidence there comes from verified transfers
    changed: list[str] = []
    for f in scan.files:
        try:
            digest = file_checksum(safe_path(root, f.path), scan.checksum_algorithm)
        except FileNotFoundError:
            continue
        except (OSError, UnsafePath, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return Refusal(UNCHECKABLE, f"cannot re-hash {f.path!r} at {target}: {reason}")
        if not checksums_equal(digest, f.checksum):
            changed.append(f.path)
    return _changed(scan, target, changed)


def check_mounted_target(
    scan: Scan, target: str, storage: Storage, layout: ScanLayout
) -> Refusal | None:
    """`check_target_unchanged` for a Globus endpoint mounted here: the copy is listed afresh
    through Globus and re-hashed through the mount (`Storage.checksum_files`), which refuses a
    mount that does not show the files Globus lists (unmounted, another filesystem).

    Returns:
        None if every file still there holds the acquisition's bytes (or the endpoint has no
        mount after all); else the refusal.
    """
    try:
        listing = storage.stat_scan(layout, scan.id)
        if listing is None:
            return None  # nothing of it left there
        manifest = {f.path for f in scan.files}
        own = listing_of(scan.id, tuple(f for f in listing.files if f.path in manifest))
        sums = storage.checksum_files(own, scan.checksum_algorithm)
    except (Bl931Error, OSError) as exc:
        return Refusal(UNCHECKABLE, f"cannot re-hash the {target} copy: {exc}")
    if sums is None:
        return None
    changed = [
        f.path
        for f in scan.files
        if f.path in sums and not checksums_equal(sums[f.path], f.checksum)
    ]
    return _changed(scan, target, changed)


def _changed(scan: Scan, target: str, changed: list[str]) -> Refusal | None:
    if not changed:
        return None
    return Refusal(
        CHANGED_SINCE_INVENTORY,
        f"the {target} copy no longer holds the bytes its copies were verified against "
        f"({len(changed)} of {scan.file_count} files differ from the acquisition "
        f"{scan.checksum_algorithm}, e.g. {changed[0]!r}); these bytes may exist nowhere else",
    )


def _file_ids(root: Path, scan: Scan) -> dict[FileId, str]:
    """(device, inode) → relative path of each of the scan's files present below `root`."""
    ids: dict[FileId, str] = {}
    for f in scan.files:
        try:
            st = os.lstat(safe_path(root, f.path))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except (OSError, UnsafePath) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise _Uncheckable(f"cannot examine {f.path!r} below {root}: {reason}") from exc
        ids[(st.st_dev, st.st_ino)] = f.path
    return ids

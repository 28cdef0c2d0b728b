"""Per-folder listing reuse for local endpoints.

A folder's mtime and ctime change whenever an entry is added, removed or renamed in it, so a
folder whose stat is unchanged still holds the same names. It does *not* change when a file in
it is rewritten in place or appended to; therefore:

- a folder is reused only if, when it was read, its own mtime and every file's mtime were
  already `settle_seconds` in the past (a file still being written keeps its folder re-read
  every pass; a change in the same timestamp tick as the read cannot hide);
- the periodic full walk (`IncrementalView`) re-reads every folder and file;
- nothing here is used by the last look before a delete, which stats and re-hashes afresh.

The listing produced is the one `LocalStorage.list_scans` produces (same files, same
grouping, same `EndpointUnavailable` on an unmounted root); reused folders hand back the very
same `ScanListing` objects, which later stages compare by identity first.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.clock import filesystem_now
from engine.errors import EndpointUnavailable
from engine.incremental.folder_listings import FolderListings, scan_of
from engine.layout import ScanLayout
from engine.listing import listing_of
from engine.model import FileStat
from engine.storage.base import ScanListing

if TYPE_CHECKING:
    from engine.storage.local import LocalStorage

log = logging.getLogger(__name__)

# A folder or file touched less than this long before it was read is read again next pass.
SETTLE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class _Folder:
    stamp: tuple[int, int, int, int] | None  # None: never reused (it was still settling)
    files: tuple[FileStat, ...]
    subdirs: tuple[str, ...]
    # One-file scans in this folder (unit "file"), sorted by scan id: a tuple, not a dict (8
    # bytes a scan, not ~40); the endpoint's listing is a view over them (`FolderListings`).
    scans: tuple[ScanListing, ...] | None


@dataclass(frozen=True, slots=True)
class ListingChanges:
    """How an endpoint's listing differs from the one before (`DirectoryCache.changes`)."""

    listed: dict[str, ScanListing]  # every scan of the folders read again, as listed now
    gone: frozenset[str]  # scans listed before that are listed no more
    # The whole listing, when the changes could not be told apart from it (unit "directory"):
    # `gone` is then not filled in; the caller compares the listings.
    everything: Mapping[str, ScanListing] | None = None


class DirectoryCache:
    """What each folder of one local tree held when last read, keyed by its relative path."""

    def __init__(self, settle_seconds: float = SETTLE_SECONDS) -> None:
        self.settle_seconds = settle_seconds
        self._folders: dict[str, _Folder] = {}
        # What `clear` dropped: never reused as a folder, only as a template whose listings a
        # re-read folder hands back when a file's stat is equal (see `_read`).
        self._templates: dict[str, _Folder] = {}
        self.read = 0  # folders read (scandir + stat of every file) by the last listing
        self.reused = 0  # folders reused by the last listing
        # Scan ids listed from folders the last listing read (not reused): the only entries
        # that may differ from the listing before it (a delta pass, engine/incremental/delta).
        self.fresh: set[str] = set()

    def clear(self) -> None:
        """Read every folder again at the next listing (the periodic full walk)."""
        if self._folders:
            self._templates = self._folders
        self._folders = {}

    def list_scans(self, storage: LocalStorage, layout: ScanLayout) -> Mapping[str, ScanListing]:
        """`storage.list_scans(layout)`, reading only folders whose stat changed. One-file
        scans are listed as a view over the folders (`FolderListings`), not a dict."""
        seen, _before = self._walk(storage, layout)
        if layout.unit == "file":
            return FolderListings(seen)
        out: dict[str, ScanListing] = {}
        grouped: dict[str, list[FileStat]] = {}
        for folder in seen.values():
            if folder.scans is not None:
                out.update([(listing.scan, listing) for listing in folder.scans])
            else:
                for file in folder.files:
                    scan = layout.scan_of(file.path, folders_checked=True)
                    if scan is not None:
                        grouped.setdefault(scan, []).append(file)
        for scan, files in grouped.items():
            if len(files) > 1:
                files.sort(key=lambda f: f.path)
            out[scan] = listing_of(scan, tuple(files))
        return out

    def changes(self, storage: LocalStorage, layout: ScanLayout) -> ListingChanges | None:
        """What `list_scans` would list differently from the listing before it, at the cost of
        the folders read (a delta pass, engine/incremental/delta.py): the scans of every folder
        read again (`listed`) and the scans no longer listed (`gone`). None for scans that are
        folders (unit "directory": a scan's files may span folders read and reused), the whole
        listing is built as `list_scans` builds it and handed back in `everything` (the caller
        compares it whole). None when there was no listing before."""
        if not self._folders:
            return None
        if layout.unit != "file":
            everything = self.list_scans(storage, layout)
            return ListingChanges(
                {s: everything[s] for s in self.fresh if s in everything}, frozenset(), everything
            )
        seen, before = self._walk(storage, layout)
        listed: dict[str, ScanListing] = {}
        was: set[str] = set()
        for reldir, old in before.items():
            if seen.get(reldir) is not old and old.scans is not None:
                was.update(listing.scan for listing in old.scans)
        for reldir, folder in seen.items():
            if before.get(reldir) is not folder and folder.scans is not None:
                listed.update((listing.scan, listing) for listing in folder.scans)
        return ListingChanges(listed, frozenset(was.difference(listed)))

    def _walk(
        self, storage: LocalStorage, layout: ScanLayout
    ) -> tuple[dict[str, _Folder], dict[str, _Folder]]:
        """Stat every folder, read those whose stat changed; (the folders now, before)."""
        storage._check_root()
        root = os.fspath(storage.root)
        now = filesystem_now()
        seen: dict[str, _Folder] = {}
        escaping: list[str] = []
        self.read = self.reused = 0
        self.fresh = set()
        pending = [""]
        while pending:
            reldir = pending.pop()
            stamp = self._stamp(storage, root, reldir)
            if stamp is None:
                continue  # removed while we walk (the root was checked: not an unmount)
            folder = self._folders.get(reldir)
            if folder is None or folder.stamp is None or folder.stamp != stamp:
                last = folder if folder is not None else self._templates.get(reldir)
                folder = self._read(storage, layout, reldir, stamp, now, escaping, last)
                self.read += 1
                self._note_fresh(layout, folder)
            else:
                self.reused += 1
            seen[reldir] = folder
            pending.extend(folder.subdirs)
        before, self._folders = self._folders, seen
        self._templates = {}
        if escaping:
            log.warning(
                "%s: left out %d symlink(s) pointing outside the root, e.g. %r",
                storage.name,
                len(escaping),
                escaping[0],
            )
        return seen, before

    def _note_fresh(self, layout: ScanLayout, folder: _Folder) -> None:
        if folder.scans is not None:
            self.fresh.update(listing.scan for listing in folder.scans)
        for file in folder.files:
            scan = layout.scan_of(file.path, folders_checked=True)
            if scan is not None:
                self.fresh.add(scan)

    def unchanged(self, storage: LocalStorage) -> bool:
        """Whether every folder the last listing read still has the stat it had then, and had
        settled (a quiet pass, `engine.incremental.quiet`). Stats folders only: a file
        rewritten in place is not seen here (the full walk and the last look see it)."""
        if not self._folders:
            return False
        root = os.fspath(storage.root)
        try:
            for reldir, folder in self._folders.items():
                if folder.stamp is None or self._stamp(storage, root, reldir) != folder.stamp:
                    return False
        except EndpointUnavailable:
            return False
        return True

    def _stamp(
        self, storage: LocalStorage, root: str, reldir: str
    ) -> tuple[int, int, int, int] | None:
        path = os.path.join(root, reldir) if reldir else root
        try:
            st = os.lstat(path) if reldir else os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            if reldir:
                storage._check_root()
                return None
            raise EndpointUnavailable(
                storage.name, f"root {storage.root} is missing (unmounted?)"
            ) from None
        except OSError as exc:
            raise EndpointUnavailable(
                storage.name, f"cannot stat {reldir!r}: {exc.strerror or exc}"
            ) from exc
        if not stat.S_ISDIR(st.st_mode):
            return None  # replaced by a file or symlink since its parent was read
        return (st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)

    def _read(
        self,
        storage: LocalStorage,
        layout: ScanLayout,
        reldir: str,
        stamp: tuple[int, int, int, int],
        now: float,
        escaping: list[str],
        before: _Folder | None = None,
    ) -> _Folder:
        """One folder read the way `LocalStorage._iter_files` reads it.

        A one-file scan whose file has the very stat it had when `before` (this folder's last
        read) was made gets `before`'s `ScanListing` back, equal in every field: the periodic
        full walk and a folder read again for one new scan then leave one listing object per
        replica, not a second generation held by whatever kept the first (the verdicts)."""
        prefix = f"{reldir}/" if reldir else ""
        files: list[FileStat] = []
        subdirs: list[str] = []
        settled = now - stamp[0] / 1e9 >= self.settle_seconds
        for entry in storage._entries(reldir):
            relpath = sys.intern(prefix + entry.name)  # a one-file scan's id: shared with it
            if entry.is_file(follow_symlinks=False):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                files.append(FileStat(relpath, st.st_size, st.st_mtime, st.st_ino, st.st_ctime_ns))
                if not now - st.st_mtime >= self.settle_seconds:
                    settled = False  # still being written (or a clock in the future)
            elif entry.is_dir(follow_symlinks=False):
                if not layout.walk_prunes(relpath):
                    subdirs.append(relpath)
            elif entry.is_symlink():
                storage._note_symlink(entry, relpath, escaping)
        scans: tuple[ScanListing, ...] | None = None
        if layout.unit == "file":
            old = {listing.scan: listing for listing in before.scans or ()} if before else {}
            # A file this folder listed as a scan before is one still (the layout is fixed):
            # only new names ask the layout (whose memo then stays small, issue 15).
            # Sorted by scan id: the endpoint's listing finds a scan in its folder by a binary
            # search (engine/incremental/folder_listings.py).
            scans = tuple(
                sorted(
                    (
                        _same_or_new(was, f)
                        for f in files
                        if (was := old.get(f.path)) is not None
                        or layout.scan_of(f.path, folders_checked=True) is not None
                    ),
                    key=scan_of,
                )
            )
        # One-file scans keep their files only in `scans` (no second copy held).
        kept = () if scans is not None else tuple(files)
        return _Folder(stamp if settled else None, kept, tuple(subdirs), scans)


def _same_or_new(old: ScanListing | None, file: FileStat) -> ScanListing:
    """`old` if it lists exactly `file` (all five fields equal), else a new listing of it (a
    one-file scan's listing is its file: compared as it is, no tuple made per file read)."""
    if old is not None and old == file:
        return old
    return listing_of(file.path, (file,))

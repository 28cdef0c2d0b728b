"""Local endpoints: a directory tree on this machine (a DTN's disk, a mounted filesystem).

`LocalStorage` lists a tree with one `os.scandir` pass and never follows symlinks, so a link
cannot make a scan appear twice or pull files from outside the tree into a listing. A root that
is missing or not a directory raises instead of listing as empty: an unmounted filesystem must
never look like one whose scans were all deleted.

`LocalMover` (in `local_mover`, re-exported here) copies and deletes scans between local roots.

Every path handed in from outside (a scan id, a file path) goes through `safe_path`, which refuses
anything that would land outside the endpoint root.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import EndpointUnavailable
from engine.inventory.checksum import file_checksum
from engine.layout import ScanLayout
from engine.listing import listing_of
from engine.model import FileStat
from engine.storage.base import ScanListing
from engine.storage.local_mover import LocalMover
from engine.storage.localfs import is_within, safe_path, sweep_temp_files
from engine.storage.root_paths import RootPaths

if TYPE_CHECKING:
    from engine.incremental.dirs import DirectoryCache

__all__ = ["LocalMover", "LocalStorage", "safe_path", "sweep_temp_files"]

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"


class LocalStorage:
    """A tree of scans in a local directory (implements `Storage`)."""

    # Incremental steady pass (engine/incremental): set by the service's passes only; the
    # listing then re-reads only folders whose stat changed. `stat_scan` never uses it.
    directory_cache: DirectoryCache | None = None

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStorage({self.name!r}, {str(self.root)!r})"

    def resolve(self, relpath: str) -> Path:
        """The local path of a scan or file, checked as `safe_path` checks it (the root
        resolved once while it names the same folder: `engine.storage.root_paths`)."""
        paths = self.__dict__.get("_paths")
        if paths is None or paths.root != self.root:
            paths = self.__dict__["_paths"] = RootPaths(self.root)
        return paths.path(relpath)

    def list_scans(
        self, layout: ScanLayout, wanted: Collection[str] | None = None
    ) -> Mapping[str, ScanListing]:
        """Walk the whole tree and group its files into scans.

        A local walk is cheap enough that `wanted` is ignored: the full answer is always
        returned, which also lets the caller see scans it did not expect.

        Raises:
            EndpointUnavailable: the root is missing or any folder could not be listed.
        """
        if self.directory_cache is not None:
            return self.directory_cache.list_scans(self, layout)
        self._check_root()
        files = self._iter_files(layout, "")
        if layout.unit == "file":  # the common case, kept lean: one file, one scan
            return {
                f.path: listing_of(f.path, (f,))
                for f in files
                if layout.scan_of(f.path, folders_checked=True) is not None
            }
        grouped: dict[str, list[FileStat]] = {}
        for file in files:
            scan = layout.scan_of(file.path, folders_checked=True)
            if scan is not None:
                grouped.setdefault(scan, []).append(file)
        return {scan: _listing(scan, scan_files) for scan, scan_files in grouped.items()}

    def stat_scan(self, layout: ScanLayout, scan: str) -> ScanListing | None:
        """A fresh listing of one scan, or None if it is not here.

        Raises:
            EndpointUnavailable: the root is missing or the scan could not be listed; a
                failure is never reported as an absence.
            UnsafePath: the scan id would resolve outside the root.
        """
        self._check_root()
        path = self.resolve(scan)
        entry = self._lstat(path, scan)
        if entry is None:
            return None
        if layout.unit == "file":
            if not stat.S_ISREG(entry.st_mode) or layout.scan_of(scan) != scan:
                return None
            return listing_of(scan, (_file_stat(scan, entry),))
        if not stat.S_ISDIR(entry.st_mode) or layout.walk_prunes(scan):
            return None
        files = [
            f
            for f in self._iter_files(layout, scan)
            if layout.scan_of(f.path, folders_checked=True) == scan
        ]
        return _listing(scan, files) if files else None

    def checksum_files(self, listing: ScanListing, algorithm: str) -> dict[str, str] | None:
        """Compute the checksums of a scan's files here (a local endpoint always can).

        A file that has vanished since the listing is left out of the answer, so the caller
        sees it as unverified rather than as a read error.

        Raises:
            EndpointUnavailable: the root is missing, or a file exists but cannot be read.
        """
        self._check_root()
        checksums: dict[str, str] = {}
        for file in listing.files:
            try:
                checksums[file.path] = file_checksum(self.resolve(file.path), algorithm)
            except FileNotFoundError:
                log.info("%s: %r vanished before it could be checksummed", self.name, file.path)
            except OSError as exc:
                raise EndpointUnavailable(
                    self.name, f"cannot read {file.path!r}: {exc.strerror or exc}"
                ) from exc
        return checksums

    def _check_root(self) -> None:
        try:
            root_stat = os.stat(self.root)
        except FileNotFoundError:
            raise EndpointUnavailable(
                self.name, f"root {self.root} is missing (unmounted?)"
            ) from None
        except OSError as exc:
            raise EndpointUnavailable(
                self.name, f"root {self.root} cannot be read: {exc.strerror or exc}"
            ) from exc
        if not stat.S_ISDIR(root_stat.st_mode):
            raise EndpointUnavailable(
                self.name, f"root {self.root} is missing (unmounted?): it is not a directory"
            )

    def _lstat(self, path: Path, relpath: str) -> os.stat_result | None:
        try:
            return os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise EndpointUnavailable(
                self.name, f"cannot stat {relpath!r}: {exc.strerror or exc}"
            ) from exc

    def _iter_files(self, layout: ScanLayout, start: str) -> Iterator[FileStat]:
        """Every regular file below `start` (relative), skipping pruned folders and symlinks."""
        pending = [start]
        escaping: list[str] = []
        while pending:
            reldir = pending.pop()
            prefix = f"{reldir}/" if reldir else ""
            for entry in self._entries(reldir):
                relpath = sys.intern(prefix + entry.name)  # shared with the scan's id
                if entry.is_file(follow_symlinks=False):
                    try:
                        entry_stat = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # vanished between scandir and stat: simply not there
                    # Inode and ctime too: they change whenever the bytes do (see `FileStat`).
                    yield FileStat(
                        relpath,
                        entry_stat.st_size,
                        entry_stat.st_mtime,
                        entry_stat.st_ino,
                        entry_stat.st_ctime_ns,
                    )
                elif entry.is_dir(follow_symlinks=False):
                    if not layout.walk_prunes(relpath):
                        pending.append(relpath)
                elif entry.is_symlink():
                    self._note_symlink(entry, relpath, escaping)
        if escaping:
            log.warning(
                "%s: left out %d symlink(s) pointing outside the root, e.g. %r",
                self.name,
                len(escaping),
                escaping[0],
            )

    def _entries(self, reldir: str) -> list[os.DirEntry[str]]:
        folder = os.path.join(self.root, reldir) if reldir else os.fspath(self.root)
        try:
            with os.scandir(folder) as entries:
                return list(entries)
        except (FileNotFoundError, NotADirectoryError):
            if reldir:
                # A folder removed while we walk is simply gone, unless the whole root went
                # with it (an unmount mid-walk), which must not read as "everything deleted".
                self._check_root()
                return []
            raise EndpointUnavailable(
                self.name, f"root {self.root} is missing (unmounted?)"
            ) from None
        except OSError as exc:
            where = repr(reldir) if reldir else "the root"
            raise EndpointUnavailable(
                self.name, f"cannot list {where}: {exc.strerror or exc}"
            ) from exc

    def _note_symlink(self, entry: os.DirEntry[str], relpath: str, escaping: list[str]) -> None:
        if is_within(os.path.realpath(entry.path), os.path.realpath(self.root)):
            log.debug("%s: not following symlink %r", self.name, relpath)
        else:
            escaping.append(relpath)


def _file_stat(relpath: str, entry: os.stat_result) -> FileStat:
    """A listed file with its identity (inode, ctime), which changes whenever its bytes do."""
    return FileStat(relpath, entry.st_size, entry.st_mtime, entry.st_ino, entry.st_ctime_ns)


def _listing(scan: str, files: list[FileStat]) -> ScanListing:
    if len(files) > 1:
        files.sort(key=lambda f: f.path)
    return listing_of(scan, tuple(files))

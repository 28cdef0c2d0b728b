"""Remove exactly the files of a scan's verified manifest from a local endpoint, nothing else.

A prune is allowed because other endpoints hold verified copies of *these files*: the paths,
sizes and checksums of the manifest. Anything else in the scan's folder — a name the layout
excludes (`.operator notes.txt`, `*.part`), or a file a user added (`analysis_result.h5`) — was
never copied anywhere, so it stays. So a delete:

1. checks every manifest file before touching any: a file whose size or (whole-second) mtime
   differs from the manifest is not the verified bytes, and the delete refuses as a whole;
2. unlinks the manifest files (one already gone is simply gone);
3. removes the scan's own folders bottom-up, each only if it is empty (`rmdir` is the atomic
   "only if empty"; a folder a user wrote into meanwhile stays);
4. lists what is left in the scan's folder afresh: those are the *foreign files* the receipt
   names and the engine reports.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.errors import NeedsHumanError
from engine.model import ScanFile
from engine.storage.localfs import safe_path


@dataclass(frozen=True, slots=True)
class Removal:
    """What one scan's delete did at one endpoint (paths relative to the endpoint root)."""

    removed: tuple[str, ...]  # manifest files this delete unlinked
    already_absent: tuple[str, ...]  # manifest files that were not there any more
    left_behind: tuple[str, ...]  # everything still in the scan's folder afterwards


def remove_manifest(
    root: Path, scan: str, files: Sequence[ScanFile], *, directory: bool
) -> Removal:
    """Delete the manifest `files` of `scan` below `root`, and the scan's folders once empty.

    Args:
        root: the endpoint root.
        scan: the scan id (its path relative to the root).
        files: the manifest: every file of the scan version that was verified elsewhere.
        directory: a directory scan (its folders go too, when empty); else a file scan.

    Returns:
        What was removed, what was already gone, and what was left in the scan's folder.

    Raises:
        UnsafePath: a path would resolve outside the root or through a symlink.
        NeedsHumanError: a manifest path holds something other than the verified file (another
            kind of entry, another size or mtime); nothing was deleted.
        OSError: an unlink or a listing failed.
    """
    present = [f for f in files if _matches_manifest(root, f)]
    present_paths = {f.path for f in present}
    removed: list[str] = []
    absent = [f.path for f in files if f.path not in present_paths]
    for scan_file in present:
        try:
            os.unlink(safe_path(root, scan_file.path))
        except FileNotFoundError:
            absent.append(scan_file.path)
            continue
        removed.append(scan_file.path)
    if not directory:
        return Removal(tuple(removed), tuple(absent), ())
    for folder in _own_folders(scan, files):
        _remove_if_empty(safe_path(root, folder))
    return Removal(tuple(removed), tuple(absent), _left_in(root, scan))


def _matches_manifest(root: Path, scan_file: ScanFile) -> bool:
    """Is the verified file there (True), gone (False)? Anything else refuses the delete."""
    try:
        found = os.lstat(safe_path(root, scan_file.path))
    except (FileNotFoundError, NotADirectoryError):
        return False
    if not stat.S_ISREG(found.st_mode):
        raise NeedsHumanError(
            f"{scan_file.path!r} is no longer a regular file; nothing of the scan was deleted"
        )
    if found.st_size != scan_file.size or int(found.st_mtime) != int(scan_file.mtime):
        raise NeedsHumanError(
            f"{scan_file.path!r} changed since it was verified (size {found.st_size}, expected "
            f"{scan_file.size}); nothing of the scan was deleted"
        )
    return True


def _own_folders(scan: str, files: Sequence[ScanFile]) -> list[str]:
    """The scan folder and every folder between it and a manifest file, deepest first."""
    folders = {scan}
    for scan_file in files:
        parent = PurePosixPath(scan_file.path).parent
        while str(parent) != scan and len(parent.parts) > len(PurePosixPath(scan).parts):
            folders.add(str(parent))
            parent = parent.parent
    return sorted(folders, key=lambda folder: (-folder.count("/"), folder))


def _remove_if_empty(folder: Path) -> None:
    try:
        os.rmdir(folder)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise


def _left_in(root: Path, scan: str) -> tuple[str, ...]:
    """A fresh listing of whatever is still below the scan's folder (symlinks not followed).

    Files and links are named by their paths; a folder is named (with a trailing `/`) only
    when nothing below it is, so an empty folder a user made is reported too.
    """
    top = safe_path(root, scan)
    left: list[str] = []
    pending = [(top, scan)]
    while pending:
        folder, relfolder = pending.pop()
        try:
            with os.scandir(folder) as scanner:
                entries = list(scanner)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if not entries and relfolder != scan:
            left.append(relfolder + "/")
        for entry in entries:
            relpath = f"{relfolder}/{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                pending.append((Path(entry.path), relpath))
            else:
                left.append(relpath)
    return tuple(sorted(left))

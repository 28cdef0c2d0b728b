"""Safe, verified file operations below an endpoint root.

These are the primitives the local mover is built from, kept apart from the task bookkeeping so
each can be read (and tested) on its own:

- `safe_path` refuses any path that would land outside the endpoint root;
- `place_file` puts one file at its destination with the acquisition's bytes, or fails without
  leaving anything under the final name;
- `sweep_temp_files` clears temporary files a crash left behind.

Deletes live in `local_delete` (exactly a scan's manifest files, nothing else).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from engine.errors import NeedsHumanError, TransientError, UnsafePath, VerificationFailed
from engine.inventory.checksum import checksums_equal, file_checksum, new_digest, read_buffer
from engine.layout import ENGINE_TEMP_PREFIX
from engine.model import FileStat, ScanFile

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"

Progress = Callable[[int], None]


def safe_path(root: Path, relpath: str) -> Path:
    """The path of `relpath` below `root`, refusing anything that could escape the root.

    Scan ids and file paths arrive from the state store, the catalog and other endpoints'
    listings; a deletion driven by a path like `../../home` or through a symlinked folder that
    points elsewhere would destroy data the engine does not own. So the path must be relative,
    made of plain components (no `..`, `.`, empty parts or NUL), and must resolve to itself below
    the resolved root: no symlink anywhere below the root. Listings never follow symlinks either,
    so a path through one names nothing the engine ever listed (and a link pointing inside the
    root would let a delete of one scan remove another). The root itself may be a symlink.

    Args:
        root: the endpoint root.
        relpath: a POSIX path relative to the root.

    Returns:
        `root / relpath` (not resolved).

    Raises:
        UnsafePath: the path is malformed, resolves outside the root or passes a symlink.
    """
    check_relpath(relpath)
    candidate = root / relpath
    real_root = os.path.realpath(root)
    real = os.path.realpath(candidate)
    if real != os.path.join(real_root, relpath):
        where = "inside" if is_within(real, real_root) else "outside"
        raise UnsafePath(
            f"{relpath!r} goes through a symlink to {real!r}, {where} the endpoint root "
            f"{real_root!r}; symlinks are never followed"
        )
    return candidate


def check_relpath(relpath: str) -> None:
    """Refuse a path that is not relative and made of plain components (`safe_path`).

    Raises:
        UnsafePath: empty, with NUL, absolute, or with an empty, '.' or '..' component.
    """
    if not relpath or "\0" in relpath:
        raise UnsafePath(f"{relpath!r} is not a usable relative path")
    if relpath.startswith("/"):
        raise UnsafePath(f"{relpath!r} is absolute; paths must be relative to the endpoint root")
    if any(part in ("", ".", "..") for part in relpath.split("/")):
        raise UnsafePath(f"{relpath!r} has an empty, '.' or '..' component")


def is_within(path: str, root: str) -> bool:
    """Is the resolved `path` the resolved `root` or below it?"""
    return path == root or path.startswith(root.rstrip("/") + "/")


def place_file(
    source: Path,
    target: Path,
    expected: ScanFile,
    algorithm: str,
    *,
    endpoint: str,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> FileStat:
    """Make `target` hold exactly the acquisition's bytes of one file.

    A destination that already holds those bytes is adopted as it is (only its mtime is set to
    the source's), so a retried or repeated copy costs one read, not a rewrite. A destination
    holding other bytes is replaced only with `overwrite` (a replace the planner gated): those
    bytes may be an older version of the scan whose evidence was lost, or a user's file, and
    overwriting them is a delete. New bytes
    go to a temporary file beside the target, are hashed while read, flushed to disk, read back
    and hashed again, and only then renamed onto the final name; so the final name only ever
    holds verified bytes, and a crash leaves only a `.bl931-*.tmp` file for `sweep_temp_files`.

    Args:
        source: the file to read.
        target: where it goes (its folders are created).
        expected: the inventory's record of the file; `expected.checksum` is the acquisition
            checksum the bytes must match.
        algorithm: the hashlib name `expected.checksum` was computed with.
        endpoint: the target endpoint's name, for log messages.
        progress: called with byte counts as they are copied (an adopted file counts whole).

    Returns:
        The destination's stat after the copy (size and preserved mtime; the permission bits
        are the source's too).

    Raises:
        VerificationFailed: the source's bytes do not match the acquisition checksum (needs a
            person: the source changed or is corrupted).
        TransientError: the bytes read back from the temporary file differ from those written.
        NeedsHumanError: something other than a regular file is in the way at the target, or
            a file with other bytes is there and `overwrite` is False.
        OSError: reading or writing failed (ENOSPC, EIO, a vanished source …).
    """
    source_stat = os.stat(source)
    if _holds_expected(target, expected, algorithm, endpoint, overwrite=overwrite):
        _preserve_times(target, source_stat)
        if progress is not None:
            progress(expected.size)
        return _file_stat(target, expected.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _TempFile(target) as temp:
        assert temp.fd is not None
        os.fchmod(temp.fd, stat.S_IMODE(source_stat.st_mode))  # not mkstemp's private 0600
        read_digest = _copy_into(source, temp, algorithm, progress)
        if not checksums_equal(read_digest, expected.checksum):
            raise VerificationFailed(
                f"{expected.path!r}: source bytes differ from the acquisition checksum "
                f"({algorithm} {read_digest} != {expected.checksum}); the source changed or is corrupt"
            )
        written_digest = file_checksum(temp.path, algorithm)
        if not checksums_equal(written_digest, read_digest):
            raise TransientError(
                f"{expected.path!r}: bytes read back at {endpoint} differ from the bytes written "
                f"({algorithm} {written_digest} != {read_digest})"
            )
        _preserve_times(temp.path, source_stat)
        temp.commit()
    _fsync_dir(target.parent)
    return _file_stat(target, expected.path)


def _holds_expected(
    target: Path, expected: ScanFile, algorithm: str, endpoint: str, *, overwrite: bool
) -> bool:
    try:
        target_stat = os.lstat(target)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(target_stat.st_mode):
        raise NeedsHumanError(
            f"{expected.path!r} at {endpoint} exists and is not a regular file; not replacing it"
        )
    if target_stat.st_size == expected.size and checksums_equal(
        file_checksum(target, algorithm), expected.checksum
    ):
        log.debug("%s: %r already holds the acquisition's bytes; adopted", endpoint, expected.path)
        return True
    if not overwrite:
        raise NeedsHumanError(
            f"{expected.path!r} at {endpoint} holds other bytes than the version being copied; "
            "bl931 never overwrites bytes it has not verified (they may be an older version or "
            "a user's file): move them away, or let a replace be planned and approve it"
        )
    log.warning(
        "%s: existing %r differs from the acquisition checksum; replacing",
        endpoint,
        expected.path,
    )
    return False


class _TempFile:
    """A temporary file beside `target` that is renamed onto it on `commit`, else removed."""

    def __init__(self, target: Path) -> None:
        self.target = target
        fd, name = tempfile.mkstemp(
            prefix=ENGINE_TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=target.parent
        )
        self.fd: int | None = fd
        self.path = Path(name)
        self._committed = False

    def __enter__(self) -> _TempFile:
        return self

    def commit(self) -> None:
        os.replace(self.path, self.target)
        self._committed = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if not self._committed:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            except OSError as cleanup_error:
                log.warning("cannot remove temporary file %s: %s", self.path, cleanup_error)


def _copy_into(source: Path, temp: _TempFile, algorithm: str, progress: Progress | None) -> str:
    """Copy `source` into the open temp file in large chunks; returns the digest of what was read."""
    assert temp.fd is not None
    digest = new_digest(algorithm)
    buffer = read_buffer()
    with open(source, "rb", buffering=0) as reader:
        while count := reader.readinto(buffer):
            chunk = buffer[:count]
            digest.update(chunk)
            _write_all(temp.fd, chunk)
            if progress is not None:
                progress(count)
    os.fsync(temp.fd)
    os.close(temp.fd)
    temp.fd = None
    return digest.hexdigest()


def _write_all(fd: int, chunk: memoryview) -> None:
    while chunk:
        written = os.write(fd, chunk)
        chunk = chunk[written:]


def _preserve_times(path: Path, source_stat: os.stat_result) -> None:
    """Give the copy the source's mtime, as Globus `preserve_timestamp` does."""
    os.utime(path, ns=(source_stat.st_atime_ns, source_stat.st_mtime_ns))


def _file_stat(path: Path, relpath: str) -> FileStat:
    placed = os.stat(path)
    return FileStat(relpath, placed.st_size, placed.st_mtime)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable; filesystems that cannot fsync a folder are skipped quietly."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def sweep_temp_files(root: Path, older_than_seconds: float, *, now: float) -> int:
    """Remove temporary files a crashed copy left behind (`.bl931-*.tmp`).

    A copy always writes under a temporary name first; if the process dies before the rename,
    the temp file stays. The reconciler calls this at start. Only files untouched for
    `older_than_seconds` go, judged by the later of mtime and ctime (a copy sets the temp file's
    mtime to the source's before renaming, which changes its ctime to now).

    Args:
        root: the endpoint root to sweep (symlinks are not followed).
        older_than_seconds: minimum age of a temp file to remove.
        now: the current time as a POSIX timestamp (from the engine's clock).

    Returns:
        How many files were removed.
    """
    cutoff = now - older_than_seconds
    removed = 0
    pending = [os.fspath(root)]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as scanner:
                entries = list(scanner)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                log.warning("cannot sweep temp files in %s: %s", folder, exc.strerror or exc)
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
            elif _is_engine_temp(entry) and _remove_if_older(entry, cutoff):
                removed += 1
    if removed:
        log.info("removed %d stale temporary file(s) below %s", removed, root)
    return removed


def _is_engine_temp(entry: os.DirEntry[str]) -> bool:
    return (
        entry.name.startswith(ENGINE_TEMP_PREFIX)
        and entry.name.endswith(TEMP_SUFFIX)
        and entry.is_file(follow_symlinks=False)
    )


def _remove_if_older(entry: os.DirEntry[str], cutoff: float) -> bool:
    try:
        entry_stat = entry.stat(follow_symlinks=False)
        if max(entry_stat.st_mtime, entry_stat.st_ctime) >= cutoff:
            return False
        os.unlink(entry.path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("cannot remove stale temp file %s: %s", entry.path, exc.strerror or exc)
        return False
    return True

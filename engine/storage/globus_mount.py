"""Checksums of a Globus endpoint's copies, computed through the same tree mounted here.

Transfer has no call that checksums a file at rest: `operation_ls` gives names, sizes and
mtimes; a checksum is computed only inside a transfer task (`sync_level="checksum"`,
`verify_checksum`), which reads the bytes on both collections and takes minutes to hours. So a
Globus endpoint's bytes at rest can be re-read on demand only where its tree is also mounted
here (`path` in `[endpoints.X]`, e.g. NERSC CFS on a DTN): bl931 hashes the files there.

A mount proves something about the collection only while it shows the collection's files. Each
file is first compared with what Globus just listed (same size, same whole-second mtime): a
mount point left empty by an unmount, a missing file, or another filesystem's copy with other
mtimes cannot vouch for the collection's bytes, and is reported as a failure, never as a
checksum. (A byte-for-byte clone with the same mtimes mounted in the collection's place cannot
be told apart this way; see docs/safety.md.)
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from engine.errors import EndpointUnavailable, UnsafePath
from engine.inventory.checksum import file_checksum
from engine.storage.base import ScanListing
from engine.storage.localfs import safe_path


class MountedTree:
    """A Globus endpoint's root as mounted on this machine.

    Args:
        endpoint: the endpoint's name (for messages).
        root: the local path of the endpoint's root (`[endpoints.X] path`).
    """

    def __init__(self, endpoint: str, root: Path) -> None:
        self.endpoint = endpoint
        self.root = Path(root)

    def checksum_files(self, listing: ScanListing, algorithm: str) -> dict[str, str]:
        """Checksums of the listed files, read through the mount.

        Args:
            listing: the scan as Globus listed it (sizes and mtimes to compare with).
            algorithm: the hashlib name of the acquisition checksum.

        Returns:
            Relative path → hex digest, for every listed file.

        Raises:
            EndpointUnavailable: the mount is missing, does not show a listed file as Globus
                lists it, or a file cannot be read (the copy is then unknown, never changed).
        """
        if not self.root.is_dir():
            raise self._unavailable(f"the local path {self.root} is missing (unmounted?)")
        sums: dict[str, str] = {}
        for listed in listing.files:
            try:
                path = safe_path(self.root, listed.path)
                before = os.lstat(path)
                if not stat.S_ISREG(before.st_mode):
                    raise FileNotFoundError(listed.path)
                self._check_shows(listed.path, before, listed.size, listed.mtime)
                digest = file_checksum(path, algorithm)
                after = os.lstat(path)
            except FileNotFoundError:
                raise self._unavailable(
                    f"{listed.path!r} is listed on the collection but not found at {self.root}: "
                    "is the collection mounted there?"
                ) from None
            except (OSError, UnsafePath) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise self._unavailable(
                    f"cannot re-hash {listed.path!r} at {self.root}: {reason}"
                ) from exc
            if (after.st_size, after.st_mtime_ns, after.st_ino) != (
                before.st_size,
                before.st_mtime_ns,
                before.st_ino,
            ):
                raise self._unavailable(f"{listed.path!r} changed while it was re-hashed")
            sums[listed.path] = digest
        return sums

    def _check_shows(self, relpath: str, local: os.stat_result, size: int, mtime: float) -> None:
        if local.st_size != size or int(local.st_mtime) != int(mtime):
            raise self._unavailable(
                f"{relpath!r} at {self.root} is not the file the collection lists "
                f"({local.st_size} bytes, mtime {int(local.st_mtime)} here; {size} bytes, "
                f"mtime {int(mtime)} on the collection): is the collection mounted there?"
            )

    def _unavailable(self, reason: str) -> EndpointUnavailable:
        return EndpointUnavailable(self.endpoint, reason)

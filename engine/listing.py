"""What an endpoint lists: files (`FileStat`) and the listing of one scan (`ScanListing`).

A scan's listing is one of two kinds:

- `FilesListing`: the scan id and a tuple of its files (a folder scan, or a file listed under
  another name);
- a `FileStat` itself, for a one-file scan whose id is the file's path (the common case, one
  per replica at every endpoint): one object per replica instead of three (a listing, a
  1-tuple and the file), ~100 bytes less per replica, 30 MB at 100k scans on three
  endpoints (issue 15's memory target). Its `files` is a fresh 1-tuple of itself on each read.

`listing_of` picks the kind, so that every producer lists the same scan the same way and two
listings of the same files compare equal whoever made them.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from engine.file_identity import KEEP, Identity, WithIdentity, given

if TYPE_CHECKING:
    from engine.model import ScanFile


class ScanListing:
    """The files of one scan as one endpoint lists them (paths relative to the endpoint root)."""

    __slots__ = ()

    if TYPE_CHECKING:  # each kind's fields or properties (a runtime property here would be
        # taken by `dataclass` as the default value of the field of the same name)

        @property
        def scan(self) -> str: ...

        @property
        def files(self) -> tuple[FileStat, ...]: ...

        @property
        def size(self) -> int: ...

    @property
    def signature(self) -> str:
        return listing_signature(self.files)


@dataclass(frozen=True, slots=True, init=False, repr=False)
class FileStat(ScanListing, WithIdentity):
    """One file as an endpoint lists it. `path` is relative to the endpoint root.

    `inode` and `ctime_ns` are set by listings that can see them (a local tree): together they
    change whenever the file's bytes do, even when its size and mtime are put back (`cp -p`,
    `rsync -t`), which is what lets the inventory trust a checksum it computed earlier. They
    are kept packed as one `identity` (`engine.file_identity`) and read as before.

    A file is also the listing of the one-file scan whose id is its path (`listing_of`).
    """

    path: str
    size: int
    mtime: float
    identity: Identity = None
    _SHOWN: ClassVar[tuple[str, ...]] = ("path", "size", "mtime", "inode", "ctime_ns")

    def __init__(
        self,
        path: str,
        size: int,
        mtime: float,
        inode: int | None = KEEP,
        ctime_ns: int | None = KEEP,
        identity: Identity = None,
    ) -> None:
        setter = object.__setattr__
        setter(self, "path", path)
        setter(self, "size", size)
        setter(self, "mtime", mtime)
        setter(self, "identity", given(identity, inode, ctime_ns))

    @property
    def scan(self) -> str:
        return self.path

    @property
    def files(self) -> tuple[FileStat, ...]:
        return (self,)


@dataclass(frozen=True, slots=True)
class FilesListing(ScanListing):
    """A scan's listing as its id and files (see the module docstring for when)."""

    scan: str
    files: tuple[FileStat, ...]

    @property
    def size(self) -> int:
        files = self.files
        # A one-file scan's size is its file's (the same int object, not a new one per replica).
        return files[0].size if len(files) == 1 else sum(f.size for f in files)


def listing_of(scan: str, files: Sequence[FileStat]) -> ScanListing:
    """The listing of `scan` made of `files`: the file itself for a one-file scan named by its
    path, else a `FilesListing`."""
    if len(files) == 1 and files[0].path == scan:
        return files[0]
    return FilesListing(scan, tuple(files))


def listing_signature(files: Sequence[FileStat] | Sequence[ScanFile]) -> str:
    """Fingerprint of a replica's listing: relative paths, sizes and whole-second mtimes."""
    digest = hashlib.sha256()
    # One-file scans are the common case (100,000s per pass): nothing to sort.
    ordered: Sequence[FileStat | ScanFile] = (
        files if len(files) < 2 else sorted(files, key=lambda f: f.path)
    )
    for f in ordered:
        digest.update(f"{f.path}\0{f.size}\0{int(f.mtime)}\n".encode("utf-8", "surrogateescape"))
    # Shared with the replica rows and evidence that store the same signature (engine.compact).
    return sys.intern(digest.hexdigest()[:32])

"""The local catalog's file: its format, its identity, and compare-and-swap writes.

The file keeps TinyDB's layout — every top-level key is a table of `{"<doc id>": document}` — so
`TinyDB(path).table("datasets")` still reads it. Beside the `datasets` table, a one-row table
`bl931_catalog` holds the catalog's identity: an `id` written once when the catalog is
initialised, and a `generation` counted up by every write.

Why both: a missing catalog file looks exactly like a catalog that was never written (an unmounted
volume, a deleted file), and a catalog file written by another process looks like ours. The id
tells bl931 whether the file is the catalog its state store knows; the generation, read again
under the write lock right before a write, tells it whether anyone wrote since it last read.

Writes are compare-and-swap: under an exclusive `fcntl.flock` on a lock file beside the catalog
(`<name>.lock`; the catalog file itself cannot carry the lock, since `os.replace` swaps its
inode), the writer reads the file afresh, merges its own changes into what it finds, writes a
temporary file, checks that the catalog file is still the very one it read (device, inode, size,
mtime, ctime: a writer that ignores the lock is caught too), and only then `os.replace`s it.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.catalog.dataset import scan_id_of

TABLE = "datasets"
IDENTITY_TABLE = "bl931_catalog"


class CatalogCorrupt(ValueError):
    """The file exists but is not a catalog (empty, not JSON, documents without a scan id)."""


class CatalogRaced(Exception):
    """The file changed between the locked read and the replace (a writer ignoring the lock)."""


@dataclass(frozen=True, slots=True)
class FileStamp:
    """Which file, as written: changes whenever the file is replaced or rewritten."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStamp:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True, slots=True)
class CatalogSnapshot:
    """The file as read once: its documents by scan id, its identity, and which file it was."""

    docs: Mapping[str, dict[str, Any]]
    catalog_id: str | None  # None: a file written before catalogs had an identity
    generation: int
    stamp: FileStamp
    identity: Mapping[str, Any]  # the whole identity row (id, generation, beamline, created_at)


class CatalogFile:
    """One catalog file on disk. Stateless apart from its path; every call goes to the disk."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser()

    @property
    def target(self) -> Path:
        """The file a write replaces: the catalog path with symlinks resolved now, so that a
        symlink to the catalog on another volume stays a symlink (and a dangling one is a
        missing catalog, never a new file beside the link)."""
        return Path(os.path.realpath(self.path))

    @property
    def lock_path(self) -> Path:
        target = self.target
        return target.with_name(f"{target.name}.lock")

    def stamp(self) -> FileStamp | None:
        """The file's stamp, or None if there is no file. Raises OSError if it cannot be seen."""
        try:
            return FileStamp.of(os.stat(self.path))
        except FileNotFoundError:
            return None

    def read(self) -> CatalogSnapshot:
        """Read and parse the whole file.

        Raises:
            FileNotFoundError: there is no file (or its folder is gone).
            CatalogCorrupt: the file is not a catalog.
            OSError: it cannot be read.
        """
        with open(self.path, "rb") as handle:
            stamp = FileStamp.of(os.fstat(handle.fileno()))
            raw = handle.read()
        return _parse(raw, stamp)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the catalog's write lock (blocks while another writer holds it).

        The lock file is created beside the catalog; its folder is never created here.

        Raises:
            FileNotFoundError: the catalog's folder does not exist.
            OSError: the lock file cannot be opened or locked.
        """
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def replace(
        self,
        docs: Mapping[str, dict[str, Any]],
        identity: Mapping[str, Any],
        *,
        expected: FileStamp | None,
    ) -> CatalogSnapshot:
        """Write `docs` and `identity` in place of the file last read as `expected`.

        Call only while holding `locked()`. `expected` None means "there must be no file".

        Raises:
            CatalogRaced: the file is no longer the one read (nothing was replaced).
            OSError: the temporary file could not be written (the old file is intact).
        """
        table = {str(i): doc for i, (_, doc) in enumerate(sorted(docs.items()), 1)}
        payload = json.dumps(
            {TABLE: table, IDENTITY_TABLE: {"1": dict(identity)}},
            ensure_ascii=False,
            sort_keys=True,
        ).encode("utf-8")
        target = self.target
        folder = target.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            if self.stamp() != expected:
                raise CatalogRaced(f"{self.path} changed while it was being written")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        stamp = self.stamp()
        assert stamp is not None
        return CatalogSnapshot(
            dict(docs),
            str(identity.get("id")) if identity.get("id") else None,
            int(identity.get("generation", 0)),
            stamp,
            dict(identity),
        )


def _parse(raw: bytes, stamp: FileStamp) -> CatalogSnapshot:
    if not raw.strip():
        raise CatalogCorrupt("the file is empty")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogCorrupt(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get(TABLE, {}), dict):
        raise CatalogCorrupt(f"expected an object with a {TABLE!r} table")
    docs: dict[str, dict[str, Any]] = {}
    for doc_id, doc in data.get(TABLE, {}).items():
        scan_id = scan_id_of(doc) if isinstance(doc, dict) else None
        if scan_id is None:
            raise CatalogCorrupt(f"document {doc_id} has no scientificMetadata.scan_id")
        docs[scan_id] = doc
    identity = _identity_row(data.get(IDENTITY_TABLE))
    catalog_id = identity.get("id")
    if catalog_id is not None and not isinstance(catalog_id, str):
        raise CatalogCorrupt(f"the {IDENTITY_TABLE} id is not a string")
    generation = identity.get("generation", 0)
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        raise CatalogCorrupt(f"the {IDENTITY_TABLE} generation is not a count")
    return CatalogSnapshot(docs, catalog_id, generation, stamp, identity)


def _identity_row(table: object) -> dict[str, Any]:
    if table is None:
        return {}
    if not isinstance(table, dict) or len(table) != 1:
        raise CatalogCorrupt(f"the {IDENTITY_TABLE} table must hold exactly one row")
    (row,) = table.values()
    if not isinstance(row, dict):
        raise CatalogCorrupt(f"the {IDENTITY_TABLE} row is not an object")
    return row

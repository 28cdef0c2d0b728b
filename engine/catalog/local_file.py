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

Nothing here holds every document in memory: a read walks the file one document at a time
(`engine.catalog.json_stream`) and keeps an *index* — per scan, the byte range of its document
and the endpoints it records — and a write streams the new file, copying unchanged documents byte
for byte from the file it replaces and serialising only the changed ones.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from engine.catalog.dataset import recorded_endpoints, scan_id_of
from engine.catalog.doc_index import DocEntry, DocIndex, DocIndexBuilder
from engine.catalog.json_stream import read_tables

TABLE = "datasets"
IDENTITY_TABLE = "bl931_catalog"


class CatalogCorrupt(ValueError):
    """The file exists but is not a catalog (empty, not JSON, documents without a scan id)."""


class CatalogRaced(Exception):
    """The file changed between the locked read and the replace (a writer ignoring the lock),
    or between reading the index and reading a document from it."""


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
    """The file as read once: an index of its documents by scan id, its identity, which file."""

    entries: Mapping[str, DocEntry]
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
        """Read the file once through, one document at a time, into an index.

        Raises:
            FileNotFoundError: there is no file (or its folder is gone).
            CatalogCorrupt: the file is not a catalog.
            OSError: it cannot be read.
        """
        with open(self.path, "rb") as handle:
            stamp = FileStamp.of(os.fstat(handle.fileno()))
            return _index(handle, stamp)

    @contextmanager
    def opened(self, snapshot: CatalogSnapshot) -> Iterator[BinaryIO]:
        """The file the snapshot indexed, open for reading documents from it.

        Raises:
            CatalogRaced: the file at the path is no longer the one indexed.
            FileNotFoundError: there is no file.
        """
        with open(self.path, "rb") as handle:
            if FileStamp.of(os.fstat(handle.fileno())) != snapshot.stamp:
                raise CatalogRaced(f"{self.path} changed since it was read")
            yield handle

    @staticmethod
    def document(handle: BinaryIO, scan_id: str, entry: DocEntry) -> dict[str, Any]:
        """One document, read from its byte range in a file `opened()` for its snapshot.

        Raises:
            CatalogRaced: the bytes there are not that scan's document (the file was rewritten
                in place since it was indexed).
        """
        handle.seek(entry.start)
        raw = handle.read(entry.end - entry.start)
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            doc = None
        if not isinstance(doc, dict) or scan_id_of(doc) != scan_id:
            raise CatalogRaced(f"the document of {scan_id} moved since the file was read")
        return doc

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
        source: CatalogSnapshot | None,
        changed: Collection[str],
        merge: Callable[[str, dict[str, Any] | None], dict[str, Any]],
        identity: Mapping[str, Any],
    ) -> CatalogSnapshot:
        """Write a new file in place of `source` (None: there must be no file): its documents,
        with `merge(scan id, document found or None)` for every scan in `changed`.

        Call only while holding `locked()`. Unchanged documents are copied byte for byte; the
        documents are numbered 1..n in scan-id order.

        Raises:
            CatalogRaced: the file is no longer the one read (nothing was replaced).
            OSError: the temporary file could not be written (the old file is intact).
        """
        target = self.target
        folder = target.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                if source is None:
                    entries = _write(out, None, {}, changed, merge, identity)
                else:
                    with self.opened(source) as handle:
                        entries = _write(out, handle, source.entries, changed, merge, identity)
                out.flush()
                os.fsync(out.fileno())
            if self.stamp() != (None if source is None else source.stamp):
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
            entries,
            str(identity.get("id")) if identity.get("id") else None,
            int(identity.get("generation", 0)),
            stamp,
            dict(identity),
        )


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8")


def _write(
    out: BinaryIO,
    source: BinaryIO | None,
    entries: Mapping[str, DocEntry],
    changed: Collection[str],
    merge: Callable[[str, dict[str, Any] | None], dict[str, Any]],
    identity: Mapping[str, Any],
) -> DocIndex:
    """Stream the catalog into `out`; returns the index of what was written."""
    written = DocIndexBuilder()
    # The layout json.dumps(sort_keys=True) gives: the identity table, then the documents.
    head = b"{" + _dumps(IDENTITY_TABLE) + b': {"1": ' + _dumps(dict(identity)) + b"}, "
    position = out.write(head + _dumps(TABLE) + b": {")
    for number, scan_id in enumerate(sorted(entries.keys() | set(changed)), 1):
        entry = entries.get(scan_id)
        if scan_id in changed:
            found = None
            if entry is not None:
                assert source is not None
                found = CatalogFile.document(source, scan_id, entry)
            doc = merge(scan_id, found)
            raw = _dumps(doc)
            endpoints = recorded_endpoints(doc)
        else:
            assert entry is not None and source is not None
            source.seek(entry.start)
            raw = source.read(entry.end - entry.start)
            endpoints = entry.endpoints
        key = (b", " if number > 1 else b"") + _dumps(str(number)) + b": "
        position += out.write(key)
        written.add(scan_id, position, position + len(raw), endpoints)
        position += out.write(raw)
    out.write(b"}}")
    return written.done()


def _index(handle: BinaryIO, stamp: FileStamp) -> CatalogSnapshot:
    entries = DocIndexBuilder()
    identity: dict[str, Any] = {}
    try:
        for table, doc_id, value, start, end in read_tables(handle, streamed=TABLE):
            if table == IDENTITY_TABLE:
                identity = _identity_row(value)
            elif doc_id is None and table == TABLE:
                entries = DocIndexBuilder()  # the table starts (a second one replaces the first)
            elif doc_id is not None:
                scan_id = scan_id_of(value) if isinstance(value, dict) else None
                if scan_id is None:
                    raise CatalogCorrupt(f"document {doc_id} has no scientificMetadata.scan_id")
                endpoints = recorded_endpoints(value)
                entries.add(scan_id, start, end, endpoints)
    except UnicodeDecodeError as exc:
        raise CatalogCorrupt(f"not valid JSON: {exc}") from None
    except CatalogCorrupt:
        raise
    except ValueError as exc:
        raise CatalogCorrupt(f"not valid JSON: {exc}") from None
    catalog_id = identity.get("id")
    if catalog_id is not None and not isinstance(catalog_id, str):
        raise CatalogCorrupt(f"the {IDENTITY_TABLE} id is not a string")
    generation = identity.get("generation", 0)
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        raise CatalogCorrupt(f"the {IDENTITY_TABLE} generation is not a count")
    return CatalogSnapshot(entries.done(), catalog_id, generation, stamp, identity)


def _identity_row(table: object) -> dict[str, Any]:
    if table is None:
        return {}
    if not isinstance(table, dict) or len(table) != 1:
        raise CatalogCorrupt(f"the {IDENTITY_TABLE} table must hold exactly one row")
    (row,) = table.values()
    if not isinstance(row, dict):
        raise CatalogCorrupt(f"the {IDENTITY_TABLE} row is not an object")
    return row

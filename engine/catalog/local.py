# Over 400 lines: split pending: issue 15 (identity/initialise vs. reads and merged writes).
"""The embedded catalog: SciCat-shaped dataset documents in one JSON file (TinyDB's layout).

Offline-first: a beamline can run with this catalog before its SciCat ingest exists, and later
back-fill SciCat from these documents (`engine.catalog.backfill`), because both catalogs keep the
same documents (`engine.catalog.dataset`).

A missing catalog is unknown, never empty. The file carries an identity (`engine.catalog.
local_file`) that is written once — by `initialise()`, which only an operator's
`--init-catalog` or a brand-new state store calls (`engine.catalog.custody`) — and checked on
every read: a missing file, a file without an identity or with another one makes the catalog
unavailable (needs a person), so an unmounted volume or a deleted file never reads as "nothing
registered" and bl931 never starts an empty catalog over a known one.

Reads follow the disk: before each use the file's stamp is compared with the one last read and
the file is read again when it changed, so a long-running service never works from a stale copy.
What is kept in memory is an index (per scan: where its document is in the file and which
endpoints it records — enough for `observe`), never the documents: a document is read from the
file when it is needed (a registration that adopts one, a location update, the back-fill).
Changes are kept in memory as *pending* changes (only the changed documents) and written once per
pass by `flush()`, as a compare-and-swap (`CatalogFile.replace` under the write lock): the file
is indexed afresh, the pending changes are merged into what another writer may have added
meanwhile, and the result replaces exactly the file that was read, unchanged documents copied
byte for byte. Nothing another writer recorded is lost.

Thread-safe for one writer (the reconciler) and readers (the TUI via `documents()`).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from engine.catalog.base import Location
from engine.catalog.dataset import (
    compile_path_template,
    dataset_pid,
    lifecycle_body,
    local_document,
    location_entry,
    recorded_endpoints,
    to_iso,
)
from engine.catalog.local_file import (
    TABLE,
    CatalogCorrupt,
    CatalogFile,
    CatalogRaced,
    CatalogSnapshot,
    DocEntry,
    FileStamp,
)
from engine.clock import SYSTEM_CLOCK
from engine.config import CatalogConfig
from engine.errors import CatalogUnavailable, TerminalError
from engine.model import CatalogView, ErrorClass, Scan

__all__ = ["TABLE", "LocalCatalog"]

log = logging.getLogger(__name__)

# A writer that ignores the lock and keeps replacing the file is given this many chances.
MAX_WRITE_ATTEMPTS = 5
NO_ENTRIES: Mapping[str, DocEntry] = {}


@dataclass(frozen=True, slots=True)
class _Change:
    """A pending change of one scan's document: the whole document as this catalog built it
    (used when the file holds none), and the locations to set on whatever document it holds."""

    document: dict[str, Any]
    locations: tuple[Location, ...] | None  # None: adopt the document found as it is
    at: str


class LocalCatalog:
    """A `Catalog` in one JSON file, read when it changes and written by compare-and-swap.

    Until `expect()` binds it to an identity, any catalog file is accepted and a missing file is
    unavailable. The file is read lazily, so a corrupt or missing file surfaces as
    `CatalogUnavailable` in the pass that needs it (the reconciler then blocks what depends on
    the catalog) instead of crashing start-up.
    """

    name = "local"

    def __init__(
        self,
        path: Path,
        config: CatalogConfig,
        *,
        beamline: str = "9.3.1",
        clock: Callable[[], datetime] = SYSTEM_CLOCK,
    ) -> None:
        self.file = CatalogFile(path)
        self.path = self.file.path
        self.config = config
        self.beamline = beamline
        self._clock = clock
        self._template = compile_path_template(config.path_template)
        self._lock = threading.RLock()
        self._snapshot: CatalogSnapshot | None = None  # the file's index as last read (or written)
        self._pending: dict[str, _Change] = {}  # scan id → change not yet written
        self._expected_id: str | None = None
        self._missing_is_fresh = False
        self._refusal: str | None = None

    # ---- identity ---------------------------------------------------------------------------

    def expect(
        self,
        catalog_id: str | None,
        *,
        missing_is_fresh: bool = False,
        refusal: str | None = None,
    ) -> None:
        """Bind the catalog to what the state store knows (called before each pass).

        Args:
            catalog_id: the identity the file must carry (None: any).
            missing_is_fresh: a missing file reads as an empty catalog — only for an audit of
                an installation that has no state store yet; nothing is written then.
            refusal: the catalog is unavailable for this reason, whatever the file holds (no
                identity is recorded and none may be created without an operator).
        """
        with self._lock:
            if catalog_id != self._expected_id:
                self._snapshot = None  # checked again against the new expectation
            self._expected_id = catalog_id
            self._missing_is_fresh = missing_is_fresh and catalog_id is None
            self._refusal = refusal

    def identity_on_disk(self) -> str | None:
        """The id the file carries (None: a file from before identities).

        Raises:
            CatalogUnavailable: there is no file, or it is unreadable or corrupt.
        """
        with self._lock:
            return self._read().catalog_id

    def initialise(self, *, now: datetime) -> tuple[str, str]:
        """Give the catalog file an identity: create an empty catalog, or adopt the file there.

        A file that already carries an identity keeps it; a file from before identities gets
        one, its documents untouched. Only an operator's step (`--init-catalog`) or a new state
        store may call this: everywhere else a missing file is unavailable. The catalog's folder
        must exist (a missing folder is an unmounted volume more often than a new install).

        Returns:
            (catalog id, "created" | "adopted" | "identified").

        Raises:
            CatalogUnavailable: the folder is missing, or the file is unreadable or corrupt.
        """
        with self._lock:
            if self.path.is_symlink() and not self.path.exists():
                raise CatalogUnavailable(
                    f"local catalog {self.path} is a symlink to {os.readlink(self.path)}, which "
                    "does not exist (is its volume mounted?)",
                    error_class=ErrorClass.NEEDS_HUMAN,
                )
            if not self.path.parent.is_dir():
                raise CatalogUnavailable(
                    f"local catalog folder {self.path.parent} does not exist (is its volume "
                    "mounted?); bl931 never creates it",
                    error_class=ErrorClass.NEEDS_HUMAN,
                )
            try:
                with self.file.locked():
                    current = self._read_for_write()
                    if current is not None and current.catalog_id is not None:
                        self._snapshot = current
                        return current.catalog_id, "adopted"
                    identity = {
                        "id": str(uuid.uuid4()),
                        "generation": 1 if current is None else current.generation + 1,
                        "beamline": self.beamline,
                        "created_at": to_iso(now),
                    }
                    written = self.file.replace(current, (), _unchanged, identity)
            except (OSError, CatalogRaced) as exc:
                raise CatalogUnavailable(
                    f"local catalog {self.path} cannot be initialised: {exc}",
                    error_class=ErrorClass.NEEDS_HUMAN,
                ) from None
            self._snapshot = written
            how = "created" if current is None else "identified"
            log.info("local catalog %s: identity %s (%s)", self.path, identity["id"], how)
            return str(identity["id"]), how

    # ---- reading ----------------------------------------------------------------------------

    def _unavailable(self, why: str, error_class: ErrorClass) -> CatalogUnavailable:
        return CatalogUnavailable(f"local catalog {self.path} {why}", error_class=error_class)

    def _missing(self) -> CatalogUnavailable:
        return self._unavailable(
            "is missing (is its volume unmounted, or was it deleted?): bl931 never starts an "
            "empty catalog over a known one. Restore or remount it; if it is truly gone, "
            "`bl931tui --init-catalog` starts a new one (scans the state store recorded as "
            "registered are then reported lost)",
            ErrorClass.NEEDS_HUMAN,
        )

    def _read(self) -> CatalogSnapshot:
        """Read the file and check its identity (no lock: `os.replace` makes reads whole)."""
        try:
            snapshot = self.file.read()
        except FileNotFoundError:
            raise self._missing() from None
        except CatalogCorrupt as exc:
            raise self._unavailable(
                f"is corrupt ({exc}); restore it from a backup or move it aside — bl931 will "
                "not start an empty catalog over it",
                ErrorClass.NEEDS_HUMAN,
            ) from None
        except OSError as exc:
            raise self._unavailable(
                f"cannot be read: {exc.strerror or exc}", ErrorClass.TRANSIENT
            ) from None
        self._check_identity(snapshot)
        return snapshot

    def _check_identity(self, snapshot: CatalogSnapshot) -> None:
        expected = self._expected_id
        if expected is None or snapshot.catalog_id == expected:
            return
        if snapshot.catalog_id is None:
            found = "carries no catalog identity"
        else:
            found = f"is catalog {snapshot.catalog_id}"
        raise self._unavailable(
            f"{found}, not catalog {expected} that the state store knows: another catalog is "
            "at that path (a different volume mounted, or a file put back from elsewhere). "
            "Restore the right file, or check this one and run `bl931tui --init-catalog`",
            ErrorClass.NEEDS_HUMAN,
        )

    def _entries(self) -> Mapping[str, DocEntry]:
        """The index of the file as it is on disk now (read again if it changed)."""
        if self._refusal is not None:
            raise self._unavailable(self._refusal, ErrorClass.NEEDS_HUMAN)
        try:
            stamp = self.file.stamp()
        except OSError as exc:
            raise self._unavailable(
                f"cannot be read: {exc.strerror or exc}", ErrorClass.TRANSIENT
            ) from None
        if stamp is None:
            self._snapshot = None
            if not self._missing_is_fresh:
                raise self._missing()
            return NO_ENTRIES
        if self._snapshot is None or self._snapshot.stamp != stamp:
            self._snapshot = self._read()
            log.debug(
                "local catalog %s: %d datasets indexed", self.path, len(self._snapshot.entries)
            )
        return self._snapshot.entries

    def _endpoints(self, scan_id: str, entries: Mapping[str, DocEntry]) -> frozenset[str] | None:
        """The endpoints the scan's document records, pending changes applied (None: none)."""
        entry = entries.get(scan_id)
        change = self._pending.get(scan_id)
        if change is None:
            return None if entry is None else entry.endpoints
        if entry is None:
            return recorded_endpoints(change.document)
        if change.locations is None:
            return entry.endpoints
        return frozenset(loc.endpoint for loc in change.locations)

    def _document(self, scan_id: str) -> dict[str, Any] | None:
        """The scan's document as on disk now with its pending change applied (None: none)."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            entry = self._entries().get(scan_id)
            change = self._pending.get(scan_id)
            if entry is None:
                return None if change is None else change.document
            assert self._snapshot is not None
            try:
                with self.file.opened(self._snapshot) as handle:
                    found = CatalogFile.document(handle, scan_id, entry)
            except (CatalogRaced, FileNotFoundError):
                self._snapshot = None  # replaced or rewritten since indexed: index it again
                continue
            except OSError as exc:
                raise self._unavailable(
                    f"cannot be read: {exc.strerror or exc}", ErrorClass.TRANSIENT
                ) from None
            return found if change is None else self._changed(found, change)
        raise self._unavailable(
            f"kept changing while being read ({MAX_WRITE_ATTEMPTS} attempts)", ErrorClass.TRANSIENT
        )

    def _merge_pending(self, scan_id: str, found: dict[str, Any] | None) -> dict[str, Any]:
        return self._changed(found, self._pending[scan_id])

    def _changed(self, found: dict[str, Any] | None, change: _Change) -> dict[str, Any]:
        if found is None:
            return change.document
        if change.locations is None:
            return found
        return _with_locations(found, change.locations, self.config, change.at)

    @property
    def _dirty(self) -> bool:
        return bool(self._pending)

    def has_pending(self) -> bool:
        """Whether changes wait for `flush()`."""
        with self._lock:
            return bool(self._pending)

    # ---- writing ----------------------------------------------------------------------------

    def _read_for_write(self) -> CatalogSnapshot | None:
        """Under the write lock: the file read afresh (None if there is none)."""
        try:
            return self.file.read()
        except FileNotFoundError:
            return None
        except CatalogCorrupt as exc:
            raise self._unavailable(
                f"is corrupt ({exc}); nothing was written", ErrorClass.NEEDS_HUMAN
            ) from None

    def flush(self) -> None:
        """Write the pending changes, merged into the file as it is now (compare-and-swap).

        Changes that cannot be written stay pending (the next flush tries again).

        Raises:
            CatalogUnavailable: the file is missing, not this catalog, or cannot be written
                (the file on disk is left as it was).
        """
        with self._lock:
            if not self._pending:
                return
            if self._refusal is not None:
                raise self._unavailable(self._refusal, ErrorClass.NEEDS_HUMAN)
            if not self.path.is_file():  # follows a symlink: a dangling one is missing too
                raise self._missing()  # not even the lock file is created on a bare mount point
            for _ in range(MAX_WRITE_ATTEMPTS):
                try:
                    with self.file.locked():
                        current = self._read_for_write()
                        if current is None:
                            raise self._missing()
                        self._check_identity(current)
                        identity = {**current.identity, "generation": current.generation + 1}
                        written = self.file.replace(
                            current, self._pending.keys(), self._merge_pending, identity
                        )
                except CatalogRaced:
                    log.warning(
                        "local catalog %s changed while being written; merging again", self.path
                    )
                    continue
                except FileNotFoundError:
                    raise self._missing() from None
                except OSError as exc:
                    raise self._unavailable(
                        f"cannot be written: {exc.strerror or exc}", ErrorClass.TRANSIENT
                    ) from None
                self._snapshot = written
                self._pending.clear()
                log.debug(
                    "local catalog %s: generation %d, %d datasets written",
                    self.path,
                    written.generation,
                    len(written.entries),
                )
                return
            raise self._unavailable(
                f"kept changing while being written ({MAX_WRITE_ATTEMPTS} attempts): another "
                "program rewrites it without bl931's lock",
                ErrorClass.TRANSIENT,
            )

    # ---- the Catalog protocol ---------------------------------------------------------------

    def observe(self, scans: Collection[str]) -> CatalogView:
        """Registered scans among `scans` and the endpoints recorded for each.

        Raises:
            CatalogUnavailable: the file is missing, not this catalog, unreadable or corrupt.
        """
        with self._lock:
            entries = self._entries()
            locations = {}
            for scan_id in set(scans):
                endpoints = self._endpoints(scan_id, entries)
                if endpoints is not None:
                    locations[scan_id] = endpoints
        return CatalogView(enabled=True, locations=locations)

    def register(self, scan: Scan, locations: Sequence[Location]) -> str:
        """Record the scan's dataset; an existing one is adopted (and its locations refreshed)."""
        with self._lock:
            existing = self._document(scan.id)
            now = to_iso(self._clock())
            if existing is not None:
                log.debug("local catalog: %s already registered as %s", scan.id, existing["pid"])
                if locations and recorded_endpoints(existing) != {x.endpoint for x in locations}:
                    self._stage(scan.id, existing, tuple(locations), now)
                return str(existing["pid"])
            doc = local_document(
                scan, locations, self.config, beamline=self.beamline, template=self._template
            )
            doc["createdAt"] = doc["updatedAt"] = now
            # Merged into a document another writer added meanwhile, these locations win.
            self._pending[scan.id] = _Change(doc, tuple(locations) or None, now)
            log.info("local catalog: registered %s as %s", scan.id, doc["pid"])
            return str(doc["pid"])

    def update_locations(self, scan: Scan, locations: Sequence[Location]) -> None:
        """Record the scan's current locations and lifecycle.

        Raises:
            TerminalError: the scan was never registered.
        """
        with self._lock:
            existing = self._document(scan.id)
            if existing is None:
                pid = dataset_pid(scan.id, prefix=self.config.pid_prefix, beamline=self.beamline)
                raise TerminalError(f"{scan.id}: not registered in the local catalog ({pid})")
            self._stage(scan.id, existing, tuple(locations), to_iso(self._clock()))

    def _stage(
        self, scan_id: str, existing: dict[str, Any], locations: tuple[Location, ...], at: str
    ) -> None:
        updated = _with_locations(existing, locations, self.config, at)
        self._pending[scan_id] = _Change(updated, locations, at)
        log.info(
            "local catalog: %s now at %s",
            scan_id,
            ", ".join(loc.endpoint for loc in locations) or "no location",
        )

    # ---- reading for back-fill and the TUI ----------------------------------------------------

    def documents(self) -> Iterator[dict[str, Any]]:
        """Every dataset document, in scan-id order: a snapshot, safe while the engine writes.

        The documents are read one at a time from the file as it was at the first `next()` (its
        open handle keeps that file readable after a write replaces it); never all at once.

        Raises:
            CatalogUnavailable: the file is missing, unreadable or corrupt, or was rewritten in
                place (not replaced) while being read.
        """
        with self._lock:
            entries, handle = self._opened_entries()
            pending = dict(self._pending)
            order = sorted(entries.keys() | pending.keys())
        try:
            for scan_id in order:
                entry = entries.get(scan_id)
                change = pending.get(scan_id)
                found = None
                if entry is not None and handle is not None:
                    found = CatalogFile.document(handle, scan_id, entry)
                if change is not None:
                    yield self._changed(found, change)
                elif found is not None:
                    yield found
        except CatalogRaced:
            raise self._unavailable(
                "was rewritten in place while its documents were being read; try again",
                ErrorClass.TRANSIENT,
            ) from None
        finally:
            if handle is not None:
                handle.close()

    def _opened_entries(self) -> tuple[Mapping[str, DocEntry], BinaryIO | None]:
        """The current index and the very file it indexes, open (None: no file, fresh)."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            entries = self._entries()
            if self._snapshot is None:
                return entries, None
            try:
                handle = open(self.path, "rb")  # noqa: SIM115 (closed by the caller)
            except FileNotFoundError:
                self._snapshot = None
                continue
            except OSError as exc:
                raise self._unavailable(
                    f"cannot be read: {exc.strerror or exc}", ErrorClass.TRANSIENT
                ) from None
            if FileStamp.of(os.fstat(handle.fileno())) == self._snapshot.stamp:
                return entries, handle
            handle.close()
            self._snapshot = None
        raise self._unavailable(
            f"kept changing while being read ({MAX_WRITE_ATTEMPTS} attempts)", ErrorClass.TRANSIENT
        )

    def document(self, scan_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._document(scan_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries().keys() | self._pending.keys())


def _unchanged(scan_id: str, found: dict[str, Any] | None) -> dict[str, Any]:
    raise AssertionError(f"{scan_id}: no change was staged")


def _with_locations(
    existing: Mapping[str, Any], locations: Sequence[Location], config: CatalogConfig, at: str
) -> dict[str, Any]:
    """The document with these locations and lifecycle (a new dict: documents are replaced,
    never mutated, so `documents()` snapshots stay consistent)."""
    metadata = dict(existing["scientificMetadata"])
    metadata["locations"] = [location_entry(loc) for loc in locations]
    lifecycle = {
        **existing.get("datasetlifecycle", {}),
        **lifecycle_body(locations, config),
    }
    return {
        **existing,
        "scientificMetadata": metadata,
        "datasetlifecycle": lifecycle,
        "updatedAt": at,
    }

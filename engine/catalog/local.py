"""The embedded catalog: SciCat-shaped dataset documents in one JSON file (TinyDB's format).

Offline-first: a beamline can run with this catalog before its SciCat ingest exists, and later
back-fill SciCat from these documents (`engine.catalog.backfill`), because both catalogs keep the
same documents (`engine.catalog.dataset`).

Why not TinyDB's own `JSONStorage`: it rewrites the file in place on every write, so a crash
mid-write leaves a truncated or silently wrong file, and each write re-serialises everything.
Here the documents live in memory and `flush()` writes them once per pass, atomically (temporary
file in the same folder, fsync, `os.replace`, fsync of the folder). The file stays in TinyDB's
layout (`{"datasets": {"1": {...}, ...}}`) so `TinyDB(path).table("datasets")` can read it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.catalog.base import Location
from engine.catalog.dataset import (
    compile_path_template,
    dataset_pid,
    lifecycle_body,
    local_document,
    location_entry,
    recorded_endpoints,
    scan_id_of,
    to_iso,
)
from engine.clock import SYSTEM_CLOCK
from engine.config import CatalogConfig
from engine.errors import CatalogUnavailable, TerminalError
from engine.model import CatalogView, ErrorClass, Scan

log = logging.getLogger(__name__)

TABLE = "datasets"


class LocalCatalog:
    """A `Catalog` kept in memory and written atomically to one file per pass.

    The file is read lazily on first use, so a corrupt file surfaces as `CatalogUnavailable` in the
    pass that needs it (the reconciler then blocks deletes) instead of crashing start-up; it is
    retried on every call and never replaced by an empty catalog.

    Thread-safe for one writer (the reconciler) and readers (the TUI via `documents()`).
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
        self.path = Path(path).expanduser()
        self.config = config
        self.beamline = beamline
        self._clock = clock
        self._template = compile_path_template(config.path_template)
        self._lock = threading.RLock()
        self._docs: dict[str, dict[str, Any]] | None = None  # scan id → document
        self._dirty = False

    # ---- loading and saving -----------------------------------------------------------------

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._docs is not None:
            return self._docs
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            log.info("local catalog %s does not exist yet; starting empty", self.path)
            self._docs = {}
            return self._docs
        except OSError as exc:
            raise CatalogUnavailable(
                f"local catalog {self.path} cannot be read: {exc.strerror or exc}"
            ) from None
        self._docs = self._parse(raw)
        log.debug("local catalog %s: %d datasets loaded", self.path, len(self._docs))
        return self._docs

    def _parse(self, raw: bytes) -> dict[str, dict[str, Any]]:
        def corrupt(why: str) -> CatalogUnavailable:
            return CatalogUnavailable(
                f"local catalog {self.path} is corrupt ({why}); restore it from a backup or move "
                "it aside — bl931 will not start an empty catalog over it",
                error_class=ErrorClass.NEEDS_HUMAN,
            )

        if not raw.strip():
            raise corrupt("the file is empty")
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise corrupt(f"not valid JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get(TABLE, {}), dict):
            raise corrupt(f"expected an object with a {TABLE!r} table")
        docs: dict[str, dict[str, Any]] = {}
        for doc_id, doc in data.get(TABLE, {}).items():
            scan_id = scan_id_of(doc) if isinstance(doc, dict) else None
            if scan_id is None:
                raise corrupt(f"document {doc_id} has no scientificMetadata.scan_id")
            docs[scan_id] = doc
        return docs

    def flush(self) -> None:
        """Write the catalog atomically if anything changed since the last flush.

        Raises:
            CatalogUnavailable: the file could not be written (the old file is left intact).
        """
        with self._lock:
            if self._docs is None or not self._dirty:
                return
            table = {str(i): doc for i, (_, doc) in enumerate(sorted(self._docs.items()), 1)}
            payload = json.dumps({TABLE: table}, ensure_ascii=False, sort_keys=True)
            try:
                self._write_atomically(payload.encode("utf-8"))
            except OSError as exc:
                raise CatalogUnavailable(
                    f"local catalog {self.path} cannot be written: {exc.strerror or exc}"
                ) from None
            self._dirty = False
            log.debug("local catalog %s: %d datasets written", self.path, len(self._docs))

    def _write_atomically(self, data: bytes) -> None:
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # ---- the Catalog protocol ---------------------------------------------------------------

    def observe(self, scans: Collection[str]) -> CatalogView:
        """Registered scans among `scans` and the endpoints recorded for each.

        Raises:
            CatalogUnavailable: the file is unreadable or corrupt.
        """
        with self._lock:
            docs = self._load()
            wanted = scans if isinstance(scans, set | frozenset | dict) else set(scans)
            locations = {
                scan_id: recorded_endpoints(doc)
                for scan_id, doc in docs.items()
                if scan_id in wanted
            }
        return CatalogView(enabled=True, locations=locations)

    def register(self, scan: Scan, locations: Sequence[Location]) -> str:
        """Record the scan's dataset; an existing one is adopted (and its locations refreshed)."""
        with self._lock:
            docs = self._load()
            existing = docs.get(scan.id)
            if existing is not None:
                log.debug("local catalog: %s already registered as %s", scan.id, existing["pid"])
                if locations and recorded_endpoints(existing) != {x.endpoint for x in locations}:
                    self._set_locations(scan.id, existing, locations)
                return str(existing["pid"])
            doc = local_document(
                scan, locations, self.config, beamline=self.beamline, template=self._template
            )
            now = to_iso(self._clock())
            doc["createdAt"] = doc["updatedAt"] = now
            docs[scan.id] = doc
            self._dirty = True
            log.info("local catalog: registered %s as %s", scan.id, doc["pid"])
            return str(doc["pid"])

    def update_locations(self, scan: Scan, locations: Sequence[Location]) -> None:
        """Record the scan's current locations and lifecycle.

        Raises:
            TerminalError: the scan was never registered.
        """
        with self._lock:
            docs = self._load()
            existing = docs.get(scan.id)
            if existing is None:
                pid = dataset_pid(scan.id, prefix=self.config.pid_prefix, beamline=self.beamline)
                raise TerminalError(f"{scan.id}: not registered in the local catalog ({pid})")
            self._set_locations(scan.id, existing, locations)

    def _set_locations(
        self, scan_id: str, existing: dict[str, Any], locations: Sequence[Location]
    ) -> None:
        # Documents are replaced, never mutated, so `documents()` snapshots stay consistent.
        metadata = dict(existing["scientificMetadata"])
        metadata["locations"] = [location_entry(loc) for loc in locations]
        lifecycle = {
            **existing.get("datasetlifecycle", {}),
            **lifecycle_body(locations, self.config),
        }
        updated = {
            **existing,
            "scientificMetadata": metadata,
            "datasetlifecycle": lifecycle,
            "updatedAt": to_iso(self._clock()),
        }
        assert self._docs is not None
        self._docs[scan_id] = updated
        self._dirty = True
        log.info(
            "local catalog: %s now at %s",
            scan_id,
            ", ".join(loc.endpoint for loc in locations) or "no location",
        )

    # ---- reading for back-fill and the TUI ----------------------------------------------------

    def documents(self) -> Iterator[dict[str, Any]]:
        """Every dataset document, in scan-id order (a snapshot; safe while the engine writes).

        Raises:
            CatalogUnavailable: the file is unreadable or corrupt.
        """
        with self._lock:
            snapshot = [doc for _, doc in sorted(self._load().items())]
        yield from snapshot

    def document(self, scan_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._load().get(scan_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._load())

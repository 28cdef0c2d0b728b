"""The inventory step of an observation: new and changed scans at the inventory endpoint.

A local inventory endpoint is walked (`engine.inventory.walk`); one seen only through Globus is
listed with the two-snapshot stability rule (`engine.inventory.listing`). The walk's listing of
a local inventory endpoint is lent to the observer as that endpoint's listing in the same pass,
so a 100k-file tree is walked once per pass, not twice. Files a prune left in a scan folder are
not the scan (`engine.foreign`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from pathlib import Path

from engine.backends import Backends
from engine.config import Config
from engine.foreign import ForeignPaths, WithoutForeign, without_foreign
from engine.incremental.view import IncrementalView
from engine.inventory.listing import ListingInventory
from engine.inventory.walk import InventoryResult, walk_inventory
from engine.layout import ScanLayout
from engine.model import Scan
from engine.remnants import remnant_index
from engine.scan_hints import declared_complete as hinted_complete
from engine.storage.base import ScanListing
from engine.storage.local import LocalStorage
from engine.store import StateStore


class InventoryReader:
    def __init__(
        self, config: Config, store: StateStore, backends: Backends, layout: ScanLayout
    ) -> None:
        self.config = config
        self.store = store
        self.backends = backends
        self.layout = layout
        # Scan id → listing signature of scans the live watcher declared complete (the service
        # sets it when it runs a watcher); the walk accepts those before `quiet_seconds`.
        self.completion_hint: Callable[[], Mapping[str, str]] | None = None
        self._listing_inventory = ListingInventory()
        # The service's steady passes reuse unchanged folders (engine/incremental); None (the
        # default, `--once`, `--dry-run`): every pass observes everything.
        self.incremental: IncrementalView | None = None
        # The last walk's listing of a local inventory endpoint (None: list it as any other).
        self.listing: Mapping[str, ScanListing] | None = None

    def read(
        self, now: datetime, known: Mapping[str, Scan], foreign: ForeignPaths
    ) -> InventoryResult | None:
        """The inventory endpoint's scans (None when nothing can read it)."""
        self.listing = None
        name = self.config.inventory.endpoint
        root = self.backends.local_roots.get(name)
        storage = self.backends.storages.get(name)
        left_by_prunes = foreign.get(name, {})
        if root is None:
            if storage is None:
                return None
            # Seen only through Globus: listed, with the two-snapshot stability rule.
            return self._listing_inventory.inventory(
                WithoutForeign(storage, left_by_prunes),
                self.layout,
                quiet_seconds=self.config.inventory.quiet_seconds,
                now=now,
                known=known,
            )
        local = _ListedOnce(
            name, storage.root if isinstance(storage, LocalStorage) else root, left_by_prunes
        )
        local.directory_cache = getattr(storage, "directory_cache", None)  # the folder cache
        result = walk_inventory(
            local,
            self.layout,
            algorithm=self.config.inventory.checksum,
            quiet_seconds=self.config.inventory.quiet_seconds,
            now=now,
            known=known,
            done_marker=self.config.inventory.done_marker,
            declared_complete=hinted_complete(self.store, self.completion_hint),
            remnants=remnant_index(self.store, name),
            steady=self.incremental.walk_memo if self.incremental else None,
        )
        if isinstance(storage, LocalStorage):
            # Only a local endpoint's own listing stands in for it; a Globus endpoint mounted
            # here is still observed through Globus.
            self.listing = local.listing
        return result


class _ListedOnce(LocalStorage):
    """The inventory endpoint for one walk, remembering the full listing the walk made
    (without the files prunes left behind)."""

    def __init__(self, name: str, root: Path, foreign: Mapping[str, frozenset[str]]) -> None:
        super().__init__(name, root)
        self.listing: Mapping[str, ScanListing] | None = None
        self._foreign = foreign

    def list_scans(
        self, layout: ScanLayout, wanted: Collection[str] | None = None
    ) -> Mapping[str, ScanListing]:
        if self.listing is None:
            self.listing = without_foreign(super().list_scans(layout, wanted), self._foreign)
        return self.listing

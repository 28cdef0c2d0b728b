"""When a pass may use the incremental view, and the per-endpoint folder caches it uses.

Only the long-running service turns the view on (`Reconciler.incremental`); `--dry-run` and
`--reconcile --once` build a fresh reconciler without it and so observe everything. With it on,
a pass is a *full walk* (every folder and file read again, caches refilled) when it is the
first pass, when `[safety] full_walk_seconds` have passed since the last full walk (by the
reconciler's clock), or when the clock went backwards; other passes reuse unchanged folders.
Globus endpoints are listed for what is not settled plus a rolling slice (`remote_slice`), on
a schedule of their own (`[safety] reverify_days`), not on the full walk's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from engine.incremental.dirs import DirectoryCache
from engine.incremental.gc_policy import GcPolicy
from engine.incremental.remote_slice import RemoteSlice
from engine.inventory.walk import SteadyMemo
from engine.model import Plan
from engine.storage.local import LocalStorage


class IncrementalView:
    def __init__(
        self, full_walk_seconds: float, *, freeze_gc: bool = True, reverify_days: float = 7.0
    ) -> None:
        self.full_walk_seconds = full_walk_seconds
        # Which scans each pass lists on Globus endpoints (`[safety] reverify_days`).
        self.remote = RemoteSlice(reverify_days)
        self.caches: dict[str, DirectoryCache] = {}
        self.last_full: datetime | None = None
        self.full = True  # whether the current pass is a full walk
        self.gc = GcPolicy() if freeze_gc else None
        # The inventory walk's unchanged scans (`walk_inventory(steady=…)`).
        self.walk_memo = SteadyMemo()

    def new_pass(self) -> None:
        """Before any pass: not a full walk unless its observation decides so (`begin_pass`).
        A quiet or delta pass never observes, and must not carry the last full walk's flag
        into the GC policy (a full collection of every object after each such pass)."""
        self.full = False

    def begin_pass(self, now: datetime, storages: Mapping[str, object]) -> bool:
        """Decide whether this pass is a full walk and hand each local endpoint its cache.
        Returns whether it is a full walk."""
        due = self.full_walk_due(now)
        self.full = due
        if due:
            self.last_full = now
            for cache in self.caches.values():
                cache.clear()
            self.walk_memo.clear()
        for name, storage in storages.items():
            if isinstance(storage, LocalStorage):
                storage.directory_cache = self.cache(name)
        return due

    def full_walk_due(self, now: datetime) -> bool:
        """Whether a pass starting at `now` is a full walk (changes nothing)."""
        if self.last_full is None or now < self.last_full:
            return True
        return (now - self.last_full).total_seconds() >= self.full_walk_seconds

    def cache(self, endpoint: str) -> DirectoryCache:
        cache = self.caches.get(endpoint)
        if cache is None:
            cache = self.caches[endpoint] = DirectoryCache()
        return cache

    def end_pass(self, plan: Plan | None = None) -> None:
        """After a pass: its plan says which scans are not settled (listed again next pass)."""
        if plan is not None:
            self.remote.end(plan)
        for cache in self.caches.values():
            cache.fresh = set()  # this pass's alone (a full walk's: every scan, 3 × 4 MB at 100k)
        if self.gc is not None:
            self.gc.after_pass(full=self.full)


def detach(storages: Mapping[str, object]) -> None:
    """Observe everything: no local endpoint lists through a cache (an audit, a dry run)."""
    for storage in storages.values():
        if isinstance(storage, LocalStorage):
            storage.directory_cache = None


def prepare_pass(
    view: IncrementalView | None, now: datetime, storages: Mapping[str, object], *, service: bool
) -> None:
    """Before observing: the view's caches for a service pass, none for anything else."""
    if view is not None and service:
        view.begin_pass(now, storages)
    else:
        detach(storages)

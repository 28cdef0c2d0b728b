"""The delta pass: new scans on the inventory endpoint, and nothing else changed.

When the last service pass settled (`engine.incremental.quiet`) and everything a quiet pass
checks is unchanged *except* folders — new scans landed on the inventory endpoint — the pass
observes, records and plans only the new scans and keeps the settled pass's verdicts and plan
for every other scan, instead of assessing and planning 100,000 scans to find 1,000 new ones.

It applies only when the folder caches prove the change is exactly that (`DirectoryCache.fresh`:
the scan ids listed from folders read again; every other scan's listing is the very object it
was): at every endpoint, every scan listed before is still listed, with the very same files
wherever its folder was read again; the only new ids are on the inventory endpoint, and none of them was ever known
(a name used again after a prune, or a scan rewritten, takes the full pass). Anything else — an
unmount, a listing error, a new file on another endpoint — falls back to the full pass, which
observes everything. A scan's plan depends only on its own facts and on endpoint-wide facts
(which endpoints are known, the missing fraction), and those are the settled pass's, so the
new scans planned on their own get exactly what a full pass would plan for them; the settled
plan had no action, so the merged plan's actions are the new scans' alone.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from operator import attrgetter
from pathlib import Path

from engine.catalog.base import Catalog
from engine.config import Config
from engine.errors import Bl931Error
from engine.foreign import foreign_paths, without_foreign
from engine.incremental.quiet import Settled
from engine.inventory.walk import walk_inventory
from engine.layout import ScanLayout
from engine.model import EndpointObservation, Plan
from engine.observe.assess import Assessed, assess
from engine.observe.observation import Observation
from engine.pass_report import count_levels
from engine.policy import Policy
from engine.remnants import remnant_index
from engine.scan_hints import declared_complete
from engine.storage.base import ScanListing
from engine.storage.local import LocalStorage
from engine.store import StateStore


@dataclass
class Delta:
    """What a delta pass saw: `seen` (every scan, the new ones' verdicts only, for recording
    and executing) and `new` (the new scans alone, for planning)."""

    seen: Observation
    new: Observation
    levels: dict[tuple[str, str], int]


def observe_delta(
    base: Settled,
    now: datetime,
    *,
    config: Config,
    store: StateStore,
    storages: Mapping[str, object],
    policy: Policy,
    layout: ScanLayout,
    hint: Mapping[str, str],
    catalog: Catalog | None,
) -> Delta | None:
    """The delta observation, or None if the change is not only new scans (full pass)."""
    inventory = policy.inventory_endpoint
    foreign = foreign_paths(store.foreign_files())
    listings: dict[str, dict[str, ScanListing]] = {}
    new_ids: set[str] = set()
    roots: dict[str, Path] = {}
    for name in policy.endpoints:
        storage = storages.get(name)
        if not isinstance(storage, LocalStorage) or storage.directory_cache is None:
            return None
        roots[name] = Path(storage.root)
        cache = storage.directory_cache
        try:
            raw = cache.list_scans(storage, layout)
        except Bl931Error:
            return None
        if name == inventory:
            listing = without_foreign(raw, foreign.get(name))
        else:
            listing = without_foreign(raw, foreign.get(name), base.seen.scans)
        before = base.seen.listings.get(name)
        if before is None or not before.keys() <= listing.keys():
            return None  # a scan vanished here (or the endpoint was not listed)
        for scan_id in cache.fresh:
            now_listed, was = listing.get(scan_id), before.get(scan_id)
            if now_listed is None:
                continue
            if was is not None:
                if was.files != now_listed.files:
                    return None  # a replica changed: the full pass judges it
            elif name != inventory or scan_id in base.seen.scans:
                return None  # new files elsewhere, or a known name back on the inventory
            else:
                new_ids.add(scan_id)
        listings[name] = listing
    # A new scan already listed on another endpoint (bytes placed there before bl931 knew the
    # scan: a full pass re-hashes and may adopt them, or plans a replace that needs approval),
    # or already in the catalog (another writer registered it): the full pass judges it.
    for name, listing in listings.items():
        if name != inventory and not new_ids.isdisjoint(listing):
            return None
    if new_ids and catalog is not None:
        try:
            if catalog.observe(new_ids).locations:
                return None
        except Bl931Error:
            return None
    sub = {scan_id: listings[inventory][scan_id] for scan_id in sorted(new_ids)}
    walked = walk_inventory(
        _Listed(inventory, roots[inventory], sub),
        layout,
        algorithm=config.inventory.checksum,
        quiet_seconds=config.inventory.quiet_seconds,
        now=now,
        known=base.seen.scans,
        done_marker=config.inventory.done_marker,
        declared_complete=declared_complete(store, lambda: hint),
        remnants=remnant_index(store, inventory),
    )
    found = walked.scans
    assessed = {
        name: {
            scan_id: assess(
                scan, name, listings[name][scan_id], None, is_inventory=name == inventory
            )
            for scan_id, scan in found.items()
            if scan_id in listings[name]
        }
        for name in policy.endpoints
    }
    observations = {
        name: _with(obs, assessed.get(name, {})) for name, obs in base.seen.observations.items()
    }
    scans = dict(base.seen.scans)
    scans.update(found)
    seen = Observation(
        scans,
        observations,
        listings,
        assessed,
        base.seen.catalog,
        inventory=walked,
        new_scans=[found[scan_id] for scan_id in sorted(found)],
        stored_replicas={name: {} for name in observations},  # only new rows are written
        identity=base.seen.identity,
        storages=base.seen.storages,
    )
    new = replace(
        seen,
        scans=dict(sorted(found.items())),
        listings={inventory: {s: sub[s] for s in found}},
        new_scans=[],
    )
    replicas = (
        (name, (v.replica for v in verdicts.values())) for name, verdicts in assessed.items()
    )
    return Delta(seen, new, count_levels(replicas, base.levels))


def merge_plans(settled: Plan, new: Plan, now: datetime) -> Plan:
    """The settled plan (no actions) with the new scans' plan added, in the order a full plan
    lists them: by scan id (a settled plan's blocked entries are all per scan, in id order —
    the per-pass cap blocks only beside admitted deletes, which a settled plan has none of)."""
    blocked = settled.blocked + new.blocked
    if settled.blocked and new.blocked and new.blocked[0].scan < settled.blocked[-1].scan:
        blocked = tuple(sorted(blocked, key=attrgetter("scan")))  # stable: per-scan order kept
    flagged = settled.export_controlled + new.export_controlled
    return replace(new, as_of=now, blocked=blocked, export_controlled=tuple(sorted(flagged)))


def _with(obs: EndpointObservation, assessed: Mapping[str, Assessed]) -> EndpointObservation:
    if not assessed:
        return obs
    replicas = dict(obs.replicas)
    replicas.update((scan_id, a.replica) for scan_id, a in assessed.items())
    return replace(obs, replicas=replicas)


class _Listed(LocalStorage):
    """The inventory endpoint as the walk sees it in a delta pass: the new scans only."""

    def __init__(self, name: str, root: Path, listing: dict[str, ScanListing]) -> None:
        super().__init__(name, root)
        self._listing = listing

    def list_scans(
        self, layout: ScanLayout, wanted: Collection[str] | None = None
    ) -> dict[str, ScanListing]:
        return self._listing


__all__ = ["Delta", "merge_plans", "observe_delta"]

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

from engine.blocked_entries import joined
from engine.catalog.base import Catalog
from engine.config import Config
from engine.errors import Bl931Error
from engine.foreign import foreign_paths, without_foreign
from engine.incremental.overlay import Overlay
from engine.incremental.quiet import Settled
from engine.inventory.walk import walk_inventory
from engine.layout import ScanLayout
from engine.model import EndpointObservation, Plan
from engine.observe.assess import Assessed, assess
from engine.observe.observation import Observation
from engine.observe.observer import Observer
from engine.observe.record import record_new_scans
from engine.pass_report import count_levels
from engine.policy import Policy
from engine.remnants import remnant_index
from engine.scan_hints import declared_complete
from engine.storage.base import ScanListing
from engine.storage.local import LocalStorage
from engine.store import ReplicaRow, StateStore


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
    listings: dict[str, Mapping[str, ScanListing]] = {}
    new_ids: set[str] = set()
    roots: dict[str, Path] = {}
    for name in policy.endpoints:
        storage = storages.get(name)
        if not isinstance(storage, LocalStorage) or storage.directory_cache is None:
            return None
        before = base.seen.listings.get(name)
        if before is None:
            return None  # the endpoint was not listed
        roots[name] = Path(storage.root)
        try:
            changes = storage.directory_cache.changes(storage, layout)
        except Bl931Error:
            return None
        if changes is None or changes.gone:
            return None  # a scan vanished here (or there was no listing before)
        if changes.everything is not None and not before.keys() <= changes.everything.keys():
            return None  # scans are folders: the whole listing compared (see `changes`)
        if name == inventory:
            fresh = without_foreign(changes.listed, foreign.get(name))
        else:
            fresh = without_foreign(changes.listed, foreign.get(name), base.seen.scans)
        if len(fresh) != len(changes.listed):
            return None  # foreign paths left a scan of a folder read again empty
        for scan_id, now_listed in fresh.items():
            was = before.get(scan_id)
            if was is not None:
                if was.files != now_listed.files:
                    return None  # a replica changed: the full pass judges it
            elif name != inventory or scan_id in base.seen.scans:
                return None  # new files elsewhere, or a known name back on the inventory
            else:
                new_ids.add(scan_id)
        listings[name] = Overlay(before, {s: fresh[s] for s in fresh if s not in before})
    # A new scan already listed on another endpoint (bytes placed there before bl931 knew the
    # scan: a full pass re-hashes and may adopt them, or plans a replace that needs approval),
    # or already in the catalog (another writer registered it): the full pass judges it.
    for name, listing in listings.items():
        if name != inventory and any(scan_id in listing for scan_id in new_ids):
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
    seen = Observation(
        Overlay(base.seen.scans, found),  # type: ignore[arg-type]  # read only, as a dict is
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
    # The new scans are planned with the new replicas alone: a scan's plan reads only its own
    # replicas, and the endpoint-wide facts are the settled pass's — every endpoint known, no
    # replica missing (every scan listed before still is, and the settled pass raised no
    # missing-fraction alert), so no endpoint's missing fraction can be over the limit now.
    new = replace(
        seen,
        scans=dict(sorted(found.items())),
        observations={
            name: replace(
                obs,
                replicas={s: a.replica for s, a in assessed.get(name, {}).items()},
                previously_present=frozenset(),
            )
            for name, obs in base.seen.observations.items()
        },
        listings={inventory: {s: sub[s] for s in found}},
        new_scans=[],
    )
    replicas = (
        (name, (v.replica for v in verdicts.values())) for name, verdicts in assessed.items()
    )
    return Delta(seen, new, count_levels(replicas, base.levels))


def record_delta(
    store: StateStore, policy: Policy, observer: Observer, seen: Observation, now: datetime
) -> None:
    """What a delta pass writes: `record_observation` without its missing-fraction check (no
    endpoint can be over the limit: see `observe_delta`), which would count every stored
    replica of every endpoint."""
    record_new_scans(store, observer, seen, now)
    for name, assessed in seen.assessed.items():
        store.endpoint_ok(name, now)
        changed = {
            scan_id: ReplicaRow(a.replica.level, a.replica.size, a.replica.files, a.signature, now)
            for scan_id, a in assessed.items()
        }
        store.replace_replicas(name, changed, [])


def merge_plans(settled: Plan, new: Plan, now: datetime) -> Plan:
    """The settled plan (no actions) with the new scans' plan added, in the order a full plan
    lists them: by scan id (a settled plan's blocked entries are all per scan, in id order —
    the per-pass cap blocks only beside admitted deletes, which a settled plan has none of)."""
    blocked = joined(settled.blocked, new.blocked)
    if settled.blocked and new.blocked and new.blocked[0].scan < settled.blocked[-1].scan:
        blocked = joined(sorted(blocked, key=attrgetter("scan")))  # stable: per-scan order kept
    flagged = settled.export_controlled + new.export_controlled
    return replace(new, as_of=now, blocked=blocked, export_controlled=tuple(sorted(flagged)))


def _with(obs: EndpointObservation, assessed: Mapping[str, Assessed]) -> EndpointObservation:
    if not assessed:
        return obs
    return replace(obs, replicas=Overlay(obs.replicas, {s: a.replica for s, a in assessed.items()}))


class _Listed(LocalStorage):
    """The inventory endpoint as the walk sees it in a delta pass: the new scans only."""

    def __init__(self, name: str, root: Path, listing: dict[str, ScanListing]) -> None:
        super().__init__(name, root)
        self._listing = listing

    def list_scans(
        self, layout: ScanLayout, wanted: Collection[str] | None = None
    ) -> dict[str, ScanListing]:
        return self._listing


__all__ = ["Delta", "merge_plans", "observe_delta", "record_delta"]

"""What a pass writes of what it saw: new scans, endpoint health and the replica rows.

Only rows that changed are written (a steady pass writes no replica row). An endpoint whose
listing shows more missing than `[safety] max_missing_fraction` keeps its last good baseline, so
the alert stays until resolved. An endpoint left unlisted because its identity does not hold is
reported as an error and an alert, not as a listing failure; one the circuit breaker held back
is not a new failure either.
"""

from __future__ import annotations

import logging
from datetime import datetime

from engine.catalog.custody import CATALOG
from engine.observe.observation import Observation
from engine.observe.observer import Observer
from engine.policy import Policy
from engine.store import ReplicaRow, StateStore
from engine.store.replicas import replica_mark

# Logged under the reconciler's name, as before the observer had a package of its own.
log = logging.getLogger("engine.reconciler")


def record_observation(
    store: StateStore, policy: Policy, observer: Observer, seen: Observation, now: datetime
) -> None:
    """Persist new scans and what each endpoint showed (keeping the baseline on alerts)."""
    record_new_scans(store, observer, seen, now)
    if seen.catalog.enabled and not seen.catalog.ok:
        log.error(
            "catalog: %s",
            seen.catalog.error,
            extra={"endpoint": CATALOG, "error_class": seen.catalog.error_class.value},
        )
    for name, obs in seen.observations.items():
        if name in seen.unproven:
            continue  # reported as an error and an alert; not a listing failure
        if name in seen.backed_off:
            log.warning(
                "%s: %s",
                name,
                obs.error,
                extra={"endpoint": name, "error_class": "transient", "backed_off": True},
            )
            continue
        if not obs.ok:
            failures = store.endpoint_failed(name, obs.error or "unavailable", now)
            log.error(
                "%s: listing failed (%d in a row): %s",
                name,
                failures,
                obs.error,
                extra={"endpoint": name, "consecutive_failures": failures},
            )
            continue
        store.endpoint_ok(name, now)
        baseline = obs.baseline()
        if baseline and len(obs.missing()) / baseline > policy.max_missing_fraction:
            continue  # keep the last good baseline so the alert stays until resolved
        _record_replicas(store, seen, name, now, obs.listed)
        if obs.listed is None:
            seen.recorded.add(name)


def record_new_scans(
    store: StateStore, observer: Observer, seen: Observation, now: datetime
) -> None:
    """The new scans and their events, in one transaction; the inventory's problems logged."""
    if seen.new_scans:
        with store.transaction():
            store.upsert_scans(seen.new_scans, now)
            store.add_events(
                (
                    now,
                    "info",
                    "scan.inventoried",
                    scan.id,
                    None,
                    f"inventoried version {scan.version}, {scan.file_count} files, "
                    f"{scan.size} bytes",
                    None,
                )
                for scan in seen.new_scans
            )
        observer.remember(seen.new_scans)
    if seen.inventory is not None:
        for problem in seen.inventory.problems:
            log.warning("inventory: %s", problem)


def _record_replicas(
    store: StateStore,
    seen: Observation,
    name: str,
    now: datetime,
    listed: frozenset[str] | None,
) -> None:
    before = seen.stored_replicas.get(name, {})
    current = seen.assessed.get(name, {})
    # Only rows that changed are written: a steady pass writes nothing here.
    changed: dict[str, ReplicaRow] = {}
    for scan_id, assessed in current.items():
        replica = assessed.replica
        if before.get(scan_id) != replica_mark(replica.level, replica.size, assessed.signature):
            changed[scan_id] = ReplicaRow(
                replica.level, replica.size, replica.files, assessed.signature, now
            )
    # A replica the pass did not list (a sliced Globus listing) is not observed, never gone.
    removed = [
        scan_id
        for scan_id in before
        if scan_id not in current and (listed is None or scan_id in listed)
    ]
    store.replace_replicas(name, changed, removed)

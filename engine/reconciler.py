# Over 400 lines: split pending: issue 15 item 3 (observer, breaker, backoff in own modules).
"""`reconcile_once()`: observe → plan → gate → act → record.

The only way work happens. It can be called any number of times and converges: each pass reads
the inventory, every endpoint and the catalog afresh, plans from what it sees (never from what it
remembers doing), runs what is allowed, and records everything in the state store. The dry run
is the same observation and planning with every write switched off.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from engine import tape_legacy, tape_versions
from engine.alert_log import AlertLog
from engine.approvals import require_second_approver
from engine.backends import Backends
from engine.catalog.custody import CATALOG, observe_catalog
from engine.catalog.pid_book import keep_pids_in
from engine.changed_deletes import unverified_alerts
from engine.clock import Clock, as_clock
from engine.config import Config
from engine.errors import Bl931Error, EndpointUnavailable
from engine.evidence_identity import StorageIdentities
from engine.executor import Executor
from engine.flight_record import flight_alerts
from engine.foreign import ForeignPaths, WithoutForeign, foreign_paths, without_foreign
from engine.gc_pause import paused_gc
from engine.identity import IdentityCheck
from engine.incremental.view import IncrementalView, prepare_pass
from engine.inventory.listing import ListingInventory
from engine.inventory.walk import InventoryResult, walk_inventory
from engine.layout import ScanLayout
from engine.model import (
    Alert,
    AlertEffect,
    CatalogView,
    ClearedBy,
    EndpointError,
    EndpointObservation,
    ErrorClass,
    Evidence,
    FileStat,
    InFlight,
    Level,
    Plan,
    Scan,
)
from engine.observe import Assessed, assess
from engine.operators import operator_name
from engine.pass_findings import PassFindings
from engine.planner import PlanInput, plan
from engine.policy import Policy
from engine.rehash import Rehasher
from engine.remnants import remnant_index
from engine.retry_holds import keep_holds_in
from engine.scan_hints import declared_complete as hinted_complete
from engine.scan_hints import export_control_for
from engine.state import OPEN_TASK_STATES, SUBMITTED, ReplicaRow, StateStore
from engine.storage import tape_plan
from engine.storage.base import ScanListing
from engine.storage.local import LocalStorage, sweep_temp_files
from engine.storage.same_storage import shared_storage
from engine.storage.tape_identity import tape_identity_checks

log = logging.getLogger(__name__)


def os_user() -> str:
    """The kernel's name for this process's user (never `$USER`: see engine/operators.py)."""
    return operator_name()


@dataclass
class Observation:
    """Everything one pass saw, before planning."""

    scans: dict[str, Scan]
    observations: dict[str, EndpointObservation]
    listings: dict[str, dict[str, ScanListing]]
    assessed: dict[str, dict[str, Assessed]]
    catalog: CatalogView
    errors: list[EndpointError] = field(default_factory=list)
    inventory: InventoryResult | None = None
    new_scans: list[Scan] = field(default_factory=list)
    # Endpoints not listed this pass because their circuit breaker is open (not a new failure).
    backed_off: set[str] = field(default_factory=set)
    # The replicas the store held before this pass (read once, used again when recording).
    stored_replicas: dict[str, dict[str, ReplicaRow]] = field(default_factory=dict)
    # Alerts found while observing (an endpoint whose identity does not hold).
    alerts: list[Alert] = field(default_factory=list)
    # Endpoints not listed because their identity does not hold (a cheap local check: no
    # circuit breaker, so a remounted filesystem is used again at the next pass).
    unproven: frozenset[str] = frozenset()


@dataclass
class PassReport:
    plan: Plan
    started_at: datetime
    finished_at: datetime
    submitted: int = 0
    succeeded: int = 0
    failed: int = 0
    new_scans: int = 0
    # For metrics: the pass's scale and outcomes, so a front end needs no second look at the store.
    scans: int = 0
    endpoints: tuple[str, ...] = ()
    replica_levels: dict[tuple[str, str], int] = field(default_factory=dict)
    action_outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    action_errors: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No error and no standing alert (`--reconcile --once` exits 0). A scan the inventory
        could not take in is reported in the plan's `problems` (the audit exits 1 for it)."""
        return not (self.plan.errors or self.plan.alert_details)

    def summary(self) -> dict[str, int]:
        out = dict(self.plan.summary())
        out.update(
            submitted=self.submitted,
            succeeded=self.succeeded,
            failed=self.failed,
            new_scans=self.new_scans,
            errors=len(self.plan.errors),
        )
        return out


class Reconciler:
    """Owns one pass at a time over one state store and a set of backends."""

    def __init__(
        self,
        config: Config,
        store: StateStore,
        backends: Backends,
        *,
        clock: Clock | Callable[[], datetime] | None = None,
        user: str | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.backends = backends
        self.clock = as_clock(clock)
        self.user = user or os_user()
        self.layout = ScanLayout.from_config(config.inventory)
        self.policy = Policy.from_config(config)
        self.executor = Executor(config, store, backends, self.layout, clock=self.clock)
        self.findings = PassFindings(store)
        keep_pids_in(backends.catalog, store)
        keep_holds_in(backends, store)  # Retry-After waits outlive this process
        backends.attach_store(store)  # tape endpoints keep their bundles in the store
        self._swept = False
        # Scan id → listing signature of scans the live watcher declared complete (the service
        # sets it when it runs a watcher); the walk accepts those before `quiet_seconds`.
        self.completion_hint: Callable[[], Mapping[str, str]] | None = None
        self._listing_inventory = ListingInventory()
        self._rehasher = Rehasher()
        # The walk's listing of the inventory endpoint, reused as that endpoint's observation
        # in the same pass (a 100k-file tree is then walked once per pass, not twice).
        self._inventory_listing: dict[str, ScanListing] | None = None
        # Scans as stored: only this reconciler writes them, so they are read from the store
        # once and kept in step with every upsert (re-read if the row count disagrees).
        self._scans: dict[str, Scan] | None = None
        # endpoint → scan → (listed files, scan, evidence, verdict) of the previous pass.
        self._assessments: dict[str, dict[str, _Assessment]] = {}
        # HOOK(incremental): the service's steady passes reuse unchanged folders; None (the
        # default, `--once`, `--dry-run`): every pass observes everything.
        self.incremental: IncrementalView | None = None

    # ---- observation -------------------------------------------------------------------
    def _inventory(
        self, now: datetime, known: Mapping[str, Scan], foreign: ForeignPaths
    ) -> InventoryResult | None:
        name = self.config.inventory.endpoint
        root = self.backends.local_roots.get(name)
        storage = self.backends.storages.get(name)
        # Files a prune left in a scan folder are not the scan (engine/foreign.py).
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
        local.directory_cache = getattr(storage, "directory_cache", None)  # HOOK(incremental)
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
            steady=self.incremental.walk_memo if self.incremental else None,  # HOOK(incremental)
        )
        if isinstance(storage, LocalStorage):
            # Only a local endpoint's own listing stands in for it; a Globus endpoint mounted
            # here is still observed through Globus.
            self._inventory_listing = local.listing
        return result

    def _assess(
        self,
        name: str,
        scans: Mapping[str, Scan],
        listing: Mapping[str, ScanListing],
        evidence: Mapping[str, Evidence],
        elsewhere: Mapping[str, Evidence],
    ) -> dict[str, Assessed]:
        """`assess_endpoint`, reusing last pass's verdict for every replica whose inputs are
        the very same (equal listing, identical scan and evidence objects — the store and the
        reconciler keep those across passes until they change), as most are in a steady state.
        `elsewhere` is evidence taken on other storage than the endpoint's current one.
        """
        previous = self._assessments.get(name, {})
        current: dict[str, _Assessment] = {}
        out: dict[str, Assessed] = {}
        is_inventory = name == self.policy.inventory_endpoint
        for scan_id, listed in listing.items():
            scan = scans.get(scan_id)
            if scan is None:
                continue
            proof = evidence.get(scan_id)
            moved = elsewhere.get(scan_id) if proof is None else None
            # Evidence from other storage is never reused: the same object may have counted
            # here last pass (a remounted local root is another device).
            key: object = proof if moved is None else (moved,)
            before = previous.get(scan_id)
            if (
                before is not None
                and before[1] is scan
                and before[2] is key
                and before[0] == listed.files
            ):
                verdict = before[3]
            else:
                verdict = assess(
                    scan, name, listed, proof, is_inventory=is_inventory, elsewhere=moved
                )
            current[scan_id] = (listed.files, scan, key, verdict)
            out[scan_id] = verdict
        self._assessments[name] = current
        return out

    def _stored_scans(self) -> dict[str, Scan]:
        """The stored scans (a copy the caller may extend), from memory when still current."""
        if self._scans is None or len(self._scans) != self.store.count_scans():
            self._scans = self.store.load_scans()
        return dict(self._scans)

    def _backoff_until(self, health: Mapping[str, Any] | None) -> datetime | None:
        """When an endpoint that keeps failing may be listed again (None: list it now).

        After `endpoint_backoff_after` consecutive failures the endpoint is skipped for
        `endpoint_backoff_seconds`, doubling with each further failure: a dead endpoint costs
        one timeout per interval instead of one per pass, and the others keep working.
        """
        safety = self.config.safety
        if not health:
            return None
        failures = int(health.get("consecutive_failures") or 0)
        last_error_at = health.get("last_error_at")
        if failures < safety.endpoint_backoff_after or last_error_at is None:
            return None
        exponent = min(failures - safety.endpoint_backoff_after, 30)
        delay = min(
            safety.endpoint_backoff_max_seconds, safety.endpoint_backoff_seconds * 2**exponent
        )
        until: datetime = last_error_at + timedelta(seconds=delay)
        return until

    def observe(
        self, now: datetime, *, circuit_breaker: bool = False, write: bool = False
    ) -> Observation:
        """Read the inventory, every endpoint and the catalog.

        Writes nothing, except with `write`: on a state store created by this process, local
        endpoints get their identity markers (see `engine.identity`) and the local catalog its
        identity; registrations whose loss an operator accepted are forgotten
        (`engine.catalog.custody`).

        With `circuit_breaker` (the service's passes; never the audit, which an operator runs
        to see the truth right now), an endpoint in back-off is not listed: it is reported
        unknown with its last error.
        """
        errors: list[EndpointError] = []
        alerts: list[Alert] = []
        backed_off: set[str] = set()
        prepare_pass(self.incremental, now, self.backends.storages, service=circuit_breaker)
        scans = self._stored_scans()
        self._inventory_listing = None
        inventory: InventoryResult | None = None
        new_scans: list[Scan] = []
        identity = IdentityCheck(self.config, self.store, may_initialise=write)
        self.executor.identity = identity
        unproven = self._check_identities(identity, now, errors, alerts)
        # After the markers: a local endpoint's storage identity includes its marker.
        storages = StorageIdentities(self.config, self.store)
        if write:
            storages.record(now, unproven=unproven)
        self.executor.storages = storages
        foreign = foreign_paths(self.store.foreign_files())
        try:
            if self.config.inventory.endpoint not in unproven:
                inventory = self._inventory(now, scans, foreign)
        except EndpointUnavailable as exc:
            errors.append(EndpointError(exc.endpoint, exc.reason, exc.error_class))
        if inventory is not None:
            for scan in inventory.scans.values():
                old = scans.get(scan.id)
                if old is None or old.checksum != scan.checksum or old.files != scan.files:
                    new_scans.append(scan)
                    scans[scan.id] = scan
        stored = self.store.load_replicas()
        evidence = self.store.load_evidence()
        deleted = self.store.deleted()
        health = self.store.endpoint_health()
        accepted = AlertLog(self.store).accepted_losses()
        observations: dict[str, EndpointObservation] = {}
        listings: dict[str, dict[str, ScanListing]] = {}
        assessed_by_endpoint: dict[str, dict[str, Assessed]] = {}
        same_storage = shared_storage(self.backends.local_roots)  # e.g. a bind mount: unknown
        for name in self.policy.endpoints:
            previously = frozenset(stored.get(name, {}))
            expected_absent = frozenset(deleted.get(name, ()))
            storage = self.backends.storages.get(name)
            if name in unproven:
                observations[name] = EndpointObservation(
                    name,
                    ok=False,
                    error=unproven[name],
                    previously_present=previously,
                    expected_absent=expected_absent,
                )
                continue
            until = self._backoff_until(health.get(name)) if circuit_breaker else None
            if until is not None and now < until:
                entry = health[name]
                reason = (
                    f"not listed until {until.isoformat(timespec='seconds')} after "
                    f"{entry['consecutive_failures']} consecutive failures; "
                    f"last error: {entry['last_error']}"
                )
                errors.append(EndpointError(name, reason, ErrorClass.TRANSIENT))
                backed_off.add(name)
                observations[name] = EndpointObservation(
                    name,
                    ok=False,
                    error=reason,
                    previously_present=previously,
                    expected_absent=expected_absent,
                    observed_at=entry.get("last_ok_at"),
                )
                continue
            try:
                if storage is None:
                    raise EndpointUnavailable(name, "no storage backend can list this endpoint")
                if name in same_storage:
                    raise same_storage[name]
                if name == self.config.inventory.endpoint and self._inventory_listing is not None:
                    listing = self._inventory_listing
                else:
                    listing = storage.list_scans(self.layout, wanted=scans.keys())
                listing = without_foreign(listing, foreign.get(name), scans)
            except EndpointUnavailable as exc:
                errors.append(EndpointError(name, exc.reason, exc.error_class))
                observations[name] = EndpointObservation(
                    name,
                    ok=False,
                    error=exc.reason,
                    previously_present=previously,
                    expected_absent=expected_absent,
                    observed_at=(health.get(name) or {}).get("last_ok_at"),
                )
                continue
            except Bl931Error as exc:
                errors.append(EndpointError(name, exc.message, exc.error_class))
                observations[name] = EndpointObservation(
                    name,
                    ok=False,
                    error=exc.message,
                    previously_present=previously,
                    expected_absent=expected_absent,
                )
                continue
            listings[name] = listing
            here, elsewhere = storages.split(name, evidence.get(name, {}))
            assessed = self._assess(name, scans, listing, here, elsewhere)
            if name in self.policy.tape and storage is not None:
                # A new version kept beside an older one, under a versioned name.
                tape_versions.upgrade(name, storage, self.layout, scans, assessed, here)
            if name != self.policy.inventory_endpoint:
                adopted = self._rehasher.settle(
                    name, storage, scans, listing, assessed, now, storages.of(name)
                )
                if write:
                    for scan_id, proof in adopted.items():
                        self.store.record_evidence(scan_id, name, storages.stamp(name, proof))
                moved = storages.alert(name, {s: a.replica for s, a in assessed.items()})
                if moved is not None:
                    alerts.append(moved)
            assessed_by_endpoint[name] = assessed
            if name in accepted:
                # An operator accepted the loss of what vanished here: this listing is the
                # endpoint's new baseline, so nothing counts as missing any more.
                previously = previously & frozenset(assessed)
            observations[name] = EndpointObservation(
                name,
                ok=True,
                replicas={scan_id: a.replica for scan_id, a in assessed.items()},
                previously_present=previously,
                expected_absent=expected_absent,
            )
        catalog, catalog_alerts = observe_catalog(
            self.backends.catalog,
            self.executor.registrations,
            scans,
            write=write,
            user=self.user,
            now=now,
        )
        alerts.extend(catalog_alerts)
        if catalog.enabled and not catalog.ok:
            errors.append(
                EndpointError(CATALOG, catalog.error or "unavailable", catalog.error_class)
            )
        return Observation(
            scans,
            observations,
            listings,
            assessed_by_endpoint,
            catalog,
            errors,
            inventory,
            new_scans,
            backed_off,
            stored,
            alerts,
            frozenset(unproven),
        )

    def _check_identities(
        self,
        identity: IdentityCheck,
        now: datetime,
        errors: list[EndpointError],
        alerts: list[Alert],
    ) -> dict[str, str]:
        """Endpoint → why it is not provably its storage this pass (unknown for every action)."""
        unproven: dict[str, str] = {}
        identity.tape = tape_identity_checks(self.backends)
        refused, kind_alerts = tape_legacy.kind_changed(self.config, self.store)  # per-file → tape
        for name in identity.checked_endpoints():
            if name in refused:
                continue  # its kind change is the step to take first
            try:
                identity.observe(name, user=self.user, now=now)
            except EndpointUnavailable as exc:
                unproven[name] = exc.reason
                errors.append(EndpointError(name, exc.reason, exc.error_class))
                if exc.error_class is ErrorClass.NEEDS_HUMAN:  # not HPSS merely down
                    alerts.append(
                        Alert(
                            "endpoint_identity",
                            AlertEffect.UNKNOWN_ENDPOINT,
                            f"{name} is unknown for every action: {exc.reason}",
                            endpoint=name,
                            cleared_by=ClearedBy.CONDITION,
                        )
                    )
            except Bl931Error as exc:
                unproven[name] = exc.message
                errors.append(EndpointError(name, exc.message, exc.error_class))
        for name, why in refused.items():
            unproven[name] = why
            errors.append(EndpointError(name, why, ErrorClass.NEEDS_HUMAN))
        alerts.extend(kind_alerts)
        return unproven

    def _reappeared(self, seen: Observation) -> frozenset[str]:
        """Scans bl931 pruned from the inventory endpoint that are listed there again with
        other bytes than the version it pruned (a reused name): they wait for a person."""
        obs = seen.observations.get(self.policy.inventory_endpoint)
        if obs is None or not obs.ok:
            return frozenset()
        out = set()
        for scan_id in obs.expected_absent.intersection(obs.replicas):
            scan = seen.scans.get(scan_id)
            pruned = [r for r in self.store.receipts(scan_id) if r["endpoint"] == obs.endpoint]
            checksum = (pruned[-1].get("acquisition") or {}).get("checksum") if pruned else None
            if scan is not None and checksum is not None and checksum != scan.checksum:
                out.add(scan_id)
        return frozenset(out)

    def _remnants(self, seen: Observation) -> frozenset[str]:
        """Scans whose inventory-endpoint listing is what a partial delete of their current
        version left (`engine/remnants.py`): the rest may be deleted, never copied from."""
        name = self.policy.inventory_endpoint
        listed = seen.listings.get(name)
        if not listed:
            return frozenset()
        index = remnant_index(self.store, name)
        return frozenset(
            scan_id
            for scan_id, listing in listed.items()
            if (scan := seen.scans.get(scan_id)) is not None
            and index.is_remnant(scan, listing.files, by_identity=False)
        )

    def _foreign_alerts(self) -> list[Alert]:
        """One `notify` alert per scan and endpoint where a prune left files it never copied."""
        alerts = []
        for record in self.store.foreign_files():
            shown = ", ".join(repr(p) for p in record.paths[:5])
            more = f" and {len(record.paths) - 5} more" if len(record.paths) > 5 else ""
            alerts.append(
                Alert(
                    "foreign_files",
                    AlertEffect.NOTIFY,
                    f"the prune of {record.scan!r} at {record.endpoint} left {len(record.paths)} "
                    f"file(s) it never copied anywhere: {shown}{more}",
                    endpoint=record.endpoint,
                    scan=record.scan,
                    cleared_by=ClearedBy.CONDITION_OR_ACKNOWLEDGEMENT,
                )
            )
        return alerts

    def _with_findings(
        self, the_plan: Plan, seen: Observation, now: datetime, *, write: bool
    ) -> Plan:
        """The plan with what was found beside it: identity alerts, inventory problems, and
        every alert's `since` (alerts are recorded when `write`)."""
        problems = tuple(seen.inventory.problems) if seen.inventory is not None else ()
        targets = {t.submission_id: t.target for t in self.store.tasks(OPEN_TASK_STATES)}
        task_faults = self.executor.task_watch.alerts(targets)
        current = (
            *the_plan.alert_details,
            *seen.alerts,
            *self._foreign_alerts(),
            *unverified_alerts(self.store),
            *task_faults,
            *flight_alerts(self.store),
        )
        standing = AlertLog(self.store).refresh(current, now, write=write)
        return replace(
            the_plan,
            alerts=tuple(a.message for a in standing),
            alert_details=standing,
            problems=problems,
        )

    def in_flight(self) -> tuple[InFlight, ...]:
        # An interrupted delete or replace cleared for its last look is planned afresh, not in
        # flight.
        resuming = (
            self.executor.interrupted.action_ids | self.executor.interrupted_replaces.action_ids
        )
        return tuple(
            InFlight(a.id, a.kind, a.scan, a.source, a.target)
            for a in self.store.actions([SUBMITTED])
            if a.id not in resuming
        )

    @paused_gc()  # planning builds many acyclic objects: no cyclic GC passes over them
    def make_plan(self, seen: Observation, now: datetime) -> Plan:
        planned = plan(
            PlanInput(
                policy=self.policy,
                scans=seen.scans,
                observations=seen.observations,
                now=now,
                catalog=seen.catalog,
                in_flight=self.in_flight(),
                holds=self.store.active_holds(now),
                decisions={aid: d[0] for aid, d in self.store.decisions().items()},
                failures=self.store.failures(),
                errors=tuple(seen.errors),
                reappeared=self._reappeared(seen),
                remnants=self._remnants(seen),
                export_control=export_control_for(self.config, self.store),
            )
        )
        decisions = {aid: d[0] for aid, d in self.store.decisions().items()}
        planned = tape_plan.shape_plan(planned, self.config, self.store, seen, decisions, now)
        over = self.config.approval.second_approver_over_bytes
        return require_second_approver(planned, self.store, over)

    # ---- the pass ----------------------------------------------------------------------
    def dry_run(self, now: datetime | None = None) -> Plan:
        """Observe and plan; change nothing anywhere."""
        now = now or self.clock()
        seen = self.observe(now)
        return self._with_findings(self.make_plan(seen, now), seen, now, write=False)

    def reconcile_once(self, now: datetime | None = None, *, drain: bool = False) -> PassReport:
        """One pass. With `drain`, tasks run in this process are finished before returning."""
        started = now or self.clock()
        self.store.beat(
            started, pid=os.getpid(), host=socket.gethostname(), pass_started_at=started
        )
        if not self._swept:
            self._sweep_temp_files()
            self._swept = True
        self.store.consume_retries(started)
        mark = self.store.last_event_seq()
        outcome = self.executor.poll_tasks(started)
        seen = self.observe(started, circuit_breaker=True, write=True)
        self._record_observation(seen, started)
        the_plan = self._with_findings(self.make_plan(seen, started), seen, started, write=True)
        for alert in the_plan.alert_details:
            log.error(
                "ALERT %s [%s]",
                alert.message,
                alert.id,
                extra={"alert": alert.code, "endpoint": alert.endpoint, "effect": alert.effect},
            )
        self.store.save_plan(the_plan.actions, started)
        self.findings.record(the_plan, seen.catalog, started)
        outcome += self.executor.execute(the_plan, seen, started)
        if drain:
            outcome += self.executor.drain()
        if self.backends.catalog is not None:
            try:
                self.backends.catalog.flush()
            except Bl931Error as exc:
                log.error("catalog flush failed: %s", exc)
        finished = self.clock()
        report = PassReport(
            plan=the_plan,
            started_at=started,
            finished_at=finished,
            submitted=outcome.submitted,
            succeeded=outcome.succeeded,
            failed=outcome.failed,
            new_scans=len(seen.new_scans),
            scans=len(seen.scans),
            endpoints=tuple(self.policy.endpoints),
            replica_levels=_replica_levels(seen),
        )
        report.action_outcomes, report.action_errors = self._action_tallies(mark)
        beat: dict[str, object] = {"pass_finished_at": finished, "summary": report.summary()}
        if report.ok:
            beat["last_ok_pass_at"] = finished
        self.store.beat(finished, **beat)
        if self.incremental is not None:  # HOOK(incremental): GC policy after the pass
            self.incremental.end_pass()
        log.info(
            "pass done in %.2fs: %s",
            (finished - started).total_seconds(),
            ", ".join(f"{k}={v}" for k, v in report.summary().items() if v) or "nothing to do",
        )
        return report

    def _action_tallies(
        self, mark: int
    ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
        """(action kind, outcome) and (error class, endpoint) counts from this pass's events."""
        outcomes: dict[tuple[str, str], int] = {}
        errors: dict[tuple[str, str], int] = {}
        for event_kind, action_kind, target, error_class in self.store.action_events_since(mark):
            outcome = _OUTCOME_OF_EVENT.get(event_kind) or (
                "succeeded" if event_kind.startswith("catalog.") else None
            )
            if outcome is None:
                continue
            outcomes[(action_kind, outcome)] = outcomes.get((action_kind, outcome), 0) + 1
            if outcome == "failed":
                where = "catalog" if action_kind in ("register", "update_catalog") else target
                key = (error_class or "transient", where or "unknown")
                errors[key] = errors.get(key, 0) + 1
        return outcomes, errors

    def _sweep_temp_files(self) -> None:
        for name, root in self.backends.local_roots.items():
            if self.backends.kinds.get(name) != "local" or not root.is_dir():
                continue
            try:
                removed = sweep_temp_files(
                    root, older_than_seconds=0, now=self.clock.now().timestamp()
                )
            except OSError as exc:
                log.warning("%s: could not sweep temporary files: %s", name, exc)
                continue
            if removed:
                log.warning(
                    "%s: removed %d temporary files left by an interrupted copy", name, removed
                )

    def _record_observation(self, seen: Observation, now: datetime) -> None:
        """Persist new scans and what each endpoint showed (keeping the baseline on alerts)."""
        if seen.new_scans:
            self.store.upsert_scans(seen.new_scans, now)
            if self._scans is not None:
                added = any(scan.id not in self._scans for scan in seen.new_scans)
                self._scans.update((scan.id, scan) for scan in seen.new_scans)
                if added:  # same order as a fresh read of the store (by id)
                    self._scans = dict(sorted(self._scans.items()))
            for scan in seen.new_scans:
                self.store.event(
                    now,
                    "scan.inventoried",
                    f"inventoried version {scan.version}, {scan.file_count} files, "
                    f"{scan.size} bytes",
                    scan=scan.id,
                )
        if seen.inventory is not None:
            for problem in seen.inventory.problems:
                log.warning("inventory: %s", problem)
        if seen.catalog.enabled and not seen.catalog.ok:
            log.error(
                "catalog: %s",
                seen.catalog.error,
                extra={"endpoint": CATALOG, "error_class": seen.catalog.error_class.value},
            )
        stored = seen.stored_replicas
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
                failures = self.store.endpoint_failed(name, obs.error or "unavailable", now)
                log.error(
                    "%s: listing failed (%d in a row): %s",
                    name,
                    failures,
                    obs.error,
                    extra={"endpoint": name, "consecutive_failures": failures},
                )
                continue
            self.store.endpoint_ok(name, now)
            baseline = len(obs.previously_present - obs.expected_absent)
            if baseline and len(obs.missing()) / baseline > self.policy.max_missing_fraction:
                continue  # keep the last good baseline so the alert stays until resolved
            before = stored.get(name, {})
            current = seen.assessed.get(name, {})
            # Only rows that changed are written: a steady pass writes nothing here.
            changed: dict[str, ReplicaRow] = {}
            for scan_id, assessed in current.items():
                replica, old = assessed.replica, before.get(scan_id)
                if (
                    old is None
                    or old.level != replica.level
                    or old.signature != assessed.signature
                    or old.size != replica.size
                ):
                    changed[scan_id] = ReplicaRow(
                        replica.level, replica.size, replica.files, assessed.signature, now
                    )
            removed = [scan_id for scan_id in before if scan_id not in current]
            self.store.replace_replicas(name, changed, removed)


# (listed files, scan, evidence key, verdict): reused while the first three are the same.
_Assessment = tuple[tuple[FileStat, ...], Scan, object, Assessed]

_OUTCOME_OF_EVENT = {
    "copy.submitted": "submitted",
    "delete.submitted": "submitted",
    "copy.verified": "succeeded",
    "delete.done": "succeeded",
    "action.failed": "failed",
    "delete.recheck_failed": "skipped",
}


def _replica_levels(seen: Observation) -> dict[tuple[str, str], int]:
    """(endpoint, level word) → replicas at that level, for the endpoints listed this pass."""
    out: dict[tuple[str, str], int] = {}
    for name, obs in seen.observations.items():
        if not obs.ok:
            continue
        for replica in obs.replicas.values():
            if replica.level > Level.ABSENT:
                key = (name, replica.level.word)
                out[key] = out.get(key, 0) + 1
    return out


class _ListedOnce(LocalStorage):
    """The inventory endpoint for one walk, remembering the full listing the walk made
    (without the files prunes left behind)."""

    def __init__(self, name: str, root: Path, foreign: Mapping[str, frozenset[str]]) -> None:
        super().__init__(name, root)
        self.listing: dict[str, ScanListing] | None = None
        self._foreign = foreign

    def list_scans(
        self, layout: ScanLayout, wanted: Collection[str] | None = None
    ) -> dict[str, ScanListing]:
        if self.listing is None:
            self.listing = without_foreign(super().list_scans(layout, wanted), self._foreign)
        return self.listing

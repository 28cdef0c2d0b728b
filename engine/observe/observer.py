"""`Observer`: reads the inventory, every endpoint and the catalog into an `Observation`.

It owns what observation keeps between passes: the stored scans (only the reconciler writes
them, so they are read from the store once and kept in step with every upsert), the inventory
reader and the listing it lends the inventory endpoint, last pass's assessments, the rehasher of
local copies found beside a mount, and the circuit breaker of endpoints that keep failing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
from datetime import datetime
from typing import Any

from engine import tape_legacy, tape_versions
from engine.alert_log import AlertLog
from engine.backends import Backends
from engine.breaker import CircuitBreaker
from engine.catalog.custody import CATALOG, Registrations, observe_catalog
from engine.config import Config
from engine.errors import Bl931Error, EndpointUnavailable
from engine.evidence_identity import StorageIdentities
from engine.foreign import ForeignPaths, foreign_paths, without_foreign
from engine.identity import IdentityCheck
from engine.incremental.remote_slice import RemoteSlice, begin_slice
from engine.incremental.view import prepare_pass
from engine.layout import ScanLayout
from engine.model import (
    Alert,
    CatalogView,
    EndpointError,
    EndpointObservation,
    ErrorClass,
    Evidence,
    Scan,
)
from engine.observe.assess import Assessed
from engine.observe.assessments import AssessmentCache
from engine.observe.identities import unproven_endpoints
from engine.observe.inventory import InventoryReader
from engine.observe.observation import Observation
from engine.observe.replica_view import ReplicaView
from engine.policy import Policy
from engine.rehash import Rehasher
from engine.storage.base import ScanListing
from engine.storage.same_storage import shared_storage
from engine.storage.tape_identity import tape_identity_checks
from engine.store import StateStore


class Observer:
    def __init__(
        self,
        config: Config,
        store: StateStore,
        backends: Backends,
        layout: ScanLayout,
        policy: Policy,
        registrations: Registrations,
        *,
        user: str,
    ) -> None:
        self.config = config
        self.store = store
        self.backends = backends
        self.layout = layout
        self.policy = policy
        self.registrations = registrations
        self.user = user
        self.inventory = InventoryReader(config, store, backends, layout)
        self.assessments = AssessmentCache()
        self.breaker = CircuitBreaker(config.safety)
        self._rehasher = Rehasher()
        self._scans: dict[str, Scan] | None = None
        self._unsorted = False  # `remember` added scans out of id order
        self._lent: dict[str, Scan] | None = None  # the dict `stored_scans` last handed out
        self._slice: RemoteSlice | None = None  # a service pass's Globus listing slice

    @property
    def completion_hint(self) -> Callable[[], Mapping[str, str]] | None:
        return self.inventory.completion_hint

    @completion_hint.setter
    def completion_hint(self, hint: Callable[[], Mapping[str, str]] | None) -> None:
        self.inventory.completion_hint = hint

    # ---- the stored scans --------------------------------------------------------------
    def stored_scans(self) -> dict[str, Scan]:
        """The stored scans, from memory when still current: the observer's own dict, which the
        caller must not change (an observation copies it before adding a new scan; in a steady
        pass it keeps this very dict: one dict over every scan, not two, issue 15)."""
        if self._scans is None or len(self._scans) != self.store.count_scans():
            self._scans = self.store.load_scans()
            self._unsorted = False
        if self._unsorted:  # same order as a fresh read of the store (by id)
            self._scans = dict(sorted(self._scans.items()))
            self._unsorted = False
        self._lent = self._scans
        return self._scans

    def remember(self, upserted: Iterable[Scan]) -> None:
        """Keep the stored scans in step with scans just written to the store."""
        if self._scans is None:
            return
        scans = list(upserted)
        if not scans:
            return
        added = any(scan.id not in self._scans for scan in scans)
        if self._scans is self._lent:  # an observation holds it: changed in a copy
            self._scans = dict(self._scans)
        self._scans.update((scan.id, scan) for scan in scans)
        # Sorted when next read (`stored_scans`), not here: a delta pass does not read them.
        self._unsorted = self._unsorted or added

    # ---- one observation ---------------------------------------------------------------
    def observe(
        self, now: datetime, *, circuit_breaker: bool = False, write: bool = False
    ) -> Observation:
        """Read the inventory, every endpoint and the catalog.

        Writes nothing, except with `write`: on a state store created by this process, local
        endpoints get their identity markers (see `engine.identity`) and the local catalog its
        identity; registrations whose loss an operator accepted are forgotten
        (`engine.catalog.custody`); copies found beside a mount and re-hashed get evidence.

        With `circuit_breaker` (the service's passes; never the audit, which an operator runs
        to see the truth right now), an endpoint in back-off is not listed: it is reported
        unknown with its last error.
        """
        errors: list[EndpointError] = []
        alerts: list[Alert] = []
        prepare_pass(
            self.inventory.incremental, now, self.backends.storages, service=circuit_breaker
        )
        scans = self.stored_scans()
        identity = IdentityCheck(self.config, self.store, may_initialise=write)
        identity.tape = tape_identity_checks(self.backends)
        refused, kind_alerts = tape_legacy.kind_changed(self.config, self.store)  # per-file → tape
        unproven = unproven_endpoints(identity, now, self.user, errors, alerts, skip=refused)
        for name, why in refused.items():
            unproven[name] = why
            errors.append(EndpointError(name, why, ErrorClass.NEEDS_HUMAN))
        alerts.extend(kind_alerts)
        # After the markers: a local endpoint's storage identity includes its marker.
        storages = StorageIdentities(self.config, self.store)
        if write:
            storages.record(now, unproven=unproven)
        foreign = foreign_paths(self.store.foreign_files())
        seen = Observation(scans, {}, {}, {}, CatalogView(enabled=False), errors, alerts=alerts)
        seen.identity, seen.storages = identity, storages
        self.inventory.listing = None
        try:
            if self.config.inventory.endpoint not in unproven:
                seen.inventory = self.inventory.read(now, scans, foreign)
        except EndpointUnavailable as exc:
            errors.append(EndpointError(exc.endpoint, exc.reason, exc.error_class))
        if seen.inventory is not None:
            for scan in seen.inventory.scans.values():
                old = scans.get(scan.id)
                if old is None or old.checksum != scan.checksum or old.files != scan.files:
                    seen.new_scans.append(scan)
            if seen.new_scans:
                scans = seen.scans = dict(scans)  # not the observer's own (`stored_scans`)
                scans.update((scan.id, scan) for scan in seen.new_scans)
        seen.stored_replicas = self.store.load_replica_marks()
        self._slice = begin_slice(
            self.inventory.incremental, now, scans, seen.new_scans, self.config, self.policy,
            service=circuit_breaker,
        )  # fmt: skip
        self._endpoints(seen, now, unproven, foreign, circuit_breaker=circuit_breaker, write=write)
        self.inventory.listing = None  # lent for this pass only (seen.listings keeps it)
        seen.unproven = frozenset(unproven)
        catalog, catalog_alerts = observe_catalog(
            self.backends.catalog, self.registrations, scans, write=write, user=self.user, now=now
        )
        seen.catalog = catalog
        alerts.extend(catalog_alerts)
        if catalog.enabled and not catalog.ok:
            errors.append(
                EndpointError(CATALOG, catalog.error or "unavailable", catalog.error_class)
            )
        return seen

    def _endpoints(
        self,
        seen: Observation,
        now: datetime,
        unproven: Mapping[str, str],
        foreign: ForeignPaths,
        *,
        circuit_breaker: bool,
        write: bool,
    ) -> None:
        """List and assess every endpoint of the policy into `seen`."""
        assert seen.storages is not None
        evidence = self.store.load_evidence()
        deleted = self.store.deleted()
        health = self.store.endpoint_health()
        accepted = AlertLog(self.store).accepted_losses()
        same_storage = shared_storage(self.backends.local_roots)  # e.g. a bind mount: unknown
        for name in self.policy.endpoints:
            previously: Set[str] = seen.stored_replicas.get(name, {}).keys()
            expected_absent = frozenset(deleted.get(name, ()))

            if name in unproven:
                seen.observations[name] = _unknown(
                    name, unproven[name], previously, expected_absent
                )
                continue
            held = self.breaker.check(health.get(name), now) if circuit_breaker else None
            if held is not None:
                seen.errors.append(EndpointError(name, held.reason, ErrorClass.TRANSIENT))
                seen.backed_off.add(name)
                seen.observations[name] = _unknown(
                    name, held.reason, previously, expected_absent, held.last_ok_at
                )
                continue
            storage = self.backends.storages.get(name)
            try:
                if storage is None:
                    raise EndpointUnavailable(name, "no storage backend can list this endpoint")
                if name in same_storage:
                    raise same_storage[name]
                if name == self.config.inventory.endpoint and self.inventory.listing is not None:
                    listing = self.inventory.listing
                else:
                    sliced = self._slice.wanted(name) if self._slice is not None else None
                    wanted = seen.scans.keys() if sliced is None else sliced
                    listing = storage.list_scans(self.layout, wanted=wanted)
                listing = without_foreign(listing, foreign.get(name), seen.scans)
            except EndpointUnavailable as exc:
                seen.errors.append(EndpointError(name, exc.reason, exc.error_class))
                last_ok: Any = (health.get(name) or {}).get("last_ok_at")
                seen.observations[name] = _unknown(
                    name, exc.reason, previously, expected_absent, last_ok
                )
                continue
            except Bl931Error as exc:
                seen.errors.append(EndpointError(name, exc.message, exc.error_class))
                seen.observations[name] = _unknown(name, exc.message, previously, expected_absent)
                continue
            seen.listings[name] = listing
            assessed = self._assess(seen, name, listing, evidence.get(name, {}), now, write)
            scope = self._slice.merge(name, assessed, seen.scans) if self._slice else None
            seen.assessed[name] = assessed
            if name in accepted:
                # An operator accepted the loss of what vanished here: this listing is the
                # endpoint's new baseline, so nothing counts as missing any more.
                previously = frozenset(previously & assessed.keys())
            seen.observations[name] = EndpointObservation(
                name,
                ok=True,
                replicas=ReplicaView(assessed),
                previously_present=previously,
                expected_absent=expected_absent,
                listed=scope.listed if scope is not None else None,
                carried=scope.carried if scope is not None else {},
            )

    def _assess(
        self,
        seen: Observation,
        name: str,
        listing: Mapping[str, ScanListing],
        evidence: Mapping[str, Evidence],
        now: datetime,
        write: bool,
    ) -> dict[str, Assessed]:
        """One listed endpoint's verdicts, with what its listing implies: tape versions kept
        under versioned names, copies found beside a mount re-hashed, a storage migration."""
        storages = seen.storages
        assert storages is not None
        storage = self.backends.storages[name]
        here, elsewhere = storages.split(name, evidence)
        assessed = self.assessments.assess(
            name,
            seen.scans,
            listing,
            here,
            elsewhere,
            is_inventory=name == self.policy.inventory_endpoint,
        )
        if name in self.policy.tape:
            # A new version kept beside an older one, under a versioned name.
            tape_versions.upgrade(name, storage, self.layout, seen.scans, assessed, here)
        if name != self.policy.inventory_endpoint:
            adopted = self._rehasher.settle(
                name, storage, seen.scans, listing, assessed, now, storages.of(name)
            )
            if write:
                for scan_id, proof in adopted.items():
                    self.store.record_evidence(scan_id, name, storages.stamp(name, proof))
            moved = storages.alert(name, ReplicaView(assessed))
            if moved is not None:
                seen.alerts.append(moved)
        return assessed


def _unknown(
    name: str,
    error: str,
    previously: Set[str],
    expected_absent: frozenset[str],
    observed_at: datetime | None = None,
) -> EndpointObservation:
    """An endpoint not listed this pass: every replica there is unknown (not absent)."""
    return EndpointObservation(
        name,
        ok=False,
        error=error,
        previously_present=previously,
        expected_absent=expected_absent,
        observed_at=observed_at,
    )

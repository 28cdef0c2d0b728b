"""`Observation`: everything one pass saw, before planning."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from engine.evidence_identity import StorageIdentities
from engine.identity import IdentityCheck
from engine.inventory.walk import InventoryResult
from engine.model import Alert, CatalogView, EndpointError, EndpointObservation, Scan
from engine.observe.assess import Assessed
from engine.storage.base import ScanListing


@dataclass
class Observation:
    """Everything one pass saw, before planning."""

    scans: dict[str, Scan]
    observations: dict[str, EndpointObservation]
    listings: dict[str, Mapping[str, ScanListing]]
    assessed: dict[str, dict[str, Assessed]]
    catalog: CatalogView
    errors: list[EndpointError] = field(default_factory=list)
    inventory: InventoryResult | None = None
    new_scans: list[Scan] = field(default_factory=list)
    # Endpoints not listed this pass because their circuit breaker is open (not a new failure).
    backed_off: set[str] = field(default_factory=set)
    # The replicas the store held before this pass, as marks (`engine.store.replicas`; read
    # once, used again when recording; let go once the pass planned: `release_stored_rows`).
    stored_replicas: dict[str, Mapping[str, int]] = field(default_factory=dict)
    # Endpoints whose every listed replica the pass recorded (the store now holds exactly
    # their replicas; `engine.observe.record`).
    recorded: set[str] = field(default_factory=set)
    # Alerts found while observing (an endpoint whose identity does not hold).
    alerts: list[Alert] = field(default_factory=list)
    # Endpoints not listed because their identity does not hold (a cheap local check: no
    # circuit breaker, so a remounted filesystem is used again at the next pass).
    unproven: frozenset[str] = frozenset()
    # This pass's endpoint identity check and storage identities: the executor acts on them.
    identity: IdentityCheck | None = None
    storages: StorageIdentities | None = None

    def release_stored_rows(self) -> None:
        """After the pass planned: let go of the stored replicas' marks read for it. Each
        observation's `previously_present` is a view of them, and the service keeps its settled
        pass's observation until the next full pass, while the store replaced every map this
        pass wrote to (an endpoint's marks, 100k ints, twice). An endpoint whose listing the
        pass recorded whole now has exactly its replicas stored, so that is what the store saw
        there before the next pass; any other keeps its view."""
        self.stored_replicas = {}
        for name in self.recorded:
            obs = self.observations[name]
            self.observations[name] = replace(obs, previously_present=obs.replicas.keys())

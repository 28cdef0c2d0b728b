"""What the safety rules read: one pass's facts (`PassFacts`) and one scan's (`Case`).

The planner builds a `PassFacts` once per pass from its `PlanInput`, and for each scan a `Case`
from the scan's `ScanFacts` (a plain tuple, the key of the planner's memo), its tasks in flight
and its hold. The rules (`engine/rules/copies.py`, `catalog.py`, `deletes.py`) are functions of
these two values; they add what they decide to the case (`block`, `actions`, `candidates`) and
read nothing else. Decisions and failures reach them through a `Gate`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import NamedTuple

from engine.export_control import ExportControl, ExportFact
from engine.model import (
    ActionKind,
    Alert,
    CatalogView,
    EndpointError,
    EndpointObservation,
    Failure,
    Hold,
    InFlight,
    Level,
    Replica,
    Scan,
)
from engine.policy import Policy
from engine.rules.observations import is_stale, missing_fraction_alerts
from engine.rules.reasons import ReasonCode


@dataclass(frozen=True)
class PlanInput:
    """Everything the planner may look at for one pass; it reads nothing else."""

    policy: Policy
    scans: Mapping[str, Scan]
    observations: Mapping[str, EndpointObservation]
    now: datetime
    catalog: CatalogView = field(default_factory=lambda: CatalogView(enabled=False))
    in_flight: tuple[InFlight, ...] = ()
    holds: Mapping[str, Hold] = field(default_factory=dict)
    decisions: Mapping[str, str] = field(default_factory=dict)  # action id → approve | reject
    failures: Mapping[str, Failure] = field(default_factory=dict)
    errors: tuple[EndpointError, ...] = ()
    # scans pruned from the inventory endpoint that are listed there again with other bytes
    reappeared: frozenset[str] = frozenset()
    # scans whose inventory-endpoint listing is what a receipted partial delete of their current
    # version left (engine/remnants.py): the rest may be deleted (the same action, the same
    # decisions), though the listing no longer matches the inventoried version
    remnants: frozenset[str] = frozenset()
    export_control: ExportControl | None = None  # engine/export_control.py


class NotRegistered:
    """The catalog has no entry for the scan (distinct from any recorded set of locations)."""

    __slots__ = ()


NOT_REGISTERED = NotRegistered()

_KIND_RANK = {
    ActionKind.COPY: 0,
    ActionKind.REGISTER: 1,
    ActionKind.UPDATE_CATALOG: 2,
    ActionKind.DELETE: 3,
}


class ScanFacts(NamedTuple):
    """What the rules read about one scan, apart from its identity, flights, hold and decisions.

    Scans with equal facts get equal decisions; only their ids, checksums, sizes and due dates
    differ, so the facts are the key of the planner's memo.
    """

    levels: tuple[Level | None, ...]  # per policy endpoint; None: unknown this pass
    retained: tuple[bool, ...]  # per endpoint with retention: `now < acquired_at + keep`
    recorded: frozenset[str] | NotRegistered  # the catalog's locations for the scan
    seen_before: tuple[bool, ...]  # per unknown retention endpoint: previously present there
    # () for a scan no endpoint holds an older verified version of; else (per policy endpoint:
    # None — no older version there, True — it holds one also verified elsewhere, False — the
    # only verified copy of it, "differs" — other, unverified bytes; and why the new version is
    # suspect, or None): `engine.rules.versions.version_facts`
    versions: tuple[object, ...] = ()
    # the inventory endpoint holds what a partial delete of this version left (PlanInput.remnants)
    remnant: bool = False
    export: ExportFact = None  # what holds off-site copies back (engine/export_control.py)


class BlockPlan(NamedTuple):
    kind: ActionKind
    endpoint: str | None
    code: ReasonCode
    reason: str | None  # None: "kept at <endpoint> until <the scan's due date>", filled per scan


class ActionPlan(NamedTuple):
    """An action without the scan's fields: id, scan and bytes are filled in per scan."""

    kind: ActionKind
    source: str | None
    target: str | None
    requires_approval: bool
    reason: str
    approved: bool
    order: tuple[int, int]  # (kind rank, target position): see `PassFacts.order`
    replaces: bool = False  # a copy over a verified older version
    # a copy onto write-once tape beside other bytes at the scan's path: kept under a
    # versioned name (engine/tape_versions.py)
    versioned: bool = False


class DeletePlan(NamedTuple):
    """A delete that passed every rule for its own copy, and the verdict of checking the scan's
    deletes together (None: admit). Only the per-pass cap is left for the planner."""

    action: ActionPlan
    together: tuple[ReasonCode, str] | None  # when another delete of the scan forbids it


class Shape(NamedTuple):
    """Everything the rules decide for one scan, in the order the planner reports it."""

    blocked: tuple[BlockPlan, ...]
    actions: tuple[ActionPlan, ...]  # copies, then the catalog action
    deletes: tuple[DeletePlan, ...]
    gated: tuple[ActionPlan, ...]  # actions then deletes: the order of the scan's action ids
    copies: bool  # whether any action carries the scan's bytes
    suspect: str | None = None  # why the scan's new version waits for a person (an alert)


# Failures and operator decisions for one action (kind, source, target): (allowed, approved).
Gate = Callable[[ActionKind, str | None, str | None], tuple[bool, bool]]


def allow_all(kind: ActionKind, source: str | None, target: str | None) -> tuple[bool, bool]:
    """The gate of a scan no decision or failure names: allowed, not approved."""
    return True, False


class PassFacts:
    """One pass's facts as the rules read them: the policy, which endpoints are known, their
    replicas, the catalog, and the indexes derived from them once per pass."""

    def __init__(self, inp: PlanInput) -> None:
        policy = self.policy = inp.policy
        self.now = inp.now
        self.catalog = inp.catalog
        self.known = {
            name: obs.ok and not is_stale(obs, inp.now, policy)
            for name, obs in inp.observations.items()
        }
        # endpoint → its replicas, or None when the endpoint is unknown this pass
        self.replicas: dict[str, Mapping[str, Replica] | None] = {
            name: (inp.observations[name].replicas if self.known.get(name) else None)
            for name in policy.endpoints
        }
        self.alert_details: list[Alert] = missing_fraction_alerts(policy, inp.observations)
        self.deletes_frozen = bool(self.alert_details)
        for alert in self.alert_details:
            # Replicas vanished here: until they return or an operator accepts the loss, what
            # this endpoint lists proves nothing — no copies into it, no catalog update from it.
            if alert.endpoint is not None:
                self.known[alert.endpoint] = False
                self.replicas[alert.endpoint] = None
        self.stale = frozenset(
            name
            for name, obs in inp.observations.items()
            if obs.ok and is_stale(obs, inp.now, policy)
        )
        self.offsite = inp.export_control.offsite if inp.export_control else frozenset()
        self.retention_order = tuple(n for n in policy.endpoints if n in policy.retention)
        # unknown retention endpoints that were observed: a delete there is reported as blocked
        # for the scans they held before
        self.unknown_retention = tuple(
            name
            for name in self.retention_order
            if self.replicas[name] is None and name in inp.observations
        )
        self.keep = policy.keep
        self.position = {name: i for i, name in enumerate(policy.endpoints)}
        self.registration_endpoint = policy.registration_endpoint
        self.catalog_active = policy.catalog_enabled and inp.catalog.enabled
        self.requires_of = {n: r.delete_requires for n, r in policy.retention.items()}
        self.target_plan = tuple((t, policy.children(t)) for t in policy.targets_bottom_up)
        # endpoint → scan → replica still holding a verified older version or other bytes
        # (sparse: a scan rewritten after it was copied); such scans carry their version facts.
        self.older: dict[str, dict[str, Replica]] = {}
        for name, reps in self.replicas.items():
            if reps is None:
                continue
            found = {sid: r for sid, r in reps.items() if r.older_version is not None or r.differs}
            if found:
                self.older[name] = found
        self.older_scans: frozenset[str] = frozenset(chain.from_iterable(self.older.values()))

    def order(self, kind: ActionKind, target: str | None) -> tuple[int, int]:
        """Make before break: copies (upstream edges first), catalog actions, then deletes.

        Within a slot, actions are ordered by scan id.
        """
        return _KIND_RANK[kind], self.position[target] if target else 0


class Case:
    """One scan's facts as the rules read them, and what the rules decided so far."""

    def __init__(
        self,
        facts: PassFacts,
        scan: ScanFacts,
        flights: Sequence[InFlight],
        hold: Hold | None,
    ) -> None:
        self.levels: dict[str, Level | None] = dict(zip(facts.replicas, scan.levels, strict=True))
        self.retained: dict[str, bool] = dict(zip(facts.keep, scan.retained, strict=True))
        recorded = scan.recorded
        self.registered = not isinstance(recorded, NotRegistered)
        self.recorded: frozenset[str] | None = (
            None if isinstance(recorded, NotRegistered) else recorded
        )
        self.seen_before: dict[str, bool] = dict(
            zip(facts.unknown_retention, scan.seen_before, strict=True)
        )
        # endpoint → whether the older version it holds is verified elsewhere too
        self.older: dict[str, bool] = {}
        # endpoints listing files of this scan that hold other, unverified bytes
        self.differs: frozenset[str] = frozenset()
        self.suspect: str | None = None
        if scan.versions:
            statuses, suspect = scan.versions
            assert isinstance(statuses, tuple)
            pairs = list(zip(facts.replicas, statuses, strict=True))
            self.older = {
                name: bool(status)
                for name, status in pairs
                if status is not None and status != "differs"
            }
            self.differs = frozenset(name for name, status in pairs if status == "differs")
            self.suspect = suspect if isinstance(suspect, str) else None
        self.remnant = scan.remnant
        self.export = scan.export
        self.flights = flights
        self.hold = hold
        self.blocked: list[BlockPlan] = []
        self.actions: list[ActionPlan] = []
        self.candidates: list[ActionPlan] = []  # deletes that passed their own rules

    def block(
        self, kind: ActionKind, endpoint: str | None, code: ReasonCode, reason: str | None
    ) -> None:
        self.blocked.append(BlockPlan(kind, endpoint, code, reason))


def catalog_unknown(catalog: CatalogView) -> str:
    """Why the catalog cannot be relied on this pass (unavailable, or it lost records)."""
    if not catalog.ok:
        return f"catalog unavailable: {catalog.error or 'no answer'}"
    return (
        f"the catalog lost {len(catalog.lost)} registered document(s); it is unknown until "
        "they are back or an operator acknowledges the loss"
    )

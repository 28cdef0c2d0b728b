# Over 400 lines: split pending: issue 15 item 4 (safety rules as small pure functions).
"""Desired × observed × in-flight → `Plan`, with the safety rules. Pure: no I/O, no clock.

The rules (DESIGN §3) as enforced here:
1. A delete of scan S at endpoint E is planned only if E's retention has passed, every endpoint in
   E's `delete_requires` holds a copy of S verified at the required level in this pass's
   observation, no in-flight task reads S from E, S has no active hold, and the catalog holds S
   when the policy asks for it. Deletes of one plan are checked together: after all of them, every
   endpoint any of them required still holds its copy, and at least one verified copy remains.
2. An endpoint that failed to list is unknown: nothing that depends on it is planned, and if more
   than `max_missing_fraction` of the replicas previously seen at an endpoint vanished, no delete
   is planned anywhere.
Whatever is wanted but not allowed appears in `blocked` with a `reason_code`.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import chain
from typing import NamedTuple

from engine.export_control import ExportControl, ExportFact, copy_blocker, delete_blocker
from engine.model import (
    Action,
    ActionKind,
    Alert,
    AlertEffect,
    Blocked,
    CatalogView,
    ClearedBy,
    EndpointError,
    EndpointObservation,
    Failure,
    Hold,
    InFlight,
    Level,
    Plan,
    Replica,
    Scan,
    action_id,
)
from engine.policy import Policy
from engine.tape_versions import versioned_name


@dataclass(frozen=True)
class PlanInput:
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


_KIND_RANK = {
    ActionKind.COPY: 0,
    ActionKind.REGISTER: 1,
    ActionKind.UPDATE_CATALOG: 2,
    ActionKind.DELETE: 3,
}


def _fmt_day(moment: datetime) -> str:
    return moment.date().isoformat()


class _NotRegistered:
    """The catalog has no entry for the scan (distinct from any recorded set of locations)."""

    __slots__ = ()


_NOT_REGISTERED = _NotRegistered()


class _ScanFacts(NamedTuple):
    """What the rules read about one scan, apart from its identity, flights, hold and decisions.

    Scans with equal facts get equal decisions; only their ids, checksums, sizes and due dates
    differ, so the facts are the key of the planner's shape cache.
    """

    levels: tuple[Level | None, ...]  # per policy endpoint; None: unknown this pass
    retained: tuple[bool, ...]  # per endpoint with retention: `now < acquired_at + keep`
    recorded: frozenset[str] | _NotRegistered  # the catalog's locations for the scan
    seen_before: tuple[bool, ...]  # per unknown retention endpoint: previously present there
    # () for a scan no endpoint holds an older verified version of; else (per policy endpoint:
    # None — no older version there, True — it holds one also verified elsewhere, False — the
    # only verified copy of it; and why the new version is suspect, or None)
    versions: tuple[object, ...] = ()
    # the inventory endpoint holds what a partial delete of this version left (PlanInput.remnants)
    remnant: bool = False
    export: ExportFact = None  # what holds off-site copies back (engine/export_control.py)


class _BlockPlan(NamedTuple):
    kind: ActionKind
    endpoint: str | None
    code: str
    reason: str | None  # None: "kept at <endpoint> until <the scan's due date>", filled per scan


class _ActionPlan(NamedTuple):
    """An action without the scan's fields: id, scan and bytes are filled in per scan."""

    kind: ActionKind
    source: str | None
    target: str | None
    requires_approval: bool
    reason: str
    approved: bool
    order: tuple[int, int]  # (kind rank, target position): see `_Planner._order`
    replaces: bool = False  # a copy over a verified older version
    # a copy onto write-once tape beside other bytes at the scan's path: kept under a
    # versioned name (engine/tape_versions.py)
    versioned: bool = False


class _DeletePlan(NamedTuple):
    """A delete that passed every rule for its own copy, and the verdict of checking the scan's
    deletes together (None: admit). Only the per-pass cap is left for `_admit_deletes`."""

    action: _ActionPlan
    together: tuple[str, str] | None  # (code, reason) when another delete of the scan forbids it


class _Shape(NamedTuple):
    """Everything the rules decide for one scan, in the order the planner reports it."""

    blocked: tuple[_BlockPlan, ...]
    actions: tuple[_ActionPlan, ...]  # copies, then the catalog action
    deletes: tuple[_DeletePlan, ...]
    gated: tuple[_ActionPlan, ...]  # actions then deletes: the order of the scan's action ids
    copies: bool  # whether any action carries the scan's bytes
    suspect: str | None = None  # why the scan's new version waits for a person (an alert)


_Gate = Callable[[ActionKind, str | None, str | None], tuple[bool, bool]]


def _allow_all(kind: ActionKind, source: str | None, target: str | None) -> tuple[bool, bool]:
    """The gate of a scan no decision or failure names: allowed, not approved."""
    return True, False


class _Case:
    """One scan's facts as the rules read them, and what the rules decided so far."""

    def __init__(
        self,
        planner: _Planner,
        facts: _ScanFacts,
        flights: Sequence[InFlight],
        hold: Hold | None,
    ) -> None:
        self.levels: dict[str, Level | None] = dict(
            zip(planner._replicas, facts.levels, strict=True)
        )
        self.retained: dict[str, bool] = dict(zip(planner.keep, facts.retained, strict=True))
        recorded = facts.recorded
        self.registered = not isinstance(recorded, _NotRegistered)
        self.recorded: frozenset[str] | None = (
            None if isinstance(recorded, _NotRegistered) else recorded
        )
        self.seen_before: dict[str, bool] = dict(
            zip(planner.unknown_retention, facts.seen_before, strict=True)
        )
        # endpoint → whether the older version it holds is verified elsewhere too
        self.older: dict[str, bool] = {}
        # endpoints listing files of this scan that hold other, unverified bytes
        self.differs: frozenset[str] = frozenset()
        self.suspect: str | None = None
        if facts.versions:
            statuses, suspect = facts.versions
            assert isinstance(statuses, tuple)
            pairs = list(zip(planner._replicas, statuses, strict=True))
            self.older = {
                name: bool(status)
                for name, status in pairs
                if status is not None and status != "differs"
            }
            self.differs = frozenset(name for name, status in pairs if status == "differs")
            self.suspect = suspect if isinstance(suspect, str) else None
        self.remnant = facts.remnant
        self.export = facts.export
        self.flights = flights
        self.hold = hold
        self.blocked: list[_BlockPlan] = []
        self.actions: list[_ActionPlan] = []
        self.candidates: list[_ActionPlan] = []

    def block(self, kind: ActionKind, endpoint: str | None, code: str, reason: str | None) -> None:
        self.blocked.append(_BlockPlan(kind, endpoint, code, reason))


class _Planner:
    """One planning run. Holds the per-run indexes; `run()` returns the Plan.

    The rules are decided per scan as a `_Shape` (`_decide`), then instantiated with the scan's
    own id, action ids, bytes and due dates (`_emit`). The rules read nothing else about a scan
    than its `_ScanFacts`, its tasks in flight, its hold, and the decisions and failures recorded
    for its action ids. Most scans have none of the last three; for them the shape is a function
    of the facts alone, so it is decided once per distinct facts and reused (`_shapes`). A scan
    with a task in flight or a hold, or one of whose action ids a decision or failure names, is
    decided on its own by the same code.
    """

    def __init__(self, inp: PlanInput) -> None:
        self.inp = inp
        self.policy = inp.policy
        self.now = inp.now
        # actions by `_order` slot, each in scan order (see `run`)
        self.actions: dict[tuple[int, int], list[Action]] = defaultdict(list)
        self.blocked: list[Blocked] = []
        self.alerts: list[str] = []
        self.flight_by_scan: dict[str, list[InFlight]] = defaultdict(list)
        for flight in inp.in_flight:
            self.flight_by_scan[flight.scan].append(flight)
        self.known = {
            name: obs.ok and not self._stale(obs) for name, obs in inp.observations.items()
        }
        # endpoint → its replicas, or None when the endpoint is unknown this pass
        self._replicas = {
            name: (inp.observations[name].replicas if self.known.get(name) else None)
            for name in self.policy.endpoints
        }
        self.alert_details: list[Alert] = []
        self.deletes_frozen = self._missing_fraction_alerts()
        for alert in self.alert_details:
            # Replicas vanished here: until they return or an operator accepts the loss, what
            # this endpoint lists proves nothing — no copies into it, no catalog update from it.
            if alert.endpoint is not None:
                self.known[alert.endpoint] = False
                self._replicas[alert.endpoint] = None
        self.stale = frozenset(
            name for name, obs in inp.observations.items() if obs.ok and self._stale(obs)
        )
        self.retention_order = tuple(n for n in self.policy.endpoints if n in self.policy.retention)
        # unknown retention endpoints that were observed: a delete there is reported as blocked
        # for the scans they held before
        self.unknown_retention = tuple(
            name
            for name in self.retention_order
            if self._replicas[name] is None and name in inp.observations
        )
        self._reason_cache: dict[tuple[str, int], str] = {}
        self._shapes: dict[tuple[object, ...], _Shape] = {}
        self.keep = self.policy.keep
        self.position = {name: i for i, name in enumerate(self.policy.endpoints)}
        self.registration_endpoint = self.policy.registration_endpoint
        self.catalog_active = self.policy.catalog_enabled and inp.catalog.enabled
        self.requires_of = {n: r.delete_requires for n, r in self.policy.retention.items()}
        self.offsite = inp.export_control.offsite if inp.export_control else frozenset()
        self.target_plan = tuple(
            (t, self.policy.children(t)) for t in self.policy.targets_bottom_up
        )
        # endpoint → scan → replica still holding a verified older version (sparse: a scan
        # rewritten after it was copied); such scans carry their version facts.
        self._older: dict[str, dict[str, Replica]] = {}
        for name, reps in self._replicas.items():
            if reps is None:
                continue
            found = {sid: r for sid, r in reps.items() if r.older_version is not None or r.differs}
            if found:
                self._older[name] = found
        self._older_scans: frozenset[str] = frozenset(chain.from_iterable(self._older.values()))

    # ---- helpers -----------------------------------------------------------------------
    def _stale(self, obs: EndpointObservation) -> bool:
        if obs.observed_at is None:
            return False
        age = (self.now - obs.observed_at).total_seconds()
        return age > self.policy.max_observation_age_seconds

    def _missing_fraction_alerts(self) -> bool:
        frozen = False
        for name in self.policy.endpoints:
            obs = self.inp.observations.get(name)
            if obs is None or not obs.ok:
                continue
            previously = obs.previously_present
            baseline = len(previously) - len(previously & obs.expected_absent)
            missing = len(obs.missing())
            if baseline and missing / baseline > self.policy.max_missing_fraction:
                frozen = True
                message = (
                    f"{name}: {missing} of {baseline} previously seen replicas are missing "
                    f"({missing / baseline:.0%} > {self.policy.max_missing_fraction:.0%}); "
                    f"no deletes are planned anywhere and {name} is unknown for every action "
                    "until the replicas return or an operator acknowledges the loss"
                )
                self.alerts.append(message)
                self.alert_details.append(
                    Alert(
                        "missing_fraction",
                        AlertEffect.FREEZE_DELETES,
                        message,
                        endpoint=name,
                        cleared_by=ClearedBy.CONDITION_OR_ACKNOWLEDGEMENT,
                    )
                )
        return frozen

    def level(self, endpoint: str, scan: str) -> Level | None:
        """The replica's level, or None if the endpoint is unknown this pass."""
        replicas = self._replicas.get(endpoint)
        if replicas is None:
            return None
        replica = replicas.get(scan)
        return Level.ABSENT if replica is None else replica.level

    def _gate(
        self, scan: Scan, case: _Case, kind: ActionKind, source: str | None, target: str | None
    ) -> tuple[bool, bool]:
        """Failures and operator decisions. Returns (allowed, approved)."""
        aid = action_id(kind, scan.id, scan.checksum, source, target)
        decision = self.inp.decisions.get(aid)
        if decision == "reject":
            case.block(
                kind, target, "rejected", f"rejected by an operator (approving {aid} overrides it)"
            )
            return False, False
        failure = self.inp.failures.get(aid)
        if failure is not None:
            if failure.retry_at is None:
                code = "needs_attention" if failure.error_class.value == "needs_human" else "failed"
                case.block(kind, target, code, f"{failure.message} (retry it to try again)")
                return False, False
            if self.now < failure.retry_at:
                case.block(
                    kind,
                    target,
                    "backing_off",
                    f"retrying after {failure.retry_at.isoformat(timespec='seconds')}: "
                    f"{failure.message}",
                )
                return False, False
        return True, decision == "approve"

    def _kept_until(self, endpoint: str, due: datetime) -> str:
        key = (endpoint, due.toordinal())  # the day `_fmt_day` prints
        text = self._reason_cache.get(key)
        if text is None:
            keep_days = self.policy.retention[endpoint].keep_days
            text = f"kept at {endpoint} until {_fmt_day(due)} ({keep_days:g} days)"
            self._reason_cache[key] = text
        return text

    # ---- the run -----------------------------------------------------------------------
    def run(self) -> Plan:
        errors = list(self.inp.errors)
        for name in self.policy.endpoints:
            obs = self.inp.observations.get(name)
            if obs is not None and obs.ok and self._stale(obs):
                errors.append(
                    EndpointError(name, "last listing is older than the allowed observation age")
                )
        pending_deletes: list[tuple[Scan, tuple[_DeletePlan, ...], list[str]]] = []
        replicas = tuple(self._replicas.values())
        absent = Level.ABSENT
        now, keeps = self.now, tuple(self.keep.values())
        locations = self.inp.catalog.locations
        seen_at = tuple(self.inp.observations[n].previously_present for n in self.unknown_retention)
        holds, flight_by_scan = self.inp.holds, self.flight_by_scan
        older_scans, reappeared = self._older_scans, self.inp.reappeared
        remnants, export = self.inp.remnants, self.inp.export_control
        # action ids some decision or failure names: a scan with one of them is decided alone
        named = set(self.inp.decisions).union(self.inp.failures)
        shapes = self._shapes
        for scan_id in sorted(self.inp.scans):
            scan = self.inp.scans[scan_id]
            acquired = scan.acquired_at
            facts = (  # the scan's `_ScanFacts`, as a plain tuple: the key of `shapes`
                tuple(  # self.level(), inlined: this loop runs per scan
                    [
                        None
                        if reps is None
                        else absent
                        if (r := reps.get(scan_id)) is None
                        else r.level
                        for reps in replicas
                    ]
                ),
                tuple([now < acquired + keep for keep in keeps]),
                locations.get(scan_id, _NOT_REGISTERED),
                tuple([scan_id in seen for seen in seen_at]) if seen_at else (),
                self._versions(scan)
                if scan_id in older_scans or scan_id in reappeared or _emptied(scan)
                else (),
                scan_id in remnants,
                export.fact(scan_id) if export is not None and export.active else None,
            )
            if scan_id in flight_by_scan or scan_id in holds:
                shape = self._decide(_ScanFacts(*facts), alone=scan)
                ids = self._action_ids(scan, shape.gated)
            else:
                cached = shapes.get(facts)
                if cached is None:
                    cached = shapes[facts] = self._decide(_ScanFacts(*facts), alone=None)
                shape = cached
                if not named:
                    # deletes' ids are only needed for the ones admitted: `_admit_deletes`
                    ids = self._action_ids(scan, shape.actions)
                else:
                    # The shared shape assumed every gate open; if a decision or failure names
                    # any action it has, the scan is decided on its own instead.
                    ids = self._action_ids(scan, shape.gated)
                    if not named.isdisjoint(ids):
                        shape = self._decide(_ScanFacts(*facts), alone=scan)
                        ids = self._action_ids(scan, shape.gated)
            self._emit(scan, shape, ids, pending_deletes)
        self._admit_deletes(pending_deletes)
        # Every slot's list is in scan order (scans are planned in id order, and a scan adds
        # at most one action per slot except copies to one target from two sources, which keep
        # their configured order): the concatenation is the stable sort by (slot, scan).
        actions = tuple(chain.from_iterable(self.actions[slot] for slot in sorted(self.actions)))
        return Plan(
            as_of=self.now,
            actions=actions,
            blocked=tuple(self.blocked),
            errors=tuple(errors),
            in_flight=tuple(sorted(self.inp.in_flight, key=lambda f: (f.scan, f.action_id))),
            alerts=tuple(self.alerts),
            alert_details=tuple(self.alert_details),
        )

    def _versions(self, scan: Scan) -> tuple[object, ...]:
        """The version facts of a scan some endpoint holds an older verified version of, or
        other bytes than this version."""
        holders: dict[str, Replica] = {
            name: found[scan.id]
            for name, found in self._older.items()
            if scan.id in found and found[scan.id].older_version is not None
        }
        differ = {
            name
            for name, found in self._older.items()
            if scan.id in found and found[scan.id].older_version is None
        }
        statuses = tuple(
            "differs"
            if name in differ
            else None
            if (replica := holders.get(name)) is None
            else any(
                other.older_version == replica.older_version and not other.older_unproven
                for other_name, other in holders.items()
                if other_name != name
            )
            for name in self._replicas
        )
        suspect: str | None = None
        if _emptied(scan):
            suspect = "emptied"
        elif scan.id in self.inp.reappeared:
            suspect = "reappeared"
        return (statuses, suspect)

    def _order(self, kind: ActionKind, target: str | None) -> tuple[int, int]:
        """Make before break: copies (upstream edges first), catalog actions, then deletes.

        Within a slot, actions are ordered by scan id.
        """
        return _KIND_RANK[kind], self.position[target] if target else 0

    @staticmethod
    def _action_ids(scan: Scan, actions: tuple[_ActionPlan, ...]) -> list[str]:
        if not actions:
            return []
        sid, checksum = scan.id, scan.checksum
        return [action_id(a.kind, sid, checksum, a.source, a.target) for a in actions]

    def _decide(self, facts: _ScanFacts, *, alone: Scan | None) -> _Shape:
        """What the rules decide for a scan with these facts.

        Args:
            facts: the scan's facts.
            alone: the scan, to decide it with its own tasks in flight, hold, decisions and
                failures; or None for the shape shared by every scan with these facts that has
                no task in flight, no hold, and no decision or failure naming one of its
                actions (for those, every gate allows without approval).
        """
        if alone is not None:
            scan = alone
            case = _Case(
                self, facts, self.flight_by_scan.get(scan.id, ()), self.inp.holds.get(scan.id)
            )

            def gate(kind: ActionKind, source: str | None, target: str | None) -> tuple[bool, bool]:
                return self._gate(scan, case, kind, source, target)
        else:
            case = _Case(self, facts, (), None)
            gate = _allow_all
        wanted = self._wanted(case)
        self._plan_copies(case, gate, wanted)
        self._plan_catalog(case, gate)
        self._delete_candidates(case, gate, wanted)
        deletes = self._deletes_together(case)
        return _Shape(
            tuple(case.blocked),
            tuple(case.actions),
            deletes,
            (*case.actions, *(d.action for d in deletes)),
            any(a.kind is ActionKind.COPY for a in case.actions),
            case.suspect,
        )

    def _emit(
        self,
        scan: Scan,
        shape: _Shape,
        ids: list[str],
        pending_deletes: list[tuple[Scan, tuple[_DeletePlan, ...], list[str]]],
    ) -> None:
        """Instantiate a shape for one scan: its id, action ids, bytes and due dates."""
        sid = scan.id
        blocked = self.blocked
        for kind, endpoint, code, reason in shape.blocked:
            if reason is None:
                assert endpoint is not None
                reason = self._kept_until(endpoint, scan.acquired_at + self.keep[endpoint])
            blocked.append(Blocked(sid, kind, endpoint, code, reason))
        size = scan.size if shape.copies else 0
        if shape.suspect is not None:
            self._suspect_alert(scan, shape.suspect)
        # `ids` may go on with the deletes' ids (see `run`)
        for action, aid in zip(shape.actions, ids, strict=False):
            self.actions[action.order].append(
                Action(
                    aid,
                    action.kind,
                    sid,
                    action.source,
                    action.target,
                    size if action.kind is ActionKind.COPY else 0,
                    action.requires_approval,
                    action.reason,
                    action.approved,
                    self._replaced(action, sid),
                    versioned_name(scan) if action.versioned else None,
                    self._source_name(action, sid),
                )
            )
        if shape.deletes:
            pending_deletes.append((scan, shape.deletes, ids[len(shape.actions) :]))

    def _source_name(self, action: _ActionPlan, scan_id: str) -> str | None:
        """Where a copy reads the scan at its source, when not at the scan's own path (a
        versioned object on tape, e.g. a restore)."""
        if action.kind is not ActionKind.COPY or action.source is None:
            return None
        replicas = self._replicas.get(action.source)
        replica = replicas.get(scan_id) if replicas else None
        return replica.name if replica is not None else None

    def _replaced(self, action: _ActionPlan, scan_id: str) -> str | None:
        """What a copy replaces at its target: the older version's checksum, "unverified" for
        listed bytes not known to be any version, or None for a copy into nothing."""
        if not action.replaces or action.target is None:
            return None
        older = self._older.get(action.target, {}).get(scan_id)
        return (older.older_version if older is not None else None) or "unverified"

    def _suspect_alert(self, scan: Scan, why: str) -> None:
        if why == "emptied":
            text = (
                f"scan {scan.id!r} shrank to 0 bytes at {self.policy.inventory_endpoint} while a "
                "verified older version holds data: nothing is copied over it until an operator "
                "approves"
            )
        else:
            text = (
                f"scan {scan.id!r} was pruned from {self.policy.inventory_endpoint} and reappeared "
                "with other bytes: nothing is copied over the older version until an operator "
                "approves"
            )
        self.alerts.append(text)
        self.alert_details.append(
            Alert(
                "version_suspect",
                AlertEffect.NOTIFY,
                text,
                scan=scan.id,
                cleared_by=ClearedBy.CONDITION_OR_ACKNOWLEDGEMENT,
            )
        )

    # ---- copies ------------------------------------------------------------------------
    def _wanted(self, case: _Case) -> frozenset[str]:
        """`engine.policy.wanted_holders`, specialised for speed (same answers)."""
        levels = case.levels
        required: set[str] = set()
        for name, needs in self.requires_of.items():
            level = levels[name]
            # An endpoint that could not be listed may still hold the scan (unknown is not
            # absent): the copies its delete would rely on stay wanted.
            if level is None or level > Level.ABSENT:
                required.update(needs)
        wants: dict[str, bool] = {}
        for target, children in self.target_plan:
            wanted = target in required or case.retained.get(target, True)
            if not wanted:
                for child in children:
                    level = levels[child]
                    if wants[child] and level is not None and level < Level.CHECKSUM:
                        wanted = True
                        break
            wants[target] = wanted
        return frozenset(name for name, wanted in wants.items() if wanted)

    def _plan_copies(self, case: _Case, gate: _Gate, wanted: frozenset[str]) -> None:
        levels = case.levels
        incoming = {f.target for f in case.flights if f.kind is ActionKind.COPY and f.target}
        coming: set[str] = set(incoming)  # targets that will be filled by this plan or in flight
        for configured_source, target in self.policy.copies:
            if target not in wanted or target in incoming:
                continue
            if case.export and (held := copy_blocker(case.export, self.offsite, target)):
                case.block(ActionKind.COPY, target, *held)
                continue
            level = levels.get(target)
            if level is None:
                case.block(
                    ActionKind.COPY,
                    target,
                    "endpoint_unknown",
                    f"{target} could not be listed this pass",
                )
                continue
            if level >= Level.CHECKSUM:
                continue
            older = case.older.get(target)
            tape = target in self.policy.tape
            if older is not None and not tape and not self._may_replace(case, target, older):
                continue
            source = self._copy_source(case, configured_source, target, coming, wanted)
            if source is None:
                continue
            allowed, approved = gate(ActionKind.COPY, source, target)
            if not allowed:
                continue
            recall = source in self.policy.tape
            # Files of this scan already listed at a disk target but not verified as this
            # version may be an older version whose evidence was lost, or a user's file:
            # overwriting them is a replace. On write-once tape nothing is ever overwritten:
            # the new version is archived beside them under a versioned name.
            unverified = target in case.differs
            versioned = tape and (older is not None or unverified)
            replaces = (older is not None or unverified) and not versioned
            if replaces and case.hold is not None:
                # A replace removes the bytes there, like a delete: a hold stops it too.
                hold = case.hold
                case.block(
                    ActionKind.COPY, target, "on_hold", f"held by {hold.placed_by}: {hold.reason}"
                )
                continue
            needs_approval = (
                recall
                or ActionKind.COPY in self.policy.approval_for
                or (replaces and ActionKind.DELETE in self.policy.approval_for)
                or case.suspect is not None
            )
            state = "absent" if level is Level.ABSENT else f"verified by {level.word} only"
            reason = f"{target} copy is {state}"
            if unverified:
                reason += "; the files there hold other bytes, which this copy overwrites"
            if older is not None and not versioned:
                reason = (
                    f"replaces the verified older version at {target} with the new one "
                    "(the older version stays verified elsewhere)"
                )
            if versioned:
                reason = (
                    f"{target} is write-once tape and holds other bytes at this scan's path "
                    "(an older version): the new version is archived beside it under a "
                    "versioned name, nothing is overwritten"
                )
            if source != configured_source:
                reason += f"; restoring from {source}" + (" (tape recall)" if recall else "")
            case.actions.append(
                _ActionPlan(
                    ActionKind.COPY,
                    source,
                    target,
                    needs_approval,
                    reason,
                    approved if needs_approval else False,
                    self._order(ActionKind.COPY, target),
                    replaces,
                    versioned,
                )
            )
            coming.add(target)

    def _may_replace(self, case: _Case, target: str, verified_elsewhere: bool) -> bool:
        """Whether the new version may be copied over the older version disk endpoint `target`
        holds (on tape the new version goes beside it, under a versioned name)."""
        if not verified_elsewhere:
            case.block(
                ActionKind.COPY,
                target,
                "version_conflict",
                f"{target} holds the only verified copy of an older version of this scan: it is "
                "not replaced until that version is verified elsewhere (an operator decides)",
            )
            return False
        return True

    def _copy_source(
        self,
        case: _Case,
        configured: str,
        target: str,
        coming: set[str],
        wanted: frozenset[str],
    ) -> str | None:
        """The configured source if it holds a verified copy.

        While the configured source should still get its own copy, the copy waits for it (make
        before break, and no detour around the configured route). Only a copy the configured
        source can no longer provide (pruned, or lost after its retention) is restored from
        another endpoint holding a verified copy, disk before tape.
        """
        levels = case.levels
        level = levels.get(configured)
        if level is not None and level >= Level.CHECKSUM:
            return configured
        still_expected = (
            configured in coming
            or configured in wanted
            or (configured == self.policy.inventory_endpoint and level is not Level.ABSENT)
        )
        if level is None or still_expected:
            code = "endpoint_unknown" if level is None else "waiting_for_source"
            why = (
                f"source {configured} could not be listed this pass"
                if level is None
                else f"waits for the {configured} copy to be verified first"
            )
            case.block(ActionKind.COPY, target, code, why)
            return None
        holders = [
            name
            for name in self.policy.endpoints
            if name != target and (levels.get(name) or Level.ABSENT) >= Level.CHECKSUM
        ]
        holders.sort(key=lambda name: name in self.policy.tape)  # disk before tape
        if holders:
            return holders[0]
        case.block(
            ActionKind.COPY,
            target,
            "source_missing",
            f"no endpoint holds a verified copy to copy from ({configured}: {level.word})",
        )
        return None

    # ---- catalog -----------------------------------------------------------------------
    @staticmethod
    def _verified_locations(levels: Mapping[str, Level | None]) -> frozenset[str] | None:
        """Endpoints holding a verified copy, or None if any endpoint is unknown this pass."""
        out = set()
        for name, level in levels.items():
            if level is None:
                return None
            if level >= Level.CHECKSUM:
                out.add(name)
        return frozenset(out)

    def _plan_catalog(self, case: _Case, gate: _Gate) -> None:
        catalog = self.inp.catalog
        if not self.catalog_active:
            return
        first = self.registration_endpoint
        recorded_locations = case.recorded
        if recorded_locations is None:
            if first is None or (case.levels.get(first) or Level.ABSENT) < Level.CHECKSUM:
                return  # registering waits for the first verified copy
            kind = ActionKind.REGISTER
            reason = f"{first} copy verified; not yet in the catalog"
        else:
            locations = self._verified_locations(case.levels)
            if locations is None or locations == recorded_locations:
                return
            kind = ActionKind.UPDATE_CATALOG
            recorded = ", ".join(sorted(recorded_locations)) or "none"
            reason = f"locations changed: catalog has {recorded}; now {', '.join(sorted(locations)) or 'none'}"
        if not catalog.usable:
            case.block(kind, None, "catalog_unavailable", _catalog_unknown(catalog))
            return
        allowed, approved = gate(kind, None, None)
        if not allowed:
            return
        needs_approval = kind in self.policy.approval_for
        case.actions.append(
            _ActionPlan(
                kind,
                None,
                None,
                needs_approval,
                reason,
                approved if needs_approval else False,
                self._order(kind, None),
            )
        )

    # ---- deletes -----------------------------------------------------------------------
    def _delete_candidates(self, case: _Case, gate: _Gate, wanted: frozenset[str]) -> None:
        levels, flights = case.levels, case.flights
        for endpoint in self.retention_order:
            level = levels[endpoint]
            if level is None:
                if case.seen_before.get(endpoint, False):
                    case.block(
                        ActionKind.DELETE,
                        endpoint,
                        "endpoint_unknown",
                        f"{endpoint} could not be listed this pass",
                    )
                continue
            if level is Level.ABSENT:
                continue
            if any(f.kind is ActionKind.DELETE and f.target == endpoint for f in flights):
                continue
            reason = self._delete_blocker(case, endpoint)
            if reason is None and case.older.get(endpoint) is False:
                reason = (
                    "version_conflict",
                    f"{endpoint} holds the only verified copy of an older version of this scan",
                )
            if (
                reason is None
                and endpoint in self.policy.tape
                and (endpoint in case.older or endpoint in case.differs)
            ):
                # The scan's own path there holds other bytes: this version is kept beside
                # them under a versioned name, and a prune would remove the scan's own path.
                reason = (
                    "version_conflict",
                    f"{endpoint} is write-once tape and keeps this version beside other bytes "
                    "at the scan's path: it is not pruned there (an operator decides)",
                )
            if reason is None and endpoint in wanted:
                reason = ("still_needed", self._relied_on_by(case, endpoint))
            if reason is not None:
                case.block(ActionKind.DELETE, endpoint, *reason)
                continue
            allowed, approved = gate(ActionKind.DELETE, None, endpoint)
            if allowed:
                rule = self.policy.retention[endpoint]
                needs_approval = ActionKind.DELETE in self.policy.approval_for
                required = ", ".join(rule.delete_requires)
                case.candidates.append(
                    _ActionPlan(
                        ActionKind.DELETE,
                        None,
                        endpoint,
                        needs_approval,
                        f"retention passed; {required} verified by {rule.verify.word}",
                        approved if needs_approval else False,
                        self._order(ActionKind.DELETE, endpoint),
                    )
                )

    def _relied_on_by(self, case: _Case, endpoint: str) -> str:
        """Why the copy at `endpoint` is still needed, naming what relies on it.

        A holder whose delete requires this copy, and where that delete stands (awaiting
        approval, approved, planned, in flight, or held back and why), so an operator sees that
        this prune comes in a later round. Holders are decided first (retention order), so their
        delete candidates are known here.
        """
        for holder, needs in self.requires_of.items():
            if endpoint not in needs or holder == endpoint:
                continue
            level = case.levels.get(holder)
            if level is None:
                return f"{holder} could not be listed: the copy there may still rely on this one"
            if level is Level.ABSENT:
                continue
            if any(f.kind is ActionKind.DELETE and f.target == holder for f in case.flights):
                return f"the {holder} prune in flight relies on this copy"
            planned = next((c for c in case.candidates if c.target == holder), None)
            if planned is not None:
                if planned.requires_approval and not planned.approved:
                    return (
                        f"the {holder} prune awaiting approval relies on this copy; "
                        "this prune follows it"
                    )
                if planned.approved:
                    return f"the approved {holder} prune relies on this copy"
                return f"the {holder} prune planned in this pass relies on this copy"
            held = next(
                (
                    b.code
                    for b in case.blocked
                    if b.kind is ActionKind.DELETE and b.endpoint == holder
                ),
                None,
            )
            why = f" ({holder}: {held})" if held else ""
            return f"the {holder} copy relies on this one until it is pruned{why}"
        return "a copy still to be made from this one needs it as its source"

    def _delete_blocker(self, case: _Case, endpoint: str) -> tuple[str, str | None] | None:
        """Why the copy at `endpoint` may not be deleted now (code, reason), or None.

        A reason of None stands for "kept at … until <due date>": the only reason that names the
        scan's own date, filled in by `_emit`.
        """
        levels = case.levels
        rule = self.policy.retention[endpoint]
        if case.retained[endpoint]:  # now < acquired_at + keep
            return "retention_not_reached", None
        if case.export and (
            held := delete_blocker(case.export, self.offsite, rule.delete_requires)
        ):
            return held
        if (
            endpoint == self.policy.inventory_endpoint
            and (levels[endpoint] or Level.ABSENT) < Level.CHECKSUM
            and not (case.remnant and levels[endpoint] is Level.PRESENT)
        ):
            return (
                "changed_since_inventory",
                f"the files at {endpoint} differ from the inventoried version",
            )
        hold = case.hold
        if hold is not None:
            return "on_hold", f"held by {hold.placed_by}: {hold.reason}"
        if self.deletes_frozen:
            return "missing_fraction_exceeded", "too many replicas vanished; deletes are frozen"
        if any(f.source == endpoint or f.target == endpoint for f in case.flights):
            return "source_in_use", f"a task in flight reads or writes this scan at {endpoint}"
        for required in rule.delete_requires:
            if any(f.kind is ActionKind.DELETE and f.target == required for f in case.flights):
                return (
                    "required_copy_being_deleted",
                    f"a delete of the {required} copy this delete relies on is in flight",
                )
            if required in self.stale:
                return "observation_stale", f"{required} was last listed too long ago"
            level = levels.get(required)
            if level is None:
                return "endpoint_unknown", f"{required} could not be listed this pass"
            if level < rule.verify:
                state = "absent" if level is Level.ABSENT else f"verified by {level.word} only"
                return (
                    "copy_unverified",
                    f"{required} copy is {state}; policy requires {rule.verify.word}",
                )
        catalog = self.inp.catalog
        if self.policy.catalog_enabled and catalog.lost:
            # The catalog lost records: no delete anywhere, whatever `required_for_delete` says.
            return "catalog_unavailable", _catalog_unknown(catalog)
        if self.policy.catalog_enabled and self.policy.catalog_required_for_delete:
            if not catalog.ok:
                return "catalog_unavailable", _catalog_unknown(catalog)
            if catalog.enabled and not case.registered:
                return "not_catalogued", "the scan is not yet registered in the catalog"
        return None

    def _deletes_together(self, case: _Case) -> tuple[_DeletePlan, ...]:
        """Check a scan's delete candidates together, in order: a delete may not remove a copy
        an earlier admitted delete relies on, nor rely on a copy being deleted, nor leave no
        verified copy. The per-pass cap is applied afterwards by `_admit_deletes`."""
        out: list[_DeletePlan] = []
        deleting: set[str] = set()
        pinned: set[str] = set()
        for action in case.candidates:
            endpoint = action.target
            assert endpoint is not None
            rule = self.policy.retention[endpoint]
            if endpoint in pinned:
                verdict: tuple[str, str] | None = (
                    "required_by_other_delete",
                    "another delete in this plan relies on this copy; next pass",
                )
            elif deleting & set(rule.delete_requires):
                verdict = (
                    "required_by_other_delete",
                    "a copy this delete relies on is being deleted in this plan",
                )
            elif not [
                name
                for name in self.policy.endpoints
                if name != endpoint
                and name not in deleting
                and (case.levels.get(name) or Level.ABSENT) >= rule.verify
            ]:
                verdict = ("last_copy", "this is the last verified copy; it is never deleted")
            else:
                verdict = None
                deleting.add(endpoint)
                pinned.update(rule.delete_requires)
            out.append(_DeletePlan(action, verdict))
        return tuple(out)

    def _admit_deletes(
        self, pending: list[tuple[Scan, tuple[_DeletePlan, ...], list[str]]]
    ) -> None:
        """Apply the per-pass cap to the deletes checked together, scan by scan in id order.

        The cap check comes first: once reached, every further delete is blocked by it. Before
        that, each delete meets the verdict `_deletes_together` gave it, which depends only on
        the deletes of its scan admitted before it — the same ones admitted here.

        `ids` holds the deletes' action ids when `run` needed them already, else it is empty and
        the id of an admitted delete is computed here.
        """
        admitted = 0
        cap = self.policy.max_deletes_per_pass
        capped = f"at most {cap} deletes per pass"
        delete = ActionKind.DELETE
        for scan, deletes, ids in pending:
            for index, (action, together) in enumerate(deletes):
                if admitted >= cap:
                    self.blocked.append(
                        Blocked(scan.id, delete, action.target, "delete_cap_reached", capped)
                    )
                    continue
                if together is not None:
                    self.blocked.append(
                        Blocked(scan.id, ActionKind.DELETE, action.target, *together)
                    )
                    continue
                admitted += 1
                aid = (
                    ids[index]
                    if ids
                    else action_id(ActionKind.DELETE, scan.id, scan.checksum, None, action.target)
                )
                self.actions[action.order].append(
                    Action(
                        aid,
                        ActionKind.DELETE,
                        scan.id,
                        None,
                        action.target,
                        scan.size,
                        action.requires_approval,
                        action.reason,
                        action.approved,
                    )
                )


def _catalog_unknown(catalog: CatalogView) -> str:
    if not catalog.ok:
        return f"catalog unavailable: {catalog.error or 'no answer'}"
    return (
        f"the catalog lost {len(catalog.lost)} registered document(s); it is unknown until "
        "they are back or an operator acknowledges the loss"
    )


def _emptied(scan: Scan) -> bool:
    """A later version of a scan that has no bytes (it shrank to zero since it was first seen)."""
    return scan.version > 1 and scan.size == 0


def plan(inp: PlanInput) -> Plan:
    """Compute the plan for one pass.

    Args:
        inp: everything the planner may look at; it reads nothing else.

    Returns:
        The Plan: allowed actions (copies in make-before-break order, catalog actions, deletes),
        what is blocked and why, errors and alerts.
    """
    # The planner builds hundreds of thousands of small acyclic objects; cyclic garbage
    # collection passes over them would only cost time (measured: ~20% at 100k scans).
    collecting = gc.isenabled()
    gc.disable()
    try:
        result = _Planner(inp).run()
        if inp.export_control is not None:
            result = replace(result, export_controlled=inp.export_control.flagged(inp.scans))
        return result
    finally:
        if collecting:
            gc.enable()

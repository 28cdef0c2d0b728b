"""Property tests: no plan, for any policy, inventory and observation, breaks DESIGN §3 rules 1–2.

Hypothesis draws random valid policies (acyclic copies from the inventory endpoint, acyclic
`delete_requires` that always end at an endpoint kept forever), random scans and random
observations — endpoints that failed to list, replicas at every level, vanished replicas, tasks
in flight, holds, operator decisions — and checks every plan against the rules.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.model import (
    ActionKind,
    CatalogView,
    EndpointObservation,
    Hold,
    InFlight,
    Level,
    Replica,
    Scan,
    ScanFile,
)
from engine.planner import PlanInput, plan
from engine.policy import Policy, RetentionRule

ENDPOINTS = ("dtn", "cfs", "hpss", "nas")
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    count = draw(st.integers(min_value=2, max_value=len(ENDPOINTS)))
    names = ENDPOINTS[:count]
    # Copy tree: every endpoint after the first gets a source among the earlier ones.
    copies = tuple((names[draw(st.integers(0, i - 1))], names[i]) for i in range(1, count))
    # Requirements point to later endpoints only (acyclic); the last endpoint keeps forever.
    retention: dict[str, RetentionRule] = {}
    for i, name in enumerate(names[:-1]):
        if draw(st.booleans()):
            later = list(names[i + 1 :])
            requires = draw(
                st.lists(st.sampled_from(later), min_size=1, max_size=len(later), unique=True)
            )
            retention[name] = RetentionRule(
                keep_days=draw(st.sampled_from([0, 1, 30, 180])),
                delete_requires=tuple(requires),
                verify=draw(st.sampled_from([Level.SIZE, Level.CHECKSUM])),
            )
    return Policy(
        inventory_endpoint=names[0],
        endpoints=names,
        copies=copies,
        retention=retention,
        tape=frozenset(draw(st.sets(st.sampled_from(names[1:])))),
        max_missing_fraction=draw(st.sampled_from([0.1, 0.5, 1.0])),
        max_deletes_per_pass=draw(st.sampled_from([0, 1, 3, 1000])),
        catalog_enabled=draw(st.booleans()),
        catalog_required_for_delete=draw(st.booleans()),
    )


# Healthy states dominate, so that deletes are actually planned and the rules get exercised;
# failures (unknown endpoints, vanished replicas, holds, tasks in flight) are mixed in.
LEVELS = [Level.CHECKSUM] * 5 + [Level.SIZE, Level.PRESENT, Level.ABSENT, Level.ABSENT]


@st.composite
def inputs(draw: st.DrawFn) -> PlanInput:
    policy = draw(policies())
    now = EPOCH + timedelta(days=draw(st.integers(0, 800)))
    scan_ids = draw(
        st.lists(
            st.sampled_from([f"2026/s{i:02d}.h5" for i in range(12)]),
            min_size=1,
            max_size=8,
            unique=True,
        )
    )
    scans = {}
    for sid in scan_ids:
        acquired = EPOCH + timedelta(days=draw(st.integers(0, 400)))
        checksum = draw(st.sampled_from(["aa", "bb"]))
        scans[sid] = Scan(
            sid, (ScanFile(sid, 10, acquired.timestamp(), checksum),), acquired, "md5", checksum
        )
    observations = {}
    for name in policy.endpoints:
        ok = draw(st.sampled_from([True] * 6 + [False]))
        replicas = {}
        previously = set()
        for sid in scan_ids:
            level = draw(st.sampled_from(LEVELS))
            if level is not Level.ABSENT:
                replicas[sid] = Replica(sid, name, level, 10, 1)
            # Mostly: seen before where present now; sometimes a replica vanished.
            if draw(st.sampled_from([level is not Level.ABSENT] * 5 + [True, False])):
                previously.add(sid)
        observations[name] = EndpointObservation(
            name,
            ok=ok,
            replicas=replicas if ok else {},
            error=None if ok else "boom",
            previously_present=frozenset(previously),
            expected_absent=frozenset(draw(st.sets(st.sampled_from(scan_ids), max_size=2))),
        )
    flights = []
    for sid in draw(st.sets(st.sampled_from(scan_ids), max_size=2)):
        source, target = draw(st.sampled_from(policy.copies))
        kind = draw(st.sampled_from([ActionKind.COPY, ActionKind.DELETE]))
        flights.append(
            InFlight(f"f-{sid}", kind, sid, source if kind is ActionKind.COPY else None, target)
        )
    holds = {
        sid: Hold(sid, "keep", "tester", EPOCH)
        for sid in draw(st.sets(st.sampled_from(scan_ids), max_size=2))
    }
    registered = [sid for sid in scan_ids if draw(st.sampled_from([True] * 4 + [False]))]
    catalog = CatalogView(
        enabled=True,
        ok=draw(st.sampled_from([True] * 4 + [False])),
        locations={sid: frozenset(policy.endpoints[:1]) for sid in registered},
    )
    return PlanInput(
        policy=policy,
        scans=scans,
        observations=observations,
        now=now,
        catalog=catalog,
        in_flight=tuple(flights),
        holds=holds,
    )


def level_of(inp: PlanInput, endpoint: str, scan: str) -> Level | None:
    obs = inp.observations[endpoint]
    return obs.level(scan) if obs.ok else None


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(inputs())
def test_every_delete_obeys_rule_1(inp: PlanInput) -> None:
    result = plan(inp)
    deletes = [a for a in result.actions if a.kind is ActionKind.DELETE]
    assert len(deletes) <= inp.policy.max_deletes_per_pass
    for action in deletes:
        assert action.source is None and action.target is not None
        scan = inp.scans[action.scan]
        rule = inp.policy.retention[action.target]
        assert inp.now >= scan.acquired_at + timedelta(days=rule.keep_days)
        assert action.scan not in inp.holds
        for required in rule.delete_requires:
            level = level_of(inp, required, action.scan)
            assert level is not None and level >= rule.verify  # known and verified
        assert level_of(inp, action.target, action.scan) is not None
        assert not any(
            f.scan == action.scan and action.target in (f.source, f.target) for f in inp.in_flight
        )
        assert not any(
            f.scan == action.scan
            and f.kind is ActionKind.DELETE
            and f.target in rule.delete_requires
            for f in inp.in_flight
        ), "a delete relies on a copy whose own delete is in flight"
        assert action.requires_approval  # deletes are gated by default


@SETTINGS
@given(inputs())
def test_deletes_of_one_plan_are_safe_together(inp: PlanInput) -> None:
    result = plan(inp)
    deleted: dict[str, set[str]] = {}
    for action in result.actions:
        if action.kind is ActionKind.DELETE:
            deleted.setdefault(action.scan, set()).add(action.target or "")
    for scan, targets in deleted.items():
        for target in targets:
            rule = inp.policy.retention[target]
            for required in rule.delete_requires:
                assert required not in targets, f"{scan}: {target} relies on {required}"
            survivors = [
                name
                for name in inp.policy.endpoints
                if name not in targets
                and (level_of(inp, name, scan) or Level.ABSENT) >= rule.verify
            ]
            assert survivors, f"{scan}: the last verified copy would be deleted"


@SETTINGS
@given(inputs())
def test_unknown_is_not_absent(inp: PlanInput) -> None:
    """Rule 2: nothing is planned on or from an endpoint that failed to list, and a pass that
    sees too many replicas vanish plans no deletes at all."""
    result = plan(inp)
    unknown = {n for n, o in inp.observations.items() if not o.ok}
    for action in result.actions:
        if action.kind is ActionKind.COPY:
            assert action.source not in unknown and action.target not in unknown
    frozen = any(
        o.ok
        and (base := len(o.previously_present - o.expected_absent))
        and len(o.missing()) / base > inp.policy.max_missing_fraction
        for o in inp.observations.values()
    )
    if frozen:
        assert not any(a.kind is ActionKind.DELETE for a in result.actions)
        assert result.alerts


@SETTINGS
@given(inputs())
def test_plan_is_deterministic(inp: PlanInput) -> None:
    first = plan(inp)
    reordered = PlanInput(
        policy=inp.policy,
        scans=dict(reversed(list(inp.scans.items()))),
        observations=dict(reversed(list(inp.observations.items()))),
        now=inp.now,
        catalog=inp.catalog,
        in_flight=tuple(reversed(inp.in_flight)),
        holds=inp.holds,
    )
    second = plan(reordered)
    assert first.digest == second.digest
    assert [a.id for a in first.actions] == [a.id for a in second.actions]
    assert len({a.id for a in first.actions}) == len(first.actions)


@SETTINGS
@given(inputs())
def test_copies_go_upstream_first_and_never_from_unverified_sources(inp: PlanInput) -> None:
    result = plan(inp)
    copies = [a for a in result.actions if a.kind is ActionKind.COPY]
    order = inp.policy.endpoints
    positions = [order.index(a.target or "") for a in copies]
    assert positions == sorted(positions)
    for action in copies:
        assert level_of(inp, action.source or "", action.scan) == Level.CHECKSUM
        assert (level_of(inp, action.target or "", action.scan) or Level.ABSENT) < Level.CHECKSUM
        if action.source in inp.policy.tape:
            assert action.requires_approval  # a tape recall waits for an operator

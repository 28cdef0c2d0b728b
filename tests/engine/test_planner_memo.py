"""The planner's memo changes nothing: the memoised plan equals the plain one.

The planner decides the rules once per distinct scan facts and shares the result between scans
with equal facts; scans with their own decisions, failures, holds or tasks in flight are decided
alone. `plan(inp, memo=False)` decides every scan alone. Hypothesis draws inputs where many scans
share facts (so the memo is used), then operator decisions (approvals and rejects of actions the
plan proposes or blocks), failures (needing a person, terminal, backing off, due for a retry),
holds and tasks in flight, endpoints that failed to list or were listed too long ago, rot (a
verified copy now listed as present only), older versions and other bytes at a target, emptied
and reappeared scans, remnants of a partial delete, and a catalog that is down or lost records.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.model import (
    ActionKind,
    CatalogView,
    EndpointObservation,
    ErrorClass,
    Failure,
    Hold,
    InFlight,
    Level,
    Replica,
    Scan,
    ScanFile,
    action_id,
)
from engine.planner import PlanInput, plan
from engine.rules.reasons import ReasonCode
from tests.engine.test_planner_properties import policies

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SCAN_IDS = [f"2026/s{i:02d}.h5" for i in range(16)]
# Few distinct facts, many scans: most scans share a shape with others.
LEVELS = [Level.CHECKSUM] * 4 + [Level.SIZE, Level.PRESENT, Level.ABSENT]


@st.composite
def worlds(draw: st.DrawFn) -> PlanInput:
    """A pass without decisions or failures (those are drawn against its plan)."""
    policy = draw(policies())
    now = EPOCH + timedelta(days=draw(st.sampled_from([0, 40, 200, 800])))
    scan_ids = draw(st.lists(st.sampled_from(SCAN_IDS), min_size=1, max_size=16, unique=True))
    scans = {}
    for sid in scan_ids:
        acquired = EPOCH - timedelta(days=draw(st.sampled_from([0, 100, 400])))
        checksum = draw(st.sampled_from(["aa", "bb"]))
        emptied = draw(st.sampled_from([False] * 9 + [True]))
        size = 0 if emptied else 10
        scans[sid] = Scan(
            sid,
            (ScanFile(sid, size, acquired.timestamp(), checksum),),
            acquired,
            "md5",
            checksum,
            version=2 if emptied else 1,
        )
    # A few "kinds" of scan, each scan taking one: equal levels everywhere for scans of a kind.
    kinds = draw(st.integers(1, 3))
    kind_of = {sid: draw(st.integers(0, kinds - 1)) for sid in scan_ids}
    observations = {}
    for name in policy.endpoints:
        ok = draw(st.sampled_from([True] * 6 + [False]))  # False: the endpoint failed to list
        stale = draw(st.sampled_from([False] * 8 + [True]))  # a reused, too old listing
        level_of_kind = [draw(st.sampled_from(LEVELS)) for _ in range(kinds)]
        replicas = {}
        previously = set()
        for sid in scan_ids:
            level = level_of_kind[kind_of[sid]]
            if draw(st.sampled_from([False] * 9 + [True])):  # rot: verified bytes changed
                level = Level.PRESENT
            if level is not Level.ABSENT:
                older = draw(st.sampled_from([None] * 6 + ["old1", "old2"]))
                replicas[sid] = Replica(
                    sid,
                    name,
                    level,
                    10,
                    1,
                    older_version=older,
                    differs=older is None and draw(st.sampled_from([False] * 7 + [True])),
                    older_unproven=older is not None and draw(st.booleans()),
                )
            if draw(st.sampled_from([level is not Level.ABSENT] * 6 + [True, False])):
                previously.add(sid)
        observations[name] = EndpointObservation(
            name,
            ok=ok,
            replicas=replicas if ok else {},
            error=None if ok else "boom",
            previously_present=frozenset(previously),
            observed_at=now - timedelta(hours=5) if stale else None,
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
    registered = [sid for sid in scan_ids if draw(st.sampled_from([True] * 3 + [False]))]
    where = draw(st.sets(st.sampled_from(policy.endpoints), min_size=1))
    catalog = CatalogView(
        enabled=draw(st.sampled_from([True] * 5 + [False])),
        ok=draw(st.sampled_from([True] * 5 + [False])),
        error="catalog down",
        locations={sid: frozenset(where) for sid in registered},
        lost=frozenset(draw(st.sets(st.sampled_from(registered), max_size=1)))
        if registered
        else frozenset(),
    )
    return PlanInput(
        policy=policy,
        scans=scans,
        observations=observations,
        now=now,
        catalog=catalog,
        in_flight=tuple(flights),
        holds=holds,
        reappeared=frozenset(draw(st.sets(st.sampled_from(scan_ids), max_size=2))),
        remnants=frozenset(draw(st.sets(st.sampled_from(scan_ids), max_size=2))),
    )


def candidate_ids(inp: PlanInput) -> list[str]:
    """Ids of the actions the plain plan proposes, and of every delete or copy it could name
    (blocked ones included), so decisions and failures fall on actions that matter."""
    proposed = [a.id for a in plan(inp, memo=False).actions]
    possible = []
    for scan in inp.scans.values():
        for endpoint in inp.policy.retention:
            possible.append(action_id(ActionKind.DELETE, scan.id, scan.checksum, None, endpoint))
        for source, target in inp.policy.copies:
            possible.append(action_id(ActionKind.COPY, scan.id, scan.checksum, source, target))
        for kind in (ActionKind.REGISTER, ActionKind.UPDATE_CATALOG):
            possible.append(action_id(kind, scan.id, scan.checksum, None, None))
    return sorted(set(proposed)) + sorted(set(possible) - set(proposed))


def failures_for(draw: st.DrawFn, ids: list[str], now: datetime) -> dict[str, Failure]:
    out = {}
    for aid in draw(st.lists(st.sampled_from(ids), max_size=4, unique=True)):
        error_class = draw(st.sampled_from(list(ErrorClass)))
        retry_at = draw(st.sampled_from([None, now + timedelta(minutes=5), now - timedelta(1)]))
        out[aid] = Failure(aid, error_class, "it broke", retry_at)
    return out


@st.composite
def passes_with_decisions(draw: st.DrawFn) -> PlanInput:
    world = draw(worlds())
    ids = candidate_ids(world)
    decisions = {
        aid: draw(st.sampled_from(["approve", "reject"]))
        for aid in draw(st.lists(st.sampled_from(ids), max_size=5, unique=True))
    }
    return PlanInput(
        policy=world.policy,
        scans=world.scans,
        observations=world.observations,
        now=world.now,
        catalog=world.catalog,
        in_flight=world.in_flight,
        holds=world.holds,
        decisions=decisions,
        failures=failures_for(draw, ids, world.now),
        reappeared=world.reappeared,
        remnants=world.remnants,
    )


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(passes_with_decisions())
def test_memoised_plan_equals_plain_plan(inp: PlanInput) -> None:
    memoised, plain = plan(inp), plan(inp, memo=False)
    assert memoised.actions == plain.actions
    assert memoised.blocked == plain.blocked
    assert memoised.alert_details == plain.alert_details
    assert memoised.errors == plain.errors
    assert memoised.digest == plain.digest


@SETTINGS
@given(passes_with_decisions())
def test_planner_emits_only_reason_codes(inp: PlanInput) -> None:
    """Every blocked entry carries a `ReasonCode` (docs/audit.md lists them)."""
    for blocked in plan(inp).blocked:
        assert isinstance(blocked.reason_code, ReasonCode), blocked
        assert blocked.reason_code in set(ReasonCode)

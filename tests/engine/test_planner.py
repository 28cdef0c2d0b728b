"""Planner scenarios, one rule at a time, on the production policy shape (dtn → cfs → hpss)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

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
)
from engine.planner import PlanInput, plan
from engine.policy import Policy, RetentionRule

NOW = datetime(2027, 6, 1, tzinfo=UTC)
C = Level.CHECKSUM
OLD = NOW - timedelta(days=1000)  # past every retention
POLICY = Policy(
    inventory_endpoint="dtn",
    endpoints=("dtn", "cfs", "hpss"),
    copies=(("dtn", "cfs"), ("cfs", "hpss")),
    retention={
        "dtn": RetentionRule(180, ("cfs",), Level.CHECKSUM),
        "cfs": RetentionRule(730, ("hpss",), Level.CHECKSUM),
    },
    tape=frozenset({"hpss"}),
)


def scan(sid: str = "2026/a.h5", acquired: datetime = OLD) -> Scan:
    return Scan(sid, (ScanFile(sid, 100, acquired.timestamp(), "c0"),), acquired, "md5", "c0")


def observe(
    levels: dict[str, dict[str, Level]],
    *,
    down: tuple[str, ...] = (),
    previously: dict[str, set[str]] | None = None,
) -> dict[str, EndpointObservation]:
    out = {}
    for name in POLICY.endpoints:
        reps = {
            s: Replica(s, name, lvl, 100, 1)
            for s, lvl in levels.get(name, {}).items()
            if lvl is not Level.ABSENT
        }
        prev = frozenset((previously or {}).get(name, set(reps)))
        out[name] = EndpointObservation(
            name,
            ok=name not in down,
            replicas=reps,
            previously_present=prev,
            error="boom" if name in down else None,
        )
    return out


def inp(scans: list[Scan], levels: dict[str, dict[str, Level]], **kw) -> PlanInput:  # type: ignore[no-untyped-def]
    registered = {
        s.id: frozenset(n for n, by_scan in levels.items() if by_scan.get(s.id) is C) for s in scans
    }
    catalog = kw.pop("catalog", CatalogView(enabled=True, locations=registered))
    observations = observe(levels, down=kw.pop("down", ()), previously=kw.pop("previously", None))
    return PlanInput(
        policy=kw.pop("policy", POLICY),
        scans={s.id: s for s in scans},
        observations=observations,
        now=kw.pop("now", NOW),
        catalog=catalog,
        **kw,
    )


EVERYWHERE = {"dtn": {"2026/a.h5": C}, "cfs": {"2026/a.h5": C}, "hpss": {"2026/a.h5": C}}


def kinds(result) -> list[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    return [(a.kind.value, a.target) for a in result.actions]


def codes(result) -> set[tuple[str, str | None, str]]:  # type: ignore[no-untyped-def]
    return {(b.kind.value, b.endpoint, b.reason_code) for b in result.blocked}


def test_new_scan_is_copied_to_cfs_first_and_hpss_waits() -> None:
    result = plan(inp([scan(acquired=NOW)], {"dtn": {"2026/a.h5": C}}))
    assert kinds(result) == [("copy", "cfs")]
    assert ("copy", "hpss", "waiting_for_source") in codes(result)
    assert ("delete", "dtn", "retention_not_reached") in codes(result)


def test_deletes_due_together_are_split_across_passes() -> None:
    result = plan(inp([scan()], EVERYWHERE))
    assert kinds(result) == [("delete", "dtn")]
    # The cfs copy is what the dtn delete relies on: it stays until dtn is gone.
    assert ("delete", "cfs", "still_needed") in codes(result)
    assert result.actions[0].requires_approval and not result.actions[0].approved


def test_unlisted_endpoint_blocks_what_depends_on_it() -> None:
    result = plan(inp([scan()], EVERYWHERE, down=("cfs",)))
    assert all(a.kind is not ActionKind.DELETE for a in result.actions)
    assert ("delete", "dtn", "endpoint_unknown") in codes(result)
    assert ("delete", "cfs", "endpoint_unknown") in codes(result)


def test_many_vanished_replicas_freeze_every_delete_and_alert() -> None:
    scans = [scan(f"2026/{i}.h5") for i in range(10)]
    levels = {name: {s.id: C for s in scans} for name in ("dtn", "hpss")}
    levels["cfs"] = {s.id: C for s in scans[:8]}  # two of ten vanished from cfs
    previously = {name: {s.id for s in scans} for name in POLICY.endpoints}
    result = plan(inp(scans, levels, previously=previously))
    assert not [a for a in result.actions if a.kind is ActionKind.DELETE]
    assert result.alerts and "cfs: 2 of 10" in result.alerts[0]
    assert ("delete", "dtn", "missing_fraction_exceeded") in codes(result)


def test_absences_the_engine_caused_are_not_missing() -> None:
    scans = [scan(f"2026/{i}.h5") for i in range(10)]
    levels = {"dtn": {}, "cfs": {s.id: C for s in scans}, "hpss": {s.id: C for s in scans}}
    obs = observe(levels, previously={"dtn": {s.id for s in scans}})
    obs["dtn"] = EndpointObservation(
        "dtn",
        ok=True,
        replicas={},
        previously_present=frozenset(s.id for s in scans),
        expected_absent=frozenset(s.id for s in scans),
    )
    registered = {s.id: frozenset({"cfs", "hpss"}) for s in scans}
    result = plan(
        PlanInput(
            POLICY,
            {s.id: s for s in scans},
            obs,
            NOW,
            catalog=CatalogView(enabled=True, locations=registered),
        )
    )
    assert not result.alerts
    assert kinds(result) == [("delete", "cfs")] * 10


def test_hold_blocks_delete() -> None:
    holds = {"2026/a.h5": Hold("2026/a.h5", "paper in review", "ana", NOW)}
    result = plan(inp([scan()], EVERYWHERE, holds=holds))
    assert not result.actions
    assert ("delete", "dtn", "on_hold") in codes(result)


def test_hold_blocks_a_replace_like_a_delete() -> None:
    """A new version copied over a verified older one removes those bytes: held, it waits."""
    recent = scan(acquired=NOW - timedelta(days=1))
    levels = {"dtn": {recent.id: C}, "cfs": {recent.id: Level.PRESENT}, "hpss": {recent.id: C}}
    unheld = inp([recent], levels)
    cfs = unheld.observations["cfs"]
    older = dataclasses.replace(cfs.replicas[recent.id], older_version="c-old")
    observations = {
        **unheld.observations,
        "cfs": dataclasses.replace(cfs, replicas={recent.id: older}),
    }
    hpss = observations["hpss"]
    observations["hpss"] = dataclasses.replace(
        hpss,
        replicas={recent.id: dataclasses.replace(hpss.replicas[recent.id], older_version="c-old")},
    )
    free = plan(dataclasses.replace(unheld, observations=observations))
    (replace,) = [a for a in free.actions if a.kind is ActionKind.COPY and a.target == "cfs"]
    assert replace.replaces == "c-old" and replace.requires_approval
    holds = {recent.id: Hold(recent.id, "paper in review", "ana", NOW)}
    held = plan(dataclasses.replace(unheld, observations=observations, holds=holds))
    assert not [a for a in held.actions if a.kind is ActionKind.COPY and a.target == "cfs"]
    assert ("copy", "cfs", "on_hold") in codes(held)


def test_copy_in_flight_from_an_endpoint_blocks_its_delete() -> None:
    flight = InFlight("x", ActionKind.COPY, "2026/a.h5", "dtn", "cfs")
    levels = {"dtn": {"2026/a.h5": C}, "cfs": {"2026/a.h5": C}, "hpss": {}}
    result = plan(inp([scan()], levels, in_flight=(flight,)))
    assert ("delete", "dtn", "source_in_use") in codes(result)


def test_size_only_copy_does_not_license_a_checksum_delete() -> None:
    levels = {"dtn": {"2026/a.h5": C}, "cfs": {"2026/a.h5": Level.SIZE}, "hpss": {}}
    result = plan(inp([scan()], levels))
    assert ("delete", "dtn", "copy_unverified") in codes(result)
    assert kinds(result) == [("copy", "cfs")]  # re-verify the cfs copy first


def test_lost_cfs_copy_is_restored_from_tape_only_with_approval() -> None:
    young = scan(acquired=NOW - timedelta(days=300))  # dtn pruned, cfs still wanted
    levels = {"dtn": {}, "cfs": {}, "hpss": {"2026/a.h5": C}}
    result = plan(inp([young], levels, previously={"dtn": set(), "cfs": set(), "hpss": set()}))
    (action,) = result.actions
    assert (action.kind, action.source, action.target) == (ActionKind.COPY, "hpss", "cfs")
    assert action.requires_approval and "tape recall" in action.reason


def test_unregistered_scan_is_registered_before_it_can_be_pruned() -> None:
    result = plan(inp([scan()], EVERYWHERE, catalog=CatalogView(enabled=True)))
    assert ("register", None) in kinds(result)
    assert ("delete", "dtn", "not_catalogued") in codes(result)


def test_catalog_outage_blocks_deletes_but_not_copies() -> None:
    levels = {"dtn": {"2026/a.h5": C}, "cfs": {"2026/a.h5": C}, "hpss": {}}
    result = plan(inp([scan()], levels, catalog=CatalogView(enabled=True, ok=False, error="503")))
    assert kinds(result) == [("copy", "hpss")]
    assert ("delete", "dtn", "catalog_unavailable") in codes(result)


@pytest.mark.parametrize("required_for_delete", [True, False])
def test_a_catalog_that_lost_documents_blocks_every_delete_and_registration(
    required_for_delete: bool,
) -> None:
    scans = [scan("2026/a.h5"), scan("2026/b.h5")]
    levels = {n: {s.id: C for s in scans} for n in ("dtn", "cfs", "hpss")}
    # b is registered; a's document was lost (and is not registered in the view either)
    view = CatalogView(
        enabled=True,
        locations={"2026/b.h5": frozenset({"dtn", "cfs", "hpss"})},
        lost=frozenset({"2026/a.h5"}),
    )
    policy = dataclasses.replace(POLICY, catalog_required_for_delete=required_for_delete)
    result = plan(inp(scans, levels, catalog=view, policy=policy))
    assert [k for k in kinds(result) if k[0] in ("delete", "register")] == []
    for sid in ("2026/a.h5", "2026/b.h5"):
        assert ("delete", "dtn", "catalog_unavailable") in {
            (b.kind.value, b.endpoint, b.reason_code) for b in result.blocked if b.scan == sid
        }
    assert ("register", None, "catalog_unavailable") in codes(result)
    # The same view without the loss plans b's delete and a's registration.
    fine = plan(
        inp(scans, levels, catalog=dataclasses.replace(view, lost=frozenset()), policy=policy)
    )
    assert ("delete", "dtn") in kinds(fine) and ("register", None) in kinds(fine)


def test_failed_action_backs_off_then_is_retried() -> None:
    first = plan(inp([scan(acquired=NOW)], {"dtn": {"2026/a.h5": C}}))
    aid = first.actions[0].id
    failure = Failure(aid, ErrorClass.TRANSIENT, "503 from cfs", NOW + timedelta(minutes=5))
    waiting = plan(inp([scan(acquired=NOW)], {"dtn": {"2026/a.h5": C}}, failures={aid: failure}))
    assert not waiting.actions and ("copy", "cfs", "backing_off") in codes(waiting)
    later = plan(
        inp(
            [scan(acquired=NOW)],
            {"dtn": {"2026/a.h5": C}},
            failures={aid: failure},
            now=NOW + timedelta(minutes=6),
        )
    )
    assert [a.id for a in later.actions] == [aid]


def test_needs_human_failure_waits_for_an_operator() -> None:
    first = plan(inp([scan(acquired=NOW)], {"dtn": {"2026/a.h5": C}}))
    aid = first.actions[0].id
    failure = Failure(aid, ErrorClass.NEEDS_HUMAN, "source differs from acquisition", None)
    result = plan(
        inp(
            [scan(acquired=NOW)],
            {"dtn": {"2026/a.h5": C}},
            failures={aid: failure},
            now=NOW + timedelta(days=30),
        )
    )
    assert ("copy", "cfs", "needs_attention") in codes(result)


def test_rewritten_scan_at_dtn_is_never_pruned() -> None:
    levels = {"dtn": {"2026/a.h5": Level.SIZE}, "cfs": {"2026/a.h5": C}, "hpss": {"2026/a.h5": C}}
    result = plan(inp([scan()], levels))
    assert ("delete", "dtn", "changed_since_inventory") in codes(result)
    assert all(a.target != "dtn" for a in result.actions if a.kind is ActionKind.DELETE)


def test_delete_cap_limits_blast_radius() -> None:
    scans = [scan(f"2026/{i}.h5") for i in range(5)]
    levels = {"dtn": {s.id: C for s in scans}, "cfs": {s.id: C for s in scans}, "hpss": {}}
    capped = dataclasses.replace(POLICY, max_deletes_per_pass=2)
    result = plan(inp(scans, levels, policy=capped))
    assert len([a for a in result.actions if a.kind is ActionKind.DELETE]) == 2
    assert sum(1 for b in result.blocked if b.reason_code == "delete_cap_reached") == 3


def test_approved_and_rejected_decisions() -> None:
    aid = plan(inp([scan()], EVERYWHERE)).actions[0].id
    approved = plan(inp([scan()], EVERYWHERE, decisions={aid: "approve"}))
    assert approved.actions[0].approved and approved.summary()["awaiting_approval"] == 0
    rejected = plan(inp([scan()], EVERYWHERE, decisions={aid: "reject"}))
    assert ("delete", "dtn", "rejected") in codes(rejected)
    # dtn keeps its copy, so the cfs copy its delete would rely on is kept too.
    assert kinds(rejected) == [] and ("delete", "cfs", "still_needed") in codes(rejected)


def test_stale_observation_pauses_deletes() -> None:
    obs = observe(EVERYWHERE)
    obs["cfs"] = EndpointObservation(
        "cfs", ok=True, replicas=obs["cfs"].replicas, observed_at=NOW - timedelta(hours=3)
    )
    registered = {"2026/a.h5": frozenset({"dtn", "cfs", "hpss"})}
    result = plan(
        PlanInput(
            POLICY,
            {"2026/a.h5": scan()},
            obs,
            NOW,
            catalog=CatalogView(enabled=True, locations=registered),
        )
    )
    assert not [a for a in result.actions if a.kind is ActionKind.DELETE]
    assert any("older than the allowed observation age" in e.message for e in result.errors)


@pytest.mark.parametrize("fmt", ["json"])
def test_plan_json_matches_the_audit_contract(fmt: str) -> None:
    doc = plan(inp([scan()], EVERYWHERE)).to_json()
    assert doc["format_version"] == 1 and doc["plan_digest"].startswith("sha256:")
    assert set(doc["summary"]) >= {
        "copy",
        "delete",
        "register",
        "update_catalog",
        "blocked",
        "awaiting_approval",
    }
    (action,) = doc["actions"]
    assert action["kind"] == "delete" and action["source"] is None and action["target"] == "dtn"
    assert action["requires_approval"] is True and doc["summary"]["awaiting_approval"] == 1
    assert {"scan", "kind", "endpoint", "reason_code", "reason"} <= set(doc["blocked"][0])


def test_copy_an_unlisted_holder_relies_on_is_not_deleted() -> None:
    """dtn could not be listed: it may still hold the scan, so the cfs copy its own delete
    relies on must stay, even though cfs's retention has passed and hpss is verified."""
    result = plan(inp([scan()], EVERYWHERE, down=("dtn",)))
    assert not [a for a in result.actions if a.kind is ActionKind.DELETE]
    assert ("delete", "cfs", "still_needed") in codes(result)


def test_delete_waits_while_the_copy_it_relies_on_is_being_deleted() -> None:
    flight = InFlight("x", ActionKind.DELETE, "2026/a.h5", None, "cfs")
    result = plan(inp([scan()], EVERYWHERE, in_flight=(flight,)))
    assert ("delete", "dtn", "required_copy_being_deleted") in codes(result)
    assert not [a for a in result.actions if a.kind is ActionKind.DELETE]


def _still_needed(result) -> str:  # type: ignore[no-untyped-def]
    (reason,) = [
        b.reason
        for b in result.blocked
        if (b.kind, b.endpoint, b.reason_code) == (ActionKind.DELETE, "cfs", "still_needed")
    ]
    return reason


def test_still_needed_names_the_prune_that_relies_on_the_copy() -> None:
    """The cfs prune waits for the dtn prune that relies on cfs: the reason says which, and
    where that prune stands, so an operator knows a second approval round follows."""
    gated = plan(inp([scan()], EVERYWHERE))
    assert _still_needed(gated) == (
        "the dtn prune awaiting approval relies on this copy; this prune follows it"
    )
    aid = gated.actions[0].id
    approved = plan(inp([scan()], EVERYWHERE, decisions={aid: "approve"}))
    assert _still_needed(approved) == "the approved dtn prune relies on this copy"
    ungated = plan(inp([scan()], EVERYWHERE, policy=dataclasses.replace(POLICY, approval_for=())))
    assert _still_needed(ungated) == "the dtn prune planned in this pass relies on this copy"
    rejected = plan(inp([scan()], EVERYWHERE, decisions={aid: "reject"}))
    assert _still_needed(rejected) == (
        "the dtn copy relies on this one until it is pruned (dtn: rejected)"
    )
    flight = InFlight("d1", ActionKind.DELETE, "2026/a.h5", None, "dtn")
    in_flight = plan(inp([scan()], EVERYWHERE, in_flight=(flight,)))
    assert _still_needed(in_flight) == "the dtn prune in flight relies on this copy"
    unknown = plan(inp([scan()], EVERYWHERE, down=("dtn",)))
    assert _still_needed(unknown) == (
        "dtn could not be listed: the copy there may still rely on this one"
    )

"""Adversary: what a quiet pass compares against is taken when the pass *ends*
(`QuietPasses.end_pass`'s store stamp, `remember`'s catalog and marker stats), while what the pass
planned from was read when it began. A change committed in between — an operator's decision
through the real CLI, another writer of the local catalog — is then counted as already seen,
and the next passes reuse a plan that never saw it (docs/safety.md, "Quiet passes": "nobody
committed to the state store ... each endpoint's identity marker and the local catalog file
have the stat they had").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.model import ActionKind
from tests.adversary.quiet_world import World, plan_view, service_world
from tests.conftest import RunCli


@pytest.fixture
def rejected(tmp_path: Path, run_cli: RunCli) -> Iterator[World]:
    """Retention has passed at the DTN; the operator rejected every DTN prune (a settled state:
    blocked `rejected`), and the service is quiet."""
    with service_world(tmp_path, dtn_keep_days=0, settled=False) as w:
        for _ in range(8):
            w.clock.advance(60)
            report = w.service_pass()
            if report.plan.actions and all(
                a.kind is ActionKind.DELETE and a.requires_approval for a in report.plan.actions
            ):
                break
        ids = [a.id for a in report.plan.actions]
        assert ids, "no prune waits for approval"
        done = run_cli("--reject", *ids, config=w.ws.config_path)
        assert done.returncode == 0, done.stderr
        w.settle()
        assert {b.reason_code for b in w.audit().blocked} >= {"rejected"}
        yield w


def during_next_pass(world: World, act: Callable[[], None]) -> None:
    """Run `act` once inside the next service pass, after it planned (while it executes)."""
    executor = world.engine.reconciler.executor
    original = executor.execute

    def execute(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return original(*args, **kwargs)
        finally:
            executor.execute = original  # type: ignore[method-assign]
            act()

    executor.execute = execute  # type: ignore[method-assign]


def test_approval_between_passes_is_planned(rejected: World, run_cli: RunCli) -> None:
    """Control: the operator approves between two passes; the next pass is not quiet."""
    approve = _delete_ids(rejected)
    assert approve
    done = run_cli("--approve", *approve, config=rejected.ws.config_path)
    assert done.returncode == 0, done.stderr
    report, audit, kind = rejected.step()
    assert kind != "quiet"
    assert plan_view(report.plan) == plan_view(audit)
    assert {a.kind for a in report.plan.actions} == {ActionKind.DELETE}


def _delete_ids(world: World) -> list[str]:
    rows = (
        world.engine.store.connection()
        .execute("SELECT action_id FROM decisions WHERE decision = 'reject'")
        .fetchall()
    )
    return [r[0] for r in rows]


def test_approval_committed_during_a_pass_is_planned_by_the_next(
    rejected: World, run_cli: RunCli
) -> None:
    approve = _delete_ids(rejected)
    assert approve

    def operator() -> None:
        done = run_cli("--approve", *approve, config=rejected.ws.config_path)
        assert done.returncode == 0, done.stderr

    during_next_pass(rejected, operator)
    report, audit, kind = rejected.step()  # the pass the approval lands in
    for _ in range(3):
        report, audit, kind = rejected.step()
        assert plan_view(report.plan) == plan_view(audit), f"{kind} pass"


def _catalog_loses(world: World, scan_id: str) -> None:
    """Another writer of the local catalog drops the scan's dataset (rewritten by rename)."""
    path = world.ws.root / "state" / "catalog.json"
    doc = json.loads(path.read_text("utf-8"))
    datasets = doc["datasets"]
    for key, dataset in list(datasets.items()):
        if dataset["scientificMetadata"]["scan_id"]["value"] == scan_id:
            del datasets[key]
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(doc), "utf-8")
    temp.replace(path)


def test_catalog_change_between_passes_is_seen(tmp_path: Path) -> None:
    """Control: the same change between two passes ends the quiet."""
    with service_world(tmp_path) as w:
        _catalog_loses(w, "2023/12/p1/S0001.h5")
        report, audit, kind = w.step()
        assert kind != "quiet"
        assert plan_view(report.plan) == plan_view(audit)
        assert audit.alerts, "the audit raises the lost-documents alert"


def test_catalog_change_during_a_pass_is_seen_by_the_next(tmp_path: Path) -> None:
    with service_world(tmp_path) as w:
        during_next_pass(w, lambda: _catalog_loses(w, "2023/12/p1/S0001.h5"))
        w.step(w.engine.config.safety.full_walk_seconds)  # a settling (full walk) pass
        assert w.kinds[-1] == "full"
        for _ in range(3):
            report, audit, kind = w.step()
            assert plan_view(report.plan) == plan_view(audit), f"{kind} pass"


def _marker_rewritten_in_place(world: World) -> None:
    """The cfs identity marker now names another storage (rewritten in place: the root folder's
    stat does not change)."""
    marker = world.ws.cfs / ".bl931-endpoint.json"
    doc = json.loads(marker.read_text("utf-8"))
    doc["id"] = "00000000-0000-4000-8000-000000000000"
    with open(marker, "r+", encoding="utf-8") as fh:
        fh.seek(0)
        fh.write(json.dumps(doc, indent=2))
        fh.truncate()


def test_marker_rewritten_between_passes_is_seen(tmp_path: Path) -> None:
    """Control: the same change between two passes ends the quiet."""
    with service_world(tmp_path) as w:
        _marker_rewritten_in_place(w)
        report, audit, kind = w.step()
        assert kind != "quiet"
        assert audit.alerts and report.plan.alerts
        assert plan_view(report.plan) == plan_view(audit)


def test_marker_rewritten_during_a_pass_is_seen_by_the_next(tmp_path: Path) -> None:
    with service_world(tmp_path) as w:
        during_next_pass(w, lambda: _marker_rewritten_in_place(w))
        w.step(w.engine.config.safety.full_walk_seconds)  # a settling (full walk) pass
        assert w.kinds[-1] == "full"
        for _ in range(3):
            report, audit, kind = w.step()
            assert plan_view(report.plan) == plan_view(audit), f"{kind} pass"

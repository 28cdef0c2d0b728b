"""Adversary: the service's quiet and delta passes (docs/safety.md, "Quiet passes" and "Delta
passes"). Promise: after any sequence of changes, every service pass plans what a fresh audit
plans at that moment (but for a file rewritten in place under an unchanged folder, seen at the
next full walk); a quiet or delta pass never deletes, and no delete happens without a fresh
last look.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adversary.quiet_world import NEW, World, plan_view, service_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with service_world(tmp_path) as w:
        yield w


def test_nothing_changed_quiet_pass_plans_what_the_audit_plans(world: World) -> None:
    """Control: the world stays quiet across audits (they write nothing), and the reused plan
    is the audit's."""
    for _ in range(3):
        report, audit, kind = world.step()
        assert kind == "quiet", world.quiet.why_not
        assert plan_view(report.plan) == plan_view(audit)
        assert report.plan.digest == audit.digest


def test_new_scan_only_delta_pass_plans_what_the_audit_plans(world: World) -> None:
    world.write(NEW, os.urandom(500))
    world.ws.dtn.joinpath("2023/12/p1").touch()  # as a detector's rename does
    report, audit, kind = world.step()
    assert kind == "delta", world.quiet.why_not
    assert plan_view(report.plan) == plan_view(audit)


def test_delta_pass_plan_digest_is_the_audits(tmp_path: Path) -> None:
    """A new scan whose id sorts before the settled ones."""
    with service_world(tmp_path) as w:
        w.write("2023/12/p1/A0001.h5", os.urandom(300))
        report, audit, kind = w.step()
        assert kind == "delta", w.quiet.why_not
        assert plan_view(report.plan) == plan_view(audit)  # the same entries...
        assert plan_view(report.plan, ordered=True) == plan_view(audit, ordered=True)
        assert report.plan.digest == audit.digest


def _stray_copy_then_scan(world: World, on_cfs: bytes, on_dtn: bytes) -> tuple[object, object, str]:
    """A file put on cfs by hand at a scan path bl931 does not know (yet); the world settles
    with it there; then the scan lands on the DTN."""
    world.write(NEW, on_cfs, endpoint="cfs")
    world.age()
    world.reach_quiet()
    world.write(NEW, on_dtn)
    return world.step()


def test_new_scan_whose_identical_copy_is_already_on_cfs(world: World) -> None:
    """Fixed: a new scan already listed on another endpoint takes the full pass (which
    re-hashes and adopts the copy); it was a delta pass that skipped the re-hash."""
    data = os.urandom(700)
    report, audit, kind = _stray_copy_then_scan(world, data, data)
    assert kind == "full", world.quiet.why_not
    assert plan_view(report.plan) == plan_view(audit)  # type: ignore[attr-defined]


def test_new_scan_over_other_bytes_already_on_cfs(world: World) -> None:
    """Promise: the service plans what the audit plans, and bytes at a scan's path that
    bl931 never verified are overwritten only through a gated replace."""
    theirs, ours = b"a user's own file " * 40, b"the acquisition!! " * 40
    assert len(theirs) == len(ours)
    report, audit, kind = _stray_copy_then_scan(world, theirs, ours)
    assert kind == "full", world.quiet.why_not  # fixed: not a delta pass any more
    assert world.ws.cfs.joinpath(NEW).read_bytes() == theirs, "overwritten without approval"
    assert plan_view(report.plan) == plan_view(audit)  # type: ignore[attr-defined]


def _catalog_document_for(world: World, scan_id: str) -> None:
    """Another writer of the local catalog adds a dataset for `scan_id` (a copy of an existing
    document under the new id), as a second registrar or a restore would."""
    path = world.ws.root / "state" / "catalog.json"
    doc = json.loads(path.read_text("utf-8"))
    datasets = doc["datasets"]
    first = next(iter(datasets.values()))
    added = json.loads(json.dumps(first))
    added["scientificMetadata"]["scan_id"]["value"] = scan_id
    added["pid"] = "bl931/other-writer-0001"
    added["datasetName"] = scan_id.rsplit("/", 1)[-1]
    datasets[str(max(int(k) for k in datasets) + 1)] = added
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(doc), "utf-8")
    os.replace(temp, path)


def test_new_scan_the_catalog_already_holds(world: World) -> None:
    _catalog_document_for(world, NEW)
    report, audit, kind = world.step()
    assert kind == "full"  # the catalog file changed
    assert plan_view(report.plan) == plan_view(audit)
    report, audit, kind = world.step()
    assert kind == "quiet", world.quiet.why_not
    world.write(NEW, os.urandom(900))
    report, audit, kind = world.step()
    assert kind == "full", world.quiet.why_not  # fixed: a catalogued new scan is not a delta
    assert plan_view(report.plan) == plan_view(audit)

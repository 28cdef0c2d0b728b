"""The quiet pass (engine/incremental/quiet.py): a settled service pass whose inputs did not
change reuses the last observation and plan. Every test here changes one input a quiet pass
must notice — time crossing a retention end, a file removed behind our back, a write to the
state store by another connection, an aliased or unmounted root, an identity marker or the
catalog rewritten in place, the periodic full walk — and checks that the next pass is not quiet
and plans what a fresh audit (`dry_run`, which observes everything) plans.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.backends import build_backends
from engine.identity import MARKER_NAME
from engine.model import ActionKind
from engine.reconciler import Reconciler
from engine.state import StateStore
from tests.engine.quiet_line import DUE_SOON, FULL_WALK, SCANS, Line, open_line, same_plan


@pytest.fixture
def line(tmp_path: Path) -> Iterator[Line]:
    with open_line(tmp_path) as built:
        yield built


def test_settled_passes_are_quiet_and_plan_what_an_audit_plans(line: Line) -> None:
    before = line.quiet
    reports = [line.pass_() for _ in range(3)]
    assert line.quiet == before + 3
    for report in reports:
        assert not report.plan.actions and report.plan.blocked  # retention blocks the prunes
        same_plan(report, line.audit())
    health = line.store.endpoint_health()
    # A quiet pass still records that every endpoint was seen now.
    assert {name: h["last_ok_at"] for name, h in health.items()} == {
        name: reports[-1].started_at for name in ("dtn", "cfs", "hpss")
    }


def test_the_end_of_a_retention_period_ends_the_quiet(line: Line) -> None:
    line.pass_()
    assert line.quiet >= 1
    line.clock.advance(minutes=30)  # DUE_SOON's 30 days at the DTN end; no full walk yet
    quiet = line.quiet
    report = line.pass_()
    assert not line.view.full
    assert line.quiet == quiet
    deletes = [a for a in report.plan.actions if a.kind is ActionKind.DELETE]
    assert [(a.scan, a.target) for a in deletes] == [(DUE_SOON, "dtn")]
    same_plan(report, line.audit())


def test_a_copy_removed_behind_our_back_is_missing_at_the_next_pass(line: Line) -> None:
    line.pass_()
    quiet = line.quiet
    (line.ws.cfs / SCANS[0]).unlink()
    report = line.pass_()
    assert line.quiet == quiet
    # 1 of 5 is over the missing fraction: the endpoint freezes until a person looks.
    assert any("cfs: 1 of 5 previously seen replicas are missing" in a for a in report.plan.alerts)
    same_plan(report, line.audit())


def test_a_write_to_the_store_by_another_connection_ends_the_quiet(line: Line) -> None:
    line.pass_()
    quiet = line.quiet
    other = StateStore(line.config.state.path)  # an operator's decision, another process
    try:
        other.place_hold(SCANS[1], "keep it still", "operator", line.clock.now())
    finally:
        other.close()
    report = line.pass_()
    assert line.quiet == quiet
    assert line.reconciler.quiet is not None
    same_plan(report, line.audit())


def test_an_aliased_root_is_never_quiet(line: Line) -> None:
    line.pass_()
    quiet = line.quiet
    moved = line.ws.cfs.with_name("cfs-real")
    line.ws.cfs.rename(moved)
    line.ws.cfs.symlink_to(line.ws.hpss)  # cfs now shows hpss's tree and marker
    report = line.pass_()
    assert line.quiet == quiet
    assert any(e.endpoint == "cfs" for e in report.plan.errors)


def test_an_unmounted_root_is_never_quiet(line: Line) -> None:
    line.pass_()
    quiet = line.quiet
    shutil.rmtree(line.ws.hpss)
    report = line.pass_()
    assert line.quiet == quiet
    assert any(e.endpoint == "hpss" for e in report.plan.errors)


def test_an_identity_marker_rewritten_in_place_ends_the_quiet(line: Line) -> None:
    line.pass_()
    quiet = line.quiet
    marker = line.ws.cfs / MARKER_NAME
    stat = marker.stat()
    text = marker.read_text()
    with marker.open("r+") as stream:  # same inode, same size, mtime put back
        stream.write(text)
    os.utime(marker, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    line.pass_()
    assert line.quiet == quiet


def test_the_catalog_rewritten_by_another_writer_ends_the_quiet(line: Line) -> None:
    line.pass_()
    quiet = line.quiet
    catalog = line.ws.root / "state" / "catalog.json"
    assert catalog.exists()
    catalog.write_bytes(catalog.read_bytes())
    report = line.pass_()
    assert line.quiet == quiet
    same_plan(report, line.audit())


def test_the_periodic_full_walk_is_never_quiet(line: Line) -> None:
    line.pass_()
    quiet = line.quiet
    line.clock.advance(seconds=FULL_WALK)
    line.pass_()
    assert line.view.full
    assert line.quiet == quiet


def test_audits_and_single_passes_are_never_quiet(line: Line) -> None:
    backends = build_backends(line.config, clock=line.clock)
    try:
        once = Reconciler(line.config, line.store, backends, clock=line.clock)
        assert once.quiet is None  # no incremental view: `--once`, `--dry-run`
        once.reconcile_once(drain=True)
    finally:
        backends.close()


def test_the_heap_is_released_after_passes_that_replace_the_observation(
    line: Line, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass that observed everything frees the observation it replaced; its pages go back to
    the OS (`engine/incremental/heap.py`). A quiet pass allocates next to nothing: no trim."""
    import engine.pass_modes

    trims: list[int] = []
    monkeypatch.setattr(engine.pass_modes, "release_free_heap", lambda: trims.append(1) or True)
    quiet = line.quiet
    line.pass_()
    assert line.quiet == quiet + 1 and trims == []
    line.view.last_full = None  # the periodic full walk
    line.pass_()
    assert line.quiet == quiet + 1 and trims == [1]


def test_releasing_the_heap_works_on_this_c_library() -> None:
    """glibc has `malloc_trim` (the service's platform); elsewhere the release is a no-op."""
    import platform

    from engine.incremental.heap import release_free_heap

    released = release_free_heap()
    assert released is (platform.libc_ver()[0] == "glibc")


def test_no_replica_row_outlives_the_pass_that_read_it(line: Line) -> None:
    """No replica row object is kept between passes (the store keeps one int mark per row, the
    settled observation's `previously_present` views the replicas it recorded), and the next
    full pass still finds what vanished."""
    import gc

    from engine.store import ReplicaRow

    line.view.last_full = None  # a full walk: the pass reads every stored replica row
    line.pass_()
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, ReplicaRow)]
    settled = line.reconciler.quiet.settled  # type: ignore[union-attr]
    assert settled is not None
    assert set(settled.seen.observations["cfs"].previously_present) == set(SCANS) | {DUE_SOON}
    (line.ws.cfs / SCANS[0]).unlink()
    line.view.last_full = None
    report = line.pass_()
    # 1 of 5 missing is over the 10 % limit: cfs is unknown, nothing is deleted anywhere
    blocked = {
        (b.kind, b.endpoint, b.reason_code) for b in report.plan.blocked if b.scan == SCANS[0]
    }
    assert (ActionKind.COPY, "cfs", "endpoint_unknown") in blocked
    assert not [a for a in report.plan.actions if a.kind is ActionKind.DELETE]
    same_plan(report, line.audit())


def test_passes_after_the_full_walk_do_not_collect_as_a_full_walk(
    line: Line, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quiet or delta pass does not observe, so it never decides whether it is a full walk:
    it must not inherit the full walk's flag, which makes the GC policy unfreeze and collect
    every object (0.8 s at 100k scans) after each such pass until the next full observation."""
    from engine.incremental.gc_policy import GcPolicy

    collected: list[bool] = []
    line.view.gc = GcPolicy()
    monkeypatch.setattr(GcPolicy, "after_pass", lambda self, *, full: collected.append(full))
    line.view.last_full = None
    line.pass_()  # the periodic full walk
    quiet = line.quiet
    for _ in range(3):
        line.pass_()
    assert line.quiet > quiet  # quiet passes came after the full walk
    assert collected == [True, False, False, False]
    assert not line.view.full

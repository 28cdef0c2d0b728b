"""The incremental steady pass (engine/incremental): the service's passes re-read only local
folders whose stat changed, yet what may be deleted is never decided from that view.

A folder's mtime does not change when a file in it is rewritten in place: these tests rewrite
files and put the folder's mtime back with `os.utime`, then check that the periodic full walk
(`[safety] full_walk_seconds`, by the fake clock) and the last look before a delete still see
the truth, and that an audit (`dry_run`) always observes everything.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.backends import build_backends
from engine.clock import FakeClock
from engine.incremental.view import IncrementalView
from engine.model import ActionKind, Level
from engine.reconciler import Reconciler
from engine.state import StateStore
from engine.workspace import LocalWorkspace, create_workspace

FOLDER = "2026/11"
SCANS = [f"{FOLDER}/scan_{n:04d}.h5" for n in range(5)]
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = datetime(2026, 1, 1, tzinfo=UTC).timestamp()  # long settled, by any real clock today
FULL_WALK = 3600.0


class Beamline:
    def __init__(self, ws: LocalWorkspace) -> None:
        self.ws = ws
        config = ws.config()
        self.clock = FakeClock(START)
        self.store = StateStore(config.state.path)
        self.backends = build_backends(config, clock=self.clock)
        self.reconciler = Reconciler(config, self.store, self.backends, clock=self.clock)
        self.view = IncrementalView(FULL_WALK, freeze_gc=False)
        self.reconciler.incremental = self.view

    def pass_(self) -> Any:
        report = self.reconciler.reconcile_once(drain=True)
        self.clock.advance(minutes=1)
        return report

    def level(self, endpoint: str, scan: str) -> Level:
        row = self.store.load_replicas()[endpoint][scan]
        return Level(row.level)


def settle_folders(ws: LocalWorkspace) -> None:
    """Every folder as a long-quiet beamline's looks (last changed long ago)."""
    for root in (ws.dtn, ws.cfs, ws.hpss):
        marker = root / ".bl931-endpoint.json"  # written by the first pass: recent
        if marker.exists():
            os.utime(marker, (OLD, OLD))
        for folder, _dirs, _files in os.walk(root):
            os.utime(folder, (OLD, OLD))


def rewrite_in_place(path: Path, data: bytes, *, keep_mtime: bool) -> None:
    """New bytes in the same inode. The folder is not touched: its mtime and ctime stay as they
    were (checked), which is exactly what a folder-level change detector cannot see. (Putting
    its mtime back with `os.utime` would change its ctime, which the view also compares.)"""
    folder = os.stat(path.parent)
    before = os.stat(path)
    with path.open("r+b") as stream:
        stream.write(data)
        stream.truncate()
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    else:  # changed, and long settled by the fake clock (a real mtime would be its future)
        os.utime(path, (OLD + 100, OLD + 100))
    after = os.stat(path.parent)
    assert (after.st_mtime_ns, after.st_ctime_ns) == (folder.st_mtime_ns, folder.st_ctime_ns)


def copied_line(tmp_path: Path, *, dtn_keep_days: float) -> Beamline:
    """SCANS written long ago, copied and verified everywhere, their folders settled."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=dtn_keep_days, cfs_keep_days=1000)
    for scan in SCANS:
        ws.write_scan(scan, os.urandom(4096), mtime=OLD)
    settle_folders(ws)
    line = Beamline(ws)
    for _ in range(4):  # copies made and verified
        line.pass_()
    settle_folders(ws)
    return line


@pytest.fixture
def beamline(tmp_path: Path) -> Iterator[Beamline]:
    line = copied_line(tmp_path, dtn_keep_days=0)
    try:
        line.pass_()  # the view reads the settled folders once more and keeps them
        yield line
    finally:
        line.store.close()
        line.backends.close()


def test_a_steady_service_pass_rereads_no_unchanged_folder(beamline: Beamline) -> None:
    beamline.pass_()
    caches = beamline.view.caches
    assert set(caches) >= {"dtn", "cfs", "hpss"}
    assert all(c.read == 0 and c.reused > 0 for c in caches.values()), {
        n: (c.read, c.reused) for n, c in caches.items()
    }
    for scan in SCANS:
        assert beamline.level("cfs", scan) >= Level.CHECKSUM


def test_a_new_scan_in_a_known_folder_is_found_at_the_next_pass(beamline: Beamline) -> None:
    beamline.ws.write_scan(f"{FOLDER}/scan_9999.h5", b"new bytes", mtime=OLD)
    report = beamline.reconciler.reconcile_once(drain=True)
    assert report.new_scans == 1
    assert beamline.view.caches["dtn"].read >= 1


def test_a_copy_rewritten_in_place_is_caught_by_the_full_walk(beamline: Beamline) -> None:
    scan = SCANS[0]
    rewrite_in_place(beamline.ws.cfs / scan, b"other bytes", keep_mtime=False)
    beamline.pass_()  # incremental: the folder's stat is unchanged, the change not looked at
    assert not beamline.view.full
    assert beamline.level("cfs", scan) >= Level.CHECKSUM
    beamline.clock.advance(seconds=FULL_WALK)
    beamline.pass_()
    assert beamline.view.full
    assert beamline.level("cfs", scan) < Level.CHECKSUM


def listed(beamline: Beamline, endpoint: str) -> dict[str, Any]:
    """scan → the listing object the endpoint's folder cache holds for it."""
    folders = beamline.view.caches[endpoint]._folders.values()
    return {listing.scan: listing for folder in folders for listing in folder.scans or ()}


def test_the_full_walk_keeps_one_listing_object_per_unchanged_replica(beamline: Beamline) -> None:
    """Memory (issue 15): a full walk that finds a file as it was hands back the listing object
    it had, so the verdicts that kept the old one do not hold a second generation; a file
    rewritten in place with its size and mtime put back (only its ctime moves) gets a new one
    (what the last look's re-hash then reads afresh)."""
    scan = SCANS[0]
    before = listed(beamline, "cfs")
    assert set(before) == set(SCANS)
    rewrite_in_place(beamline.ws.cfs / scan, os.urandom(4096), keep_mtime=True)
    beamline.clock.advance(seconds=FULL_WALK)
    beamline.pass_()
    assert beamline.view.full
    after = listed(beamline, "cfs")
    assert all(after[s] is before[s] for s in SCANS[1:])
    assert after[scan] is not before[scan]
    assert after[scan].files[0].ctime_ns != before[scan].files[0].ctime_ns


def test_an_audit_observes_everything_whatever_the_view_holds(beamline: Beamline) -> None:
    scan = SCANS[1]
    rewrite_in_place(beamline.ws.cfs / scan, b"other bytes", keep_mtime=False)
    seen = beamline.reconciler.observe(beamline.clock.now())  # what `--dry-run` runs
    assert seen.observations["cfs"].replicas[scan].level < Level.CHECKSUM
    plan = beamline.reconciler.dry_run()
    assert not [a for a in plan.actions if a.kind is ActionKind.DELETE and a.scan == scan]


def test_the_last_look_lists_afresh_what_the_view_still_shows_verified(
    beamline: Beamline,
) -> None:
    """The DTN prune is approved; the CFS copy it relies on is rewritten in place (folder
    mtime unchanged) after the view cached it: the delete is refused, the DTN copy kept."""
    scan = SCANS[2]
    deletes = []
    for _ in range(4):
        report = beamline.pass_()
        deletes = [a for a in report.plan.actions if a.kind is ActionKind.DELETE and a.scan == scan]
        if deletes:
            break
    assert deletes and deletes[0].target == "dtn"
    beamline.store.approve([deletes[0].id], "operator", beamline.clock.now())
    rewrite_in_place(beamline.ws.cfs / scan, b"short", keep_mtime=True)
    beamline.pass_()
    assert not beamline.view.full
    assert (beamline.ws.dtn / scan).exists()
    kinds = [e["kind"] for e in beamline.store.events(scan=scan, limit=10_000)]
    assert "delete.recheck_failed" in kinds
    assert "delete.done" not in kinds


def test_a_silently_rotted_target_is_rehashed_by_the_last_look(beamline: Beamline) -> None:
    """Same size, same mtime, folder untouched: only a re-hash can tell; the last look does."""
    scan = SCANS[3]
    deletes = []
    for _ in range(4):
        report = beamline.pass_()
        deletes = [a for a in report.plan.actions if a.kind is ActionKind.DELETE and a.scan == scan]
        if deletes:
            break
    assert deletes
    beamline.store.approve([deletes[0].id], "operator", beamline.clock.now())
    path = beamline.ws.dtn / scan
    rewrite_in_place(path, b"\0" * path.stat().st_size, keep_mtime=True)
    beamline.pass_()
    assert not beamline.view.full
    assert path.exists()


def test_an_unmounted_root_is_unknown_never_everything_missing(beamline: Beamline) -> None:
    shutil.rmtree(beamline.ws.cfs)
    report = beamline.pass_()
    assert any(e.endpoint == "cfs" for e in report.plan.errors)
    assert set(beamline.store.load_replicas()["cfs"]) >= set(SCANS)  # the baseline is kept


def test_a_scan_rewritten_in_place_on_the_dtn_is_a_new_version_at_the_full_walk(
    beamline: Beamline,
) -> None:
    scan = SCANS[4]
    rewrite_in_place(beamline.ws.dtn / scan, b"a new version", keep_mtime=False)
    assert beamline.pass_().new_scans == 0  # incremental: the folder is unchanged
    beamline.clock.advance(seconds=FULL_WALK)
    report = beamline.pass_()
    assert beamline.view.full
    assert report.new_scans == 1
    assert beamline.store.get_scan(scan).size == len(b"a new version")


def test_a_verdict_the_caller_replaced_is_assessed_afresh_next_pass(beamline: Beamline) -> None:
    """The assessment cache hands its own dict to the observer (no copy of 100k entries per
    endpoint); an entry the observer replaced (a re-hash found the bytes differ) must not be
    reused as if the cache had made it."""
    from dataclasses import replace

    from engine.observe.assess import Assessed
    from engine.observe.assessments import AssessmentCache

    cache = beamline.reconciler.observer.assessments
    assert isinstance(cache, AssessmentCache)
    seen = beamline.reconciler.observe(beamline.clock.now())
    verdicts = seen.assessed["cfs"]
    scan = SCANS[2]
    made = verdicts[scan]
    assert made.listing is not None  # made by the cache: reusable
    verdicts[scan] = Assessed.of(made.but(differs=True), made.signature)
    again = beamline.reconciler.observe(beamline.clock.now()).assessed["cfs"]
    assert not again[scan].replica.differs
    assert again[scan] == made and again[scan] is not verdicts[scan]
    assert all(again[s] is verdicts[s] for s in SCANS if s != scan)  # the rest reused
    # The same for a verdict changed with `dataclasses.replace` (it keeps what it is, an
    # `Assessed`, but not what the cache made it from).
    again[scan] = replace(again[scan], differs=True)
    assert again[scan].listing is None and again[scan].differs
    third = beamline.reconciler.observe(beamline.clock.now()).assessed["cfs"]
    assert not third[scan].differs and third[scan] == made

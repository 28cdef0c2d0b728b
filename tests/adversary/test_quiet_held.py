"""Adversary: changes a quiet or delta pass must notice, each held against a fresh audit at the
same instant (docs/safety.md, "Quiet passes", "Delta passes"): time alone (a retention end
exactly at a pass, a clock jumping back, a hold's expiry), another endpoint changing beside new
scans, directory scans growing, an unmount, a file rewritten in place (seen at the full walk),
and what the store tells the TUI during quiet passes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from engine.model import ActionKind
from engine.pass_findings import read_catalog_status
from engine.state import StateStore
from tests.adversary.quiet_world import NEW, START, World, plan_view, service_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with service_world(tmp_path) as w:
        yield w


def test_retention_ending_exactly_at_a_pass(tmp_path: Path) -> None:
    """dtn keeps scans one day; the scans were acquired so that it ends at START + 30 min, and
    a pass lands on that very instant (and one a microsecond before)."""
    due = START + timedelta(minutes=30)
    acquired = (due - timedelta(days=1)).timestamp()
    scans = {f"2023/12/p1/S{n:04d}.h5": os.urandom(50 + n) for n in range(3)}
    with service_world(tmp_path, scans={}, dtn_keep_days=1, settled=False) as w:
        for rel, data in scans.items():
            w.write(rel, data, mtime=acquired)
        w.age()
        w.settle()
        left = (due - w.clock.now()).total_seconds()
        assert left > 120
        while left > 60:
            report, audit, kind = w.step(60)
            left -= 60
            assert plan_view(report.plan) == plan_view(audit), kind
        report, audit, kind = w.step(left - 1e-6)
        assert kind == "quiet"
        assert plan_view(report.plan) == plan_view(audit)
        assert not report.plan.actions
        report, audit, kind = w.step(1e-6)
        assert w.clock.now() == due
        assert kind != "quiet"
        assert plan_view(report.plan) == plan_view(audit)
        assert {a.kind for a in report.plan.actions} == {ActionKind.DELETE}


def test_clock_jumping_back(world: World) -> None:
    world.clock.set(world.clock.now() - timedelta(minutes=10))
    report, audit, kind = world.step(0)
    assert kind != "quiet"
    assert plan_view(report.plan) == plan_view(audit)
    for _ in range(2):
        report, audit, kind = world.step()
        assert plan_view(report.plan) == plan_view(audit), kind


def test_hold_placed_by_another_writer_then_expiring(tmp_path: Path) -> None:
    """Retention has passed and the DTN prunes wait for approval; a hold from another
    connection (as the TUI's service would write it) that expires mid-way."""
    with service_world(tmp_path, dtn_keep_days=0, settled=False) as w:
        for _ in range(6):
            w.clock.advance(60)
            w.service_pass()
        w.age()
        scan = "2023/12/p1/S0001.h5"
        other = StateStore(w.ws.state_path)
        try:
            other.place_hold(
                scan, "checking", "alice", w.clock.now(), w.clock.now() + timedelta(minutes=5)
            )
        finally:
            other.close()
        for _ in range(8):
            report, audit, kind = w.step(60)
            assert plan_view(report.plan) == plan_view(audit), kind


def test_new_scan_and_a_copy_deleted_on_cfs(world: World) -> None:
    world.write(NEW, os.urandom(400))
    os.unlink(world.ws.cfs / "2023/12/p1/S0002.h5")
    report, audit, kind = world.step()
    assert kind == "full"
    assert plan_view(report.plan) == plan_view(audit)


def test_new_scan_and_a_cfs_copy_rewritten_by_rename(world: World) -> None:
    target = world.ws.cfs / "2023/12/p1/S0001.h5"
    st = target.stat()
    world.write(NEW, os.urandom(400))
    world.write("2023/12/p1/S0001.h5", os.urandom(st.st_size), endpoint="cfs", mtime=st.st_mtime)
    report, audit, kind = world.step()
    assert kind == "full"
    assert plan_view(report.plan) == plan_view(audit)


def test_new_scan_and_a_stray_file_on_hpss(world: World) -> None:
    world.write(NEW, os.urandom(400))
    world.write("2023/12/p1/notes.txt", b"operator notes", endpoint="hpss")
    report, audit, kind = world.step()
    assert plan_view(report.plan) == plan_view(audit), kind


def test_directory_scans_grow_while_a_new_one_lands(tmp_path: Path) -> None:
    scans = {f"run{n}/frame{k}.tif": os.urandom(64 + k) for n in range(2) for k in range(2)}
    with service_world(tmp_path, scans=scans, scan_unit="directory", depth=1) as w:
        w.write("run9/frame0.tif", os.urandom(80))
        report, audit, kind = w.step()
        assert kind == "delta", w.quiet.why_not
        assert plan_view(report.plan) == plan_view(audit)
        w.settle()
        w.write("run8/frame0.tif", os.urandom(80))
        w.write("run0/frame7.tif", os.urandom(90))  # an existing scan grows
        report, audit, kind = w.step()
        assert kind == "full"
        assert plan_view(report.plan) == plan_view(audit)


def test_unmounted_endpoint_during_quiet_passes(world: World) -> None:
    moved = world.ws.root / "cfs.away"
    world.ws.cfs.rename(moved)
    report, audit, kind = world.step()
    assert kind == "full"
    assert report.plan.errors
    assert plan_view(report.plan) == plan_view(audit)
    assert report.plan.alerts  # its identity cannot be proven: unknown, an alert
    health = world.engine.store.endpoint_health()
    assert health["cfs"]["last_ok_at"] < world.clock.now() == health["dtn"]["last_ok_at"]
    moved.rename(world.ws.cfs)  # back: the next pass sees it again
    report, audit, kind = world.step()
    assert kind == "full"
    assert plan_view(report.plan) == plan_view(audit)


def test_health_and_catalog_read_time_advance_in_quiet_passes(world: World) -> None:
    for _ in range(2):
        report, _audit, kind = world.step()
        assert kind == "quiet"
        now = world.clock.now()
        health = world.engine.store.endpoint_health()
        assert {name: h["last_ok_at"] for name, h in health.items()} == {
            "dtn": now,
            "cfs": now,
            "hpss": now,
        }
        status = read_catalog_status(world.engine.store.connection())
        assert status is not None and status.read_at == now and status.ok
        beat = world.engine.store.heartbeat()
        assert beat is not None and beat["pass_started_at"] == now
        assert report.scans == 3
        assert sum(report.replica_levels.values()) == 9


def test_dtn_file_rewritten_in_place_is_seen_at_the_full_walk(world: World) -> None:
    """The documented limit: bytes rewritten in place with size and mtime put back, under an
    unchanged folder; quiet passes miss it, the full walk (`full_walk_seconds`) must not."""
    path = world.ws.dtn / "2023/12/p1/S0001.h5"
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.write(b"X" * 10)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    report, audit, kind = world.step()
    assert kind == "quiet"  # the documented limit
    full = world.engine.config.safety.full_walk_seconds
    report, audit, kind = world.step(full)
    assert kind == "full"
    assert report.new_scans == 1
    assert plan_view(report.plan) == plan_view(audit)

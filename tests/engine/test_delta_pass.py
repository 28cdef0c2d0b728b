"""The delta pass (engine/incremental/delta.py): new scans on the inventory endpoint, and
nothing else changed since a settled pass, are observed and planned on their own; the settled
pass's verdicts and plan stand for every other scan. Each test checks the result against a
fresh audit (which observes everything), and each change that is *not* only new scans — a copy
removed, a scan rewritten, files appearing on another endpoint, a known name back on the
inventory — must take the full pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.model import ActionKind
from tests.engine.quiet_line import (
    DUE_SOON,
    FOLDER,
    SCANS,
    WRITTEN,
    Line,
    open_line,
    same_plan,
    settle,
)


@pytest.fixture
def line(tmp_path: Path) -> Iterator[Line]:
    with open_line(tmp_path) as built:
        yield built


def deltas(line: Line) -> int:
    assert line.reconciler.quiet is not None
    return line.reconciler.quiet.deltas


def settled_quiet(line: Line) -> None:
    """Passes until the line is settled and quiet again (copies made and verified)."""
    for _ in range(8):
        settle(line.ws)
        quiet = line.quiet
        line.pass_()
        if line.quiet > quiet:
            return
    raise AssertionError(f"never quiet: {line.reconciler.quiet and line.reconciler.quiet.why_not}")


def test_new_scans_are_planned_alone_and_as_an_audit_plans_them(line: Line) -> None:
    line.pass_()
    before = deltas(line)
    new = [f"{FOLDER}/scan_new_{n}.h5" for n in range(3)] + ["2026/12/scan_other.h5"]
    for scan in new:
        line.ws.write_scan(scan, os.urandom(1024), mtime=WRITTEN)
    audit = line.audit()
    report = line.pass_()
    assert deltas(line) == before + 1
    assert report.new_scans == len(new)
    copies = sorted((a.scan, a.target) for a in report.plan.actions if a.kind is ActionKind.COPY)
    assert copies == sorted((s, "cfs") for s in new)  # the chain: cfs first, then hpss
    same_plan(report, audit)
    assert set(line.store.load_scans()) >= set(new)
    settled_quiet(line)  # the copies verify, the catalog registers them, quiet again
    for scan in new:
        assert (line.ws.cfs / scan).exists() and (line.ws.hpss / scan).exists()
    same_plan(line.pass_(), line.audit())


def test_a_new_scan_with_a_copy_removed_takes_the_full_pass(line: Line) -> None:
    line.pass_()
    before = deltas(line)
    line.ws.write_scan(f"{FOLDER}/scan_new.h5", b"new", mtime=WRITTEN)
    (line.ws.cfs / SCANS[1]).unlink()
    audit = line.audit()
    report = line.pass_()
    assert deltas(line) == before
    same_plan(report, audit)


def test_a_new_scan_with_another_rewritten_takes_the_full_pass(line: Line) -> None:
    line.pass_()
    before = deltas(line)
    line.ws.write_scan(f"{FOLDER}/scan_new.h5", b"new", mtime=WRITTEN)
    path = line.ws.dtn / SCANS[2]
    tmp = path.with_name("rewrite.tmp")
    tmp.write_bytes(b"a second version")
    os.utime(tmp, (WRITTEN + 10, WRITTEN + 10))
    tmp.replace(path)  # a new inode in a folder read again
    audit = line.audit()
    report = line.pass_()
    assert deltas(line) == before
    assert report.new_scans == 2  # the new scan, and the new version
    same_plan(report, audit)


def test_files_appearing_on_another_endpoint_take_the_full_pass(line: Line) -> None:
    line.pass_()
    before = deltas(line)
    stray = line.ws.cfs / FOLDER / "scan_not_on_dtn.h5"
    stray.write_bytes(b"placed by hand")
    line.ws.write_scan(f"{FOLDER}/scan_new.h5", b"new", mtime=WRITTEN)
    audit = line.audit()
    report = line.pass_()
    assert deltas(line) == before
    same_plan(report, audit)


def test_a_name_used_again_after_a_prune_takes_the_full_pass(line: Line) -> None:
    """DUE_SOON's DTN copy is pruned (approved); then the beamline writes that name again:
    a known id back on the inventory is the full pass's to judge (a reused name)."""
    line.clock.advance(minutes=30)
    for _ in range(4):
        report = line.pass_()
        ids = [a.id for a in report.plan.actions if a.kind is ActionKind.DELETE]
        if ids:
            line.store.approve(ids, "operator", line.clock.now())
        if not (line.ws.dtn / DUE_SOON).exists():
            break
    assert not (line.ws.dtn / DUE_SOON).exists()
    settled_quiet(line)
    before = deltas(line)
    line.ws.write_scan(DUE_SOON, b"the name again, other bytes", mtime=WRITTEN)
    audit = line.audit()
    report = line.pass_()
    assert deltas(line) == before
    same_plan(report, audit)

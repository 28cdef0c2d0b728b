"""A small settled local beamline for the quiet- and delta-pass tests (engine/incremental)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.backends import build_backends
from engine.identity import MARKER_NAME
from engine.incremental.view import IncrementalView
from engine.model import Plan
from engine.pass_report import PassReport
from engine.reconciler import Reconciler
from engine.workspace import LocalWorkspace, create_workspace
from tests.engine_world import open_engine

FOLDER = "2026/11"
SCANS = [f"{FOLDER}/scan_{n:04d}.h5" for n in range(4)]
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
# Written a day before the fake clock starts: inside the DTN's 30-day retention by the fake
# clock, and long settled by any real clock that can run this test.
WRITTEN = (START - timedelta(days=1)).timestamp()
# One scan whose 30 days at the DTN end half an hour after the fake clock starts: well inside
# one full-walk period, so only the quiet pass's own due date can notice it.
DUE_SOON = f"{FOLDER}/scan_due.h5"
DUE_SOON_WRITTEN = (START - timedelta(days=30) + timedelta(minutes=30)).timestamp()
FULL_WALK = 3600.0


class Line:
    def __init__(self, ws: LocalWorkspace) -> None:
        self.ws = ws
        self.config = ws.config()
        self.engine = open_engine(self.config, start=START)
        self.clock, self.store = self.engine.clock, self.engine.store
        self.backends, self.reconciler = self.engine.backends, self.engine.reconciler
        self.view = IncrementalView(FULL_WALK, freeze_gc=False)
        self.reconciler.incremental = self.view

    @property
    def quiet(self) -> int:
        assert self.reconciler.quiet is not None
        return self.reconciler.quiet.quiet

    def pass_(self) -> PassReport:
        report = self.reconciler.reconcile_once(drain=True)
        self.clock.advance(minutes=1)
        return report

    def audit(self) -> Plan:
        """What `--dry-run` plans now: a fresh reconciler that observes everything."""
        backends = build_backends(self.config, clock=self.clock)
        try:
            return Reconciler(self.config, self.store, backends, clock=self.clock).dry_run()
        finally:
            backends.close()


def settle(ws: LocalWorkspace) -> None:
    """Every folder and identity marker as a long-quiet beamline's (changed long ago)."""
    for root in (ws.dtn, ws.cfs, ws.hpss):
        paths = [root / MARKER_NAME] if (root / MARKER_NAME).exists() else []
        paths += [Path(folder) for folder, _dirs, _files in os.walk(root)]
        for path in paths:
            if path.stat().st_mtime != WRITTEN:  # (a utime changes the ctime: only if needed)
                os.utime(path, (WRITTEN, WRITTEN))


def same_plan(report: PassReport, audit: Plan) -> None:
    assert report.plan.digest == audit.digest
    assert sorted(report.plan.blocked) == sorted(audit.blocked)
    assert [e.endpoint for e in report.plan.errors] == [e.endpoint for e in audit.errors]


@contextmanager
def open_line(tmp_path: Path) -> Iterator[Line]:
    """A settled beamline (5 scans copied, verified, registered; folders aged) whose service
    passes run with the incremental view."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=30, cfs_keep_days=1000)
    for scan in SCANS:
        ws.write_scan(scan, os.urandom(2048), mtime=WRITTEN)
    ws.write_scan(DUE_SOON, os.urandom(2048), mtime=DUE_SOON_WRITTEN)
    settle(ws)
    line = Line(ws)
    try:
        for _ in range(4):  # copied, verified, registered
            line.pass_()
        settle(ws)
        line.pass_()  # the folder caches keep the settled folders
        yield line
    finally:
        line.engine.close()

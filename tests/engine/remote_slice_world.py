"""A beamline whose CFS is a Globus collection, driven pass by pass like the service.

DTN and CFS are collections of the fake Transfer API (`tests/fakes/transfer_api.py`, real
globus-sdk client); DTN is also mounted here (`path`), so the inventory walks it locally. The
reconciler runs in process on a `FakeClock` (one pass per `step`), with the service's
incremental view on (`IncrementalView`), exactly as `bl931tui --reconcile` sets it up.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.backends import Backends, build_backends
from engine.clock import FakeClock
from engine.config import Config, parse_config
from engine.incremental.view import IncrementalView
from engine.model import ActionKind, Level
from engine.pass_report import PassReport
from engine.reconciler import Reconciler
from engine.state import StateStore
from tests.fakes.transfer_api import FakeTransferAPI

START = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
DIRS = 10
PER_DIR = 12
ROOT = "/raw"


def scan_ids() -> list[str]:
    return [f"2026/d{d:02}/s{n:02}.h5" for d in range(DIRS) for n in range(PER_DIR)]


@dataclass
class World:
    tmp: Path
    fake: FakeTransferAPI
    clock: FakeClock
    config: Config
    ids: dict[str, str]
    roots: dict[str, Path]
    reverify_days: float
    store: StateStore = field(init=False)
    backends: Backends = field(init=False)
    reconciler: Reconciler = field(init=False)
    view: IncrementalView = field(init=False)

    def start_service(self) -> None:
        """A (new) service process: a fresh reconciler and incremental view on the store."""
        self.store = StateStore(self.config.state.path)
        self.backends = build_backends(self.config, environ=self.fake.environ, clock=self.clock)
        self.reconciler = Reconciler(self.config, self.store, self.backends, clock=self.clock)
        self.view = IncrementalView(
            self.config.safety.full_walk_seconds,
            freeze_gc=False,
            reverify_days=self.config.safety.reverify_days,
        )
        self.reconciler.incremental = self.view

    def stop_service(self) -> None:
        self.store.close()
        self.backends.close()

    def step(self, *, hours: float = 1) -> PassReport:
        """One service pass, then let `hours` pass."""
        report = self.reconciler.reconcile_once()
        self.clock.advance(hours=hours)
        return report

    def cfs_dirs_listed(self, before: dict[tuple[str, str], int]) -> dict[str, int]:
        """CFS folders listed since `before` (a copy of `fake.ls_paths`), by folder path."""
        cid = self.ids["cfs"]
        out = {}
        for (coll, path), n in self.fake.ls_paths.items():
            if coll == cid and n - before.get((coll, path), 0) > 0:
                out[path] = n - before.get((coll, path), 0)
        return out

    def snapshot(self) -> dict[tuple[str, str], int]:
        return dict(self.fake.ls_paths)

    def cfs_level(self, scan: str) -> Level | None:
        row = self.store.load_replicas().get("cfs", {}).get(scan)
        return None if row is None else Level(row.level)

    def write_scan(self, scan: str, data: bytes, acquired: datetime) -> None:
        path = self.roots["dtn"] / scan
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        stamp = acquired.timestamp()
        os.utime(path, (stamp, stamp))

    def settle(self, passes: int = 4) -> PassReport:
        """Passes until every scan is copied and verified at CFS (a full first pass)."""
        report = self.step()
        for _ in range(passes):
            report = self.step()
            if not report.plan.actions and not report.plan.in_flight:
                break
        assert all(self.cfs_level(s) is Level.CHECKSUM for s in scan_ids()), "not settled"
        return report


def deletes_of(report: PassReport) -> list[Any]:
    return [a for a in report.plan.actions if a.kind is ActionKind.DELETE]


@contextmanager
def world(
    tmp_path: Path,
    *,
    keep_days: float = 30,
    acquired: datetime | None = None,
    reverify_days: float = 1,
    approval: tuple[str, ...] = (),
    scans: list[str] | None = None,
) -> Iterator[World]:
    """DTN → CFS, DTN pruned after `keep_days` once CFS holds a verified copy."""
    clock = FakeClock(START)
    with FakeTransferAPI(clock=clock) as fake:
        ids = {name: fake.add_collection(tmp_path / name) for name in ("dtn", "cfs")}
        roots = {name: tmp_path / name / ROOT.lstrip("/") for name in ids}
        for root in roots.values():
            root.mkdir(parents=True)
        config = parse_config(
            {
                "state": {"path": str(tmp_path / "state.sqlite")},
                "inventory": {"quiet_seconds": 0},
                "endpoints": {
                    "dtn": {
                        "kind": "globus",
                        "collection": ids["dtn"],
                        "root": ROOT,
                        "path": str(roots["dtn"]),
                    },
                    "cfs": {"kind": "globus", "collection": ids["cfs"], "root": ROOT},
                },
                "copy": [{"from": "dtn", "to": "cfs"}],
                "retention": {"dtn": {"keep_days": keep_days, "delete_requires": ["cfs"]}},
                "approval": {"required_for": list(approval)},
                "safety": {"reverify_days": reverify_days},
                "catalog": {"kind": "none"},
            }
        )
        w = World(tmp_path, fake, clock, config, ids, roots, reverify_days)
        when = acquired or START - timedelta(days=2)
        for scan in scans if scans is not None else scan_ids():
            w.write_scan(scan, f"bytes of {scan}\n".encode(), when)
        w.start_service()
        try:
            yield w
        finally:
            w.stop_service()

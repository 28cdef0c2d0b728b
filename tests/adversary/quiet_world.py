"""A local beamline driven pass by pass as the long-running service drives it (with the
incremental view, so quiet and delta passes happen), and a fresh audit at the same instant to
hold each service pass against (docs/safety.md, "Quiet passes" and "Delta passes").

Folders count as settled only when their mtime is 60 real seconds old (`engine.incremental.dirs`),
so every file is written with an old mtime and `age()` puts every folder (and the identity
markers bl931 writes) back in the past once the world is as a test wants it. Engine time is a
`FakeClock` in the past of any calendar date the tests run on, so nothing depends on today.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.incremental.view import IncrementalView
from engine.model import Plan
from engine.reconciler import PassReport
from engine.workspace import LocalWorkspace, create_workspace
from tests.engine_world import Engine, open_engine

START = datetime(2024, 1, 1, tzinfo=UTC)
OLD = (START - timedelta(days=1)).timestamp()  # mtime of every file a test writes
MARKER = ".bl931-endpoint.json"
NEW = "2023/12/p1/S0100.h5"  # a scan the settled world does not hold yet


def plan_view(plan: Plan, *, ordered: bool = False) -> dict[str, Any]:
    """What a plan says, as the audit JSON says it (minus `as_of` and the digest). Lists are
    sorted unless `ordered` (the order is compared on its own)."""
    doc = plan.to_json()
    out: dict[str, Any] = {}
    for key in ("actions", "blocked", "errors", "alerts", "problems", "export_controlled"):
        items = doc.get(key, [])
        if not ordered:
            items = sorted(items, key=lambda x: json.dumps(x, sort_keys=True))
        out[key] = items
    return out


@dataclass
class World:
    ws: LocalWorkspace
    engine: Engine
    kinds: list[str] = field(default_factory=list)  # per service pass: quiet, delta, full

    @property
    def clock(self):  # type: ignore[no-untyped-def]
        return self.engine.clock

    @property
    def quiet(self):  # type: ignore[no-untyped-def]
        q = self.engine.reconciler.quiet
        assert q is not None
        return q

    def write(self, rel: str, data: bytes, *, endpoint: str = "dtn", mtime: float = OLD) -> Path:
        return self.ws.write_scan(rel, data, mtime=mtime, endpoint=endpoint)

    def age(self) -> None:
        """Every folder (and marker) of every endpoint back in the past: settled."""
        for top in (self.ws.dtn, self.ws.cfs, self.ws.hpss):
            for folder, _dirs, _files in os.walk(top):
                os.utime(folder, (OLD, OLD))
            marker = top / MARKER
            if marker.exists():
                os.utime(marker, (OLD, OLD))

    def audit(self) -> Plan:
        """`Reconciler(...).dry_run()` with no incremental view, on its own connection and
        backends, at the service's clock time."""
        other = open_engine(self.ws.config(), clock=self.clock)
        try:
            return other.reconciler.dry_run(self.clock.now())
        finally:
            other.close()

    def service_pass(self, *, drain: bool = True) -> PassReport:
        q = self.quiet
        quiet, deltas = q.quiet, q.deltas
        report = self.engine.reconcile(drain=drain)
        kind = "quiet" if q.quiet > quiet else "delta" if q.deltas > deltas else "full"
        self.kinds.append(kind)
        return report

    def step(self, seconds: float = 60, *, drain: bool = True) -> tuple[PassReport, Plan, str]:
        """Advance the clock, audit, then run the service pass at the same instant."""
        self.clock.advance(seconds)
        audit = self.audit()
        report = self.service_pass(drain=drain)
        return report, audit, self.kinds[-1]

    def settle(self, *, max_passes: int = 8) -> None:
        """Run passes until the work is done, age the folders, and reach a quiet pass."""
        for _ in range(max_passes):
            self.clock.advance(60)
            report = self.service_pass()
            if not report.plan.actions and not report.plan.in_flight:
                break
        self.age()
        self.reach_quiet()

    def reach_quiet(self, *, max_passes: int = 3) -> None:
        """Run passes a minute apart until one is quiet."""
        for _ in range(max_passes):
            self.clock.advance(60)
            self.service_pass()
            if self.kinds[-1] == "quiet":
                return
        raise AssertionError(f"never quiet: {self.quiet.why_not} ({self.kinds})")


def make_world(tmp_path: Path, scans: dict[str, bytes] | None = None, **options: Any) -> World:
    """A workspace with `scans` on the DTN (default: three), copied everywhere, quiet."""
    options.setdefault("dtn_keep_days", 10000)
    options.setdefault("cfs_keep_days", 10000)
    ws = create_workspace(tmp_path / "ws", **options)
    if scans is None:
        scans = {f"2023/12/p1/S{n:04d}.h5": os.urandom(100 + n) for n in range(3)}
    for rel, data in scans.items():
        ws.write_scan(rel, data, mtime=OLD)
    world = make_service(ws)
    world.age()
    return world


@contextmanager
def service_world(
    tmp_path: Path, scans: dict[str, bytes] | None = None, *, settled: bool = True, **options: Any
) -> Iterator[World]:
    """`make_world`, settled into a quiet pass unless `settled=False`; its engine closed after."""
    world = make_world(tmp_path, scans, **options)
    try:
        if settled:
            world.settle()
        yield world
    finally:
        world.engine.close()


def make_service(ws: LocalWorkspace, clock: Any = None, start: datetime = START) -> World:
    engine = open_engine(ws.config(), clock=clock, start=start)
    engine.reconciler.incremental = IncrementalView(engine.config.safety.full_walk_seconds)
    return World(ws, engine)

"""A dtn → cfs beamline whose endpoints are Globus collections, run pass by pass through the
reconciler in this process: the one builder the Globus task tests share.

The collections are served by the fake Transfer API on 127.0.0.1 (`tests/fakes/transfer_api.py`),
each backed by a temporary directory; the fake and the engine share one `FakeClock`, so task
deadlines, Retry-After waits and stalls are judged at the test's time, never the calendar's.
`World.run_pass` builds backends and store afresh (a new process, as `--reconcile --once` does).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.clock import FakeClock
from engine.config import Config, parse_config
from engine.reconciler import PassReport
from engine.state import StateStore
from tests.engine_world import open_engine
from tests.fakes.transfer_api import FakeTransferAPI

START = datetime(2030, 1, 1, tzinfo=UTC)
OLD = 1_700_000_000  # long before START: backlog scans


@dataclass
class World:
    fake: FakeTransferAPI
    clock: FakeClock
    tmp: Path
    ids: dict[str, str]
    globus: dict[str, Any] = field(default_factory=dict)  # the `[globus]` table
    retention: dict[str, Any] = field(default_factory=dict)  # none: nothing is ever pruned
    approval: list[str] | None = None  # `[approval] required_for`; None: the default

    @property
    def raw(self) -> Path:
        return self.tmp / "dtn" / "raw"

    def config(self) -> Config:
        doc: dict[str, Any] = {
            "state": {"path": str(self.tmp / "state.sqlite")},
            "inventory": {"quiet_seconds": 0},
            "endpoints": {
                "dtn": {
                    "kind": "globus",
                    "collection": self.ids["dtn"],
                    "root": "/raw",
                    "path": str(self.raw),
                },
                "cfs": {"kind": "globus", "collection": self.ids["cfs"], "root": "/raw"},
            },
            "copy": [{"from": "dtn", "to": "cfs"}],
            "catalog": {"kind": "none"},
            "globus": self.globus,
        }
        if self.retention:
            doc["retention"] = self.retention
        if self.approval is not None:
            doc["approval"] = {"required_for": self.approval}
        return parse_config(doc)

    def write(self, relpath: str, data: bytes, mtime: float) -> None:
        path = self.raw / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (mtime, mtime))

    def run_pass(self) -> tuple[PassReport, StateStore]:
        """One pass in a new process; the caller closes the store it returns."""
        config = self.config()
        engine = open_engine(config, clock=self.clock, environ=self.fake.environ)
        try:
            report = engine.reconciler.reconcile_once()
        finally:
            engine.backends.close()
        return report, engine.store

    def failures(self) -> dict[str, tuple[str, str]]:
        """scan → (error class, message) of every failed action."""
        store = StateStore(self.config().state.path)
        try:
            rows = store.connection().execute(
                "SELECT scan, error_class, error FROM actions WHERE error_class IS NOT NULL"
            )
            return {r["scan"]: (r["error_class"], r["error"]) for r in rows}
        finally:
            store.close()


@contextmanager
def globus_world(tmp_path: Path, **options: Any) -> Iterator[World]:
    """dtn and cfs served as fake collections at `START`; `options` set `World`'s fields."""
    clock = FakeClock(START)
    with FakeTransferAPI(clock=clock) as fake:
        ids = {name: fake.add_collection(tmp_path / name) for name in ("dtn", "cfs")}
        (tmp_path / "cfs" / "raw").mkdir(parents=True)
        world = World(fake, clock, tmp_path, ids, **options)
        world.raw.mkdir(parents=True)
        yield world


def one_pass(world: World) -> PassReport:
    """`World.run_pass`, its store closed."""
    report, store = world.run_pass()
    store.close()
    return report


def task_alerts(report: PassReport) -> list[Any]:
    return [a for a in report.plan.alert_details if a.code == "task_fault"]


def flip(path: Path) -> None:
    """Change a file's first byte in place, keeping its size and mtime (a silent corruption)."""
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    info = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def faulted_copy(world: World, *, fault_minutes: float) -> PassReport:
    """One scan's copy submitted while cfs answers PERMISSION_DENIED (a fault that needs a
    person: cancelled after `fault_minutes`; `stall_hours` far away), and the report of the
    pass a minute later whose poll first sees the fault."""
    world.globus = {"persistent_fault_minutes": fault_minutes, "stall_hours": 100}
    world.write("2029/a.h5", b"a" * 10, OLD)
    world.fake.fault_collection(world.ids["cfs"], "PERMISSION_DENIED")
    one_pass(world)
    world.clock.advance(minutes=1)
    return one_pass(world)


def paths_asked(world: World) -> list[str]:
    """From now on, the path of every request the fake Transfer API is sent, in order (the
    caller may clear the list between passes)."""
    seen: list[str] = []
    handle = world.fake.handle

    def spy(method: str, path: str, *args: Any) -> Any:
        seen.append(path)
        return handle(method, path, *args)

    world.fake.handle = spy  # type: ignore[method-assign,assignment]
    return seen

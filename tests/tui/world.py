"""A small beamline run by the real engine, in-process, on a `FakeClock`, for TUI tests.

Where `scenarios.py` fills a store by hand (exact, fast, for snapshots), this world lets the
engine write it: scans written at the dtn, passes that copy, register, plan prunes and record
what they held back, so a TUI test checks what an operator sees against what the engine did.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.backends import Backends
from engine.clock import FakeClock
from engine.config import Config
from engine.reconciler import PassReport, Reconciler
from engine.state import StateStore
from engine.workspace import LocalWorkspace, create_workspace, synthetic_scan_bytes
from tests.engine_world import open_engine

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
USER = "operator"


@dataclass
class World:
    root: Path
    dtn_keep_days: float = 30
    cfs_keep_days: float = 730
    approval: tuple[str, ...] = ("delete",)
    catalog_kind: str = "local"
    ws: LocalWorkspace = field(init=False)
    config: Config = field(init=False)
    clock: FakeClock = field(init=False)
    store: StateStore = field(init=False)
    backends: Backends = field(init=False)
    reconciler: Reconciler = field(init=False)

    def __post_init__(self) -> None:
        self.ws = create_workspace(
            self.root,
            dtn_keep_days=self.dtn_keep_days,
            cfs_keep_days=self.cfs_keep_days,
            approval=self.approval,
            catalog_kind=self.catalog_kind,
        )
        self.config = self.ws.config()
        engine = open_engine(self.config, start=NOW, user="bl931-service")
        self.clock, self.store, self.backends = engine.clock, engine.store, engine.backends
        self.reconciler = engine.reconciler

    def write(self, n: int, *, age_days: float, size: int = 3_000) -> str:
        """Write scan `n`, acquired `age_days` before now; returns its id."""
        acquired = self.clock.now() - timedelta(days=age_days)
        name = f"{acquired:%Y}/{acquired:%m}/ALS-11234/S{n:04d}_sulfur_K_edge.h5"
        self.ws.write_scan(name, synthetic_scan_bytes(random.Random(n), size), mtime=acquired)
        return name

    def passes(self, count: int = 1) -> PassReport:
        report = None
        for _ in range(count):
            report = self.reconciler.reconcile_once(drain=True)
        assert report is not None
        return report

    def app(self, **kwargs: Any):  # type: ignore[no-untyped-def]
        """The TUI over this world's store: the world's clock, no timed refresh."""
        from bl931tui.app import Bl931App

        options: dict[str, Any] = {"clock": self.clock, "user": USER, "refresh_seconds": None}
        options.update(kwargs)
        return Bl931App(self.config, **options)

    def close(self) -> None:
        self.backends.close()
        self.store.close()

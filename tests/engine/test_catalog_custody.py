"""The catalog's custody in-process: identity binding, registrations kept in the state store,
and a catalog that vanishes in the middle of a pass (the real engine, a `FakeClock`)."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.backends import Backends
from engine.catalog.custody import Registrations, recorded_identity
from engine.catalog.local import LocalCatalog
from engine.clock import FakeClock
from engine.model import ActionKind, ErrorClass
from engine.reconciler import Reconciler
from engine.state import MIGRATIONS, StateStore
from engine.workspace import LocalWorkspace, create_workspace
from tests.conftest import MakeEngine

START = datetime(2026, 3, 1, tzinfo=UTC)
ACQUIRED = datetime(2026, 1, 1, tzinfo=UTC)  # scans are written with this mtime, not today's


@dataclass
class Engine:
    ws: LocalWorkspace
    clock: FakeClock
    store: StateStore
    backends: Backends
    reconciler: Reconciler

    @property
    def catalog(self) -> LocalCatalog:
        assert isinstance(self.backends.catalog, LocalCatalog)
        return self.backends.catalog

    def run_pass(self) -> None:
        self.reconciler.reconcile_once(self.clock.now(), drain=True)
        self.clock.advance(seconds=1)


@pytest.fixture
def engine(tmp_path: Path, make_engine: MakeEngine) -> Engine:
    ws = create_workspace(
        tmp_path / "ws", dtn_keep_days=1000, cfs_keep_days=1000, retry_base_seconds=5
    )
    e = make_engine(ws.config(), start=START, user="bl931-test")
    return Engine(ws, e.clock, e.store, e.backends, e.reconciler)


def test_a_new_store_initialises_the_catalog_and_records_registrations(engine: Engine) -> None:
    engine.ws.write_scan("2026/a.h5", os.urandom(64), mtime=ACQUIRED)
    engine.run_pass()
    identity = recorded_identity(engine.store)
    assert identity is not None and engine.catalog.identity_on_disk() == identity.catalog_id
    engine.run_pass()  # a.h5 verified at cfs: registered
    assert Registrations(engine.store).known("local") == {"2026/a.h5"}
    assert Registrations(engine.store).known("scicat") == frozenset()


def test_a_catalog_that_vanishes_mid_pass_makes_registration_wait_not_fail(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.ws.write_scan("2026/a.h5", os.urandom(64), mtime=ACQUIRED)
    engine.run_pass()  # copied to cfs; the catalog is initialised (empty)
    path = engine.catalog.path
    away = path.with_name("away.json")
    real_register = LocalCatalog.register

    def unmounted_first(self, scan, locations):  # type: ignore[no-untyped-def]
        if path.exists():
            os.rename(path, away)  # the volume goes between the observation and the write
        return real_register(self, scan, locations)

    monkeypatch.setattr(LocalCatalog, "register", unmounted_first)
    engine.run_pass()
    monkeypatch.undo()
    (failure,) = engine.store.failures().values()
    assert failure.error_class is ErrorClass.TRANSIENT and failure.retry_at is not None
    assert "missing" in failure.message
    assert not path.exists() and Registrations(engine.store).known("local") == frozenset()

    os.rename(away, path)  # back: the registration runs once its backoff has passed
    engine.clock.advance(seconds=60)
    engine.run_pass()
    assert engine.store.failures() == {}
    assert Registrations(engine.store).known("local") == {"2026/a.h5"}
    assert engine.catalog.document("2026/a.h5") is not None
    plan = engine.reconciler.dry_run(engine.clock.now())
    assert not [a for a in plan.actions if a.kind is ActionKind.REGISTER]


def test_registrations_from_an_upgraded_store_belong_to_the_catalog_then_configured(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite"
    with sqlite3.connect(path) as conn:  # a store at schema 2 that registered two scans
        conn.executescript(
            "".join(MIGRATIONS[:2])
            + "PRAGMA user_version = 2;"
            + "INSERT INTO events(at, kind, scan, message, data) VALUES "
            + "('2026-01-01T00:00:00+00:00', 'catalog.register', 'a', 'registered', '{}'),"
            + "('2026-01-02T00:00:00+00:00', 'catalog.register', 'b', 'registered', NULL),"
            + "('2026-01-03T00:00:00+00:00', 'catalog.register', 'a', 'again', NULL),"
            + "('2026-01-03T00:00:00+00:00', 'catalog.update_catalog', 'c', 'x', NULL);"
        )
    store = StateStore(path)
    try:
        registrations = Registrations(store)
        assert registrations.known("local") == registrations.known("scicat") == {"a", "b"}
        registrations.claim("local")
        assert registrations.known("local") == {"a", "b"}
        assert registrations.known("scicat") == frozenset()
        registrations.forget("local", ["a"], START)
        assert registrations.known("local") == {"b"}
        kinds = [e["kind"] for e in store.events(scan="a")]
        assert kinds[-1] == "catalog.loss_accepted"
    finally:
        store.close()

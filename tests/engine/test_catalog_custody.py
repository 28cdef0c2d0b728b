"""The catalog's custody in-process: identity binding, registrations kept in the state store,
and a catalog that vanishes in the middle of a pass (the real engine, a `FakeClock`)."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.backends import Backends
from engine.catalog.attempts import adoptable
from engine.catalog.base import Location
from engine.catalog.custody import Registrations, recorded_identity
from engine.catalog.local import LocalCatalog
from engine.clock import FakeClock
from engine.model import ActionKind, ErrorClass, Level
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


def drop_document(path: Path, scan: str) -> None:
    """Remove one scan's document from the catalog file (an older backup put back)."""
    doc = json.loads(path.read_text("utf-8"))
    doc["datasets"] = {
        key: d
        for key, d in doc["datasets"].items()
        if d["scientificMetadata"]["scan_id"]["value"] != scan
    }
    path.write_text(json.dumps(doc), "utf-8")


def test_a_registration_whose_write_failed_and_was_made_later_is_kept(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.ws.write_scan("2026/a.h5", os.urandom(64), mtime=ACQUIRED)
    engine.run_pass()  # copied to cfs; the catalog is initialised (empty)
    path = engine.catalog.path
    away = path.with_name("away.json")
    real_flush = LocalCatalog.flush

    def vanished_first(self):  # type: ignore[no-untyped-def]
        if path.exists():
            os.rename(path, away)  # the volume goes between the registration and its write
        return real_flush(self)

    monkeypatch.setattr(LocalCatalog, "flush", vanished_first)
    engine.run_pass()
    monkeypatch.undo()
    (failure,) = engine.store.failures().values()
    assert "not written to the catalog" in failure.message
    assert engine.catalog.has_pending(), "setup: the change waits in memory"

    os.rename(away, path)  # back: this process writes the pending document at its next flush
    engine.run_pass()  # written before the pass reads the catalog; asked for by bl931: adopted
    assert engine.catalog.document("2026/a.h5") is not None
    assert not engine.catalog.has_pending()
    assert Registrations(engine.store).known("local") == {"2026/a.h5"}
    kinds = [e["kind"] for e in engine.store.events(scan="2026/a.h5")]
    assert "catalog.adopted" in kinds and "catalog.register" not in kinds
    assert Registrations(engine.store).attempts.pending("local") == frozenset()

    drop_document(path, "2026/a.h5")
    engine.run_pass()
    plan = engine.reconciler.dry_run(engine.clock.now())
    assert [a.code for a in plan.alert_details] == ["catalog_lost_documents"]
    assert not [a for a in plan.actions if a.kind is ActionKind.REGISTER]
    assert engine.catalog.document("2026/a.h5") is None


def test_only_registrations_bl931_asked_for_are_adopted(engine: Engine) -> None:
    """Documents another writer made stay merged and untracked, unless bl931 had asked for
    that scan's registration itself and not recorded it (then the document is kept: bl931's
    own registration would have adopted it too)."""
    for name in ("a", "b"):
        engine.ws.write_scan(f"2026/{name}.h5", os.urandom(64), mtime=ACQUIRED)
    engine.run_pass()  # copied to cfs; nothing registered yet
    other = LocalCatalog(engine.catalog.path, engine.catalog.config, clock=engine.clock)
    other.expect(engine.catalog.identity_on_disk())
    for name in ("a", "b"):  # another writer registers both before bl931 does
        scan = engine.store.get_scan(f"2026/{name}.h5")
        assert scan is not None
        other.register(scan, [Location("cfs", str(engine.ws.cfs / scan.id), Level.CHECKSUM)])
    other.flush()
    # bl931 had asked for a.h5 (a pass killed before it recorded anything).
    Registrations(engine.store).attempts.add("local", ["2026/a.h5"], engine.clock.now())
    engine.run_pass()
    engine.run_pass()
    assert Registrations(engine.store).known("local") == {"2026/a.h5"}
    assert Registrations(engine.store).attempts.pending("local") == frozenset()
    for name in ("a", "b"):
        kinds = [e["kind"] for e in engine.store.events(scan=f"2026/{name}.h5")]
        assert "catalog.register" not in kinds
        assert ("catalog.adopted" in kinds) == (name == "a")

    drop_document(engine.catalog.path, "2026/b.h5")  # theirs: its loss is not bl931's alert
    engine.run_pass()
    assert not engine.reconciler.dry_run(engine.clock.now()).alert_details
    drop_document(engine.catalog.path, "2026/a.h5")
    engine.run_pass()
    plan = engine.reconciler.dry_run(engine.clock.now())
    assert [a.code for a in plan.alert_details] == ["catalog_lost_documents"]
    assert (
        "2026/a.h5" in plan.alert_details[0].message
        and "2026/b.h5" not in plan.alert_details[0].message
    )


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


def test_an_upgraded_store_takes_its_failed_registrations_as_attempts(tmp_path: Path) -> None:
    """Migration 17 fills `catalog_attempts` from the register actions that failed (a write
    that may have been made later), for the catalog configured at the next pass."""
    path = tmp_path / "state.sqlite"
    attempts_at = next(i for i, m in enumerate(MIGRATIONS) if "catalog_attempts" in m)
    older = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:attempts_at]:
        older.executescript(f"BEGIN; {migration}; COMMIT;")
    older.execute(f"PRAGMA user_version = {attempts_at}")
    rows = [
        ("r1", "register", "a", "failed"),
        ("r2", "register", "b", "succeeded"),
        ("r3", "register", "c", "planned"),  # planned is not asked: the catalog was not called
        ("u1", "update_catalog", "d", "failed"),
    ]
    older.executemany(
        """INSERT INTO actions(id, kind, scan, bytes, status, requires_approval, reason,
               created_at, updated_at) VALUES (?, ?, ?, 0, ?, 0, '', ?, ?)""",
        [(*row, START.isoformat(), START.isoformat()) for row in rows],
    )
    older.close()
    store = StateStore(path)  # migrates
    try:
        attempts = Registrations(store).attempts
        assert attempts.pending("local") == attempts.pending("scicat") == {"a"}
        attempts.claim("local")
        assert attempts.pending("local") == {"a"} and attempts.pending("scicat") == frozenset()
    finally:
        store.close()


def test_a_document_held_only_in_memory_is_not_adopted(engine: Engine) -> None:
    """What a local catalog shows of a change not yet written may never reach the file."""
    engine.ws.write_scan("2026/a.h5", os.urandom(64), mtime=ACQUIRED)
    engine.run_pass()
    scan = engine.store.get_scan("2026/a.h5")
    assert scan is not None
    engine.catalog.register(scan, [Location("cfs", str(engine.ws.cfs / scan.id), Level.CHECKSUM)])
    view = engine.catalog.observe([scan.id])
    assert scan.id in view.locations and engine.catalog.has_pending()
    attempted = frozenset([scan.id])
    assert adoptable(engine.catalog, attempted, view, frozenset()) == (frozenset(), [])
    engine.catalog.flush()
    assert adoptable(engine.catalog, attempted, view, frozenset()) == (
        frozenset(),
        [(scan.id, engine.catalog.document(scan.id)["pid"])],  # type: ignore[index]
    )
    assert adoptable(engine.catalog, attempted, view, attempted) == (attempted, [])

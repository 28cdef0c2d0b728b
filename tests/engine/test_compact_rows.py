"""Compact rows (issue 15, memory): each repeated value is one shared object across the store's
caches and the pass's listings, the store lends its cached rows as read-only snapshots, and the
catalog locations recorded per pass still follow every change.

Identity (`is`) is what the memory depends on: equal strings read from SQLite are separate
objects unless interned.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.model import EndpointObservation, Evidence, Level, Scan, ScanFile
from engine.pass_findings import read_catalog_locations
from engine.store import ReplicaRow, StateStore
from engine.store.replicas import replica_mark
from tests.tui.world import World

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _store_with_one_scan(tmp_path: Path) -> tuple[StateStore, Scan]:
    store = StateStore(tmp_path / "state.db")
    # Built from fresh strings, as a listing and a checksum would make them.
    sid, digest = "".join(["2026/11/", "scan_1.h5"]), "".join(["ab" * 16])
    scan = Scan(
        id=sid,
        files=(ScanFile(sid, 10, NOW.timestamp(), digest),),
        acquired_at=NOW,
        checksum_algorithm="md5",
        checksum=digest,
    )
    store.upsert_scans([scan], NOW)
    signature = "".join(["cd" * 16])
    for endpoint in ("cfs", "hpss"):
        store.replace_replicas(
            endpoint, {scan.id: ReplicaRow(Level.CHECKSUM, 10, 1, signature, NOW)}, ()
        )
        store.record_evidence(
            scan.id,
            endpoint,
            Evidence(Level.CHECKSUM, "md5", digest, "task-1", NOW, signature, "transfer"),
        )
    return store, scan


def test_store_rows_share_one_object_per_id_checksum_and_signature(tmp_path: Path) -> None:
    store, _ = _store_with_one_scan(tmp_path)
    try:
        scans = store.load_scans()
        replicas = store.load_replicas()
        evidence = store.load_evidence()
        (sid,) = scans
        stored = scans[sid]
        # The scan id: one object in the scans, its file, every replica row and evidence row.
        assert stored.files[0].path is sid
        for endpoint in ("cfs", "hpss"):
            assert next(iter(replicas[endpoint])) is sid
            assert next(iter(evidence[endpoint])) is sid
        # The checksum: the scan's, its file's and the evidence's value are one object.
        assert stored.checksum is stored.files[0].checksum
        assert evidence["cfs"][sid].value is stored.checksum
        assert evidence["hpss"][sid].value is stored.checksum
        # The signature: one object for both replica rows and both evidence rows.
        sigs = [replicas[e][sid].signature for e in ("cfs", "hpss")]
        sigs += [evidence[e][sid].signature for e in ("cfs", "hpss")]
        assert all(s is sigs[0] for s in sigs)
        # Rows written in one pass share their timestamp.
        assert replicas["cfs"][sid].observed_at is replicas["hpss"][sid].observed_at
    finally:
        store.close()


def test_cached_rows_are_lent_read_only_and_stay_a_snapshot(tmp_path: Path) -> None:
    store, scan = _store_with_one_scan(tmp_path)
    try:
        replicas = store.load_replicas()["cfs"]
        evidence = store.load_evidence()["cfs"]
        with pytest.raises(TypeError):
            replicas[scan.id] = replicas[scan.id]  # type: ignore[index]
        with pytest.raises(TypeError):
            del evidence[scan.id]  # type: ignore[attr-defined]
        # A later write is not seen through what was lent before it (a snapshot, as a copy).
        store.replace_replicas("cfs", {}, [scan.id])
        store.drop_evidence(scan.id, "cfs")
        assert scan.id in replicas and scan.id in evidence
        assert scan.id not in store.load_replicas().get("cfs", {})
        assert scan.id not in store.load_evidence().get("cfs", {})
    finally:
        store.close()


def test_replica_marks_follow_every_write_and_stay_a_snapshot(tmp_path: Path) -> None:
    """The marks a pass compares (one int per stored row, kept between passes) equal a fresh
    read after each kind of write: a changed row, a removed row, a delete's receipt (which
    drops the row in its own SQL); a map handed out before a write does not change."""
    store, scan = _store_with_one_scan(tmp_path)
    try:
        fresh = StateStore(tmp_path / "state.db", readonly=True)  # always reads afresh

        def same_as_a_fresh_read() -> dict[str, dict[str, int]]:
            marks = {e: dict(m) for e, m in store.load_replica_marks().items()}
            assert marks == {e: dict(m) for e, m in fresh.load_replica_marks().items()}
            return marks

        before = store.load_replica_marks()["cfs"]
        first = same_as_a_fresh_read()
        assert first["cfs"][scan.id] == replica_mark(Level.CHECKSUM, 10, "cd" * 16)
        # A level change with the same size and signature is a change (present → checksum).
        store.replace_replicas(
            "cfs", {scan.id: ReplicaRow(Level.PRESENT, 10, 1, "cd" * 16, NOW)}, ()
        )
        assert same_as_a_fresh_read()["cfs"][scan.id] != first["cfs"][scan.id]
        assert before[scan.id] == first["cfs"][scan.id]  # lent before the write: unchanged
        store.replace_replicas("cfs", {}, [scan.id])
        assert scan.id not in same_as_a_fresh_read().get("cfs", {})
        assert scan.id in before
        store.record_deletion(scan.id, "hpss", "a-1", "t-1", NOW, {"files": []})
        assert scan.id not in same_as_a_fresh_read().get("hpss", {})
        fresh.close()
    finally:
        store.close()


def test_missing_counts_a_view_of_the_stored_rows_like_a_set() -> None:
    stored = {"a": 1, "b": 2, "c": 3, "d": 4}
    obs = EndpointObservation(
        "cfs",
        ok=True,
        replicas={},
        previously_present=stored.keys(),
        expected_absent=frozenset({"d"}),
    )
    assert obs.missing() == frozenset({"a", "b", "c"})
    down = EndpointObservation("cfs", ok=False, previously_present=stored.keys())
    assert down.missing() == frozenset()


def test_catalog_locations_follow_every_change_after_the_first_write(tmp_path: Path) -> None:
    world = World(tmp_path / "w")
    try:
        scan = world.write(1, age_days=45)
        world.passes(1)  # the first write: compared with the stored texts
        conn = world.store.connection()
        recorded = [read_catalog_locations(conn, scan)]
        for _ in range(4):  # later writes: compared with the sets written, as copies land
            world.passes(1)
            recorded.append(read_catalog_locations(conn, scan))
        final = recorded[-1]
        assert final is not None and {"cfs", "hpss"} <= final
        # The set changed after the first write and the change was recorded.
        assert len({r for r in recorded if r is not None}) >= 2
        seen = world.reconciler.observe(world.clock())
        assert final == seen.catalog.locations[scan]
    finally:
        world.close()

"""What each pass records beside its plan: why scans are held back, and the catalog as read."""

from __future__ import annotations

from pathlib import Path

from engine.pass_findings import (
    read_blocked,
    read_catalog_locations,
    read_catalog_status,
    read_registered,
)
from tests.tui.world import World


def codes(world: World, scan: str) -> set[tuple[str, str | None, str]]:
    records = read_blocked(world.store.connection(), scan)
    assert records is not None
    return {(r.kind, r.endpoint, r.reason_code) for r in records}


def test_a_catalog_that_cannot_be_read_is_recorded_as_such_and_blocks_are_kept(
    tmp_path: Path,
) -> None:
    world = World(tmp_path / "w")
    try:
        scan = world.write(1, age_days=45)
        (world.ws.root / "state" / "catalog.json").write_text("{ not json")
        world.passes(3)
        conn = world.store.connection()
        status = read_catalog_status(conn)
        assert status is not None and not status.ok and status.last_ok_at is None
        assert status.error
        assert read_registered(conn) == frozenset()
        assert ("register", None, "catalog_unavailable") in codes(world, scan)
        assert ("delete", "dtn", "catalog_unavailable") in codes(world, scan)
        # A date is not recorded: the reader computes it from the policy.
        assert not any(code == "retention_not_reached" for *_, code in codes(world, scan))
    finally:
        world.close()


def test_the_catalog_as_read_and_blocks_kept_with_their_first_time(tmp_path: Path) -> None:
    world = World(tmp_path / "w", dtn_keep_days=30, cfs_keep_days=40)
    try:
        scan = world.write(1, age_days=45)
        world.passes(4)  # copies to cfs and hpss, registered, locations read back
        conn = world.store.connection()
        assert read_registered(conn) == frozenset({scan})
        assert read_catalog_locations(conn, scan) == frozenset({"dtn", "cfs", "hpss"})
        (record,) = [r for r in read_blocked(conn, scan) or [] if r.endpoint == "cfs"]
        assert record.reason_code == "still_needed"
        assert record.reason.startswith("the dtn prune awaiting approval relies on this copy")
        first = record.since
        world.clock.advance(hours=1)
        world.passes()
        (again,) = [r for r in read_blocked(conn, scan) or [] if r.endpoint == "cfs"]
        assert again.since == first  # the same reason, still standing since then
        # A rejection: the dtn prune is held back for it, the cfs one for the dtn copy.
        (delete,) = [a for a in world.store.actions(["planned"]) if a.target == "dtn"]
        world.store.reject([delete.id], "operator", world.clock.now())
        world.passes()
        assert ("delete", "dtn", "rejected") in codes(world, scan)
        (cfs,) = [r for r in read_blocked(conn, scan) or [] if r.endpoint == "cfs"]
        assert cfs.reason == "the dtn copy relies on this one until it is pruned (dtn: rejected)"
    finally:
        world.close()

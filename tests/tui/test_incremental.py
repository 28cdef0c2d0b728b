"""The TUI's incremental rows equal a full read, whatever the service (or anyone) writes.

A world of a few dozen scans is changed at random through the store's own writers (copies
verified and lost, prunes with receipts, plans, failures, successes, tasks and their progress,
approvals and rejections, holds placed, lifted and expiring, what a pass held back and what the
catalog listed, new scans, scans forgotten, heartbeats, endpoint health) while a fake clock
moves across retention dates; after every step the `RowCache` snapshot must equal a fresh
`load_snapshot` of the same store at the same moment. A heartbeat-only change rebuilds no row,
and removing any one family of change marks makes the comparison fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bl931tui.incremental import RowCache
from bl931tui.readmodel import load_snapshot
from engine.model import ActionKind, Blocked, CatalogView, ErrorClass, Level, Plan, Scan
from engine.pass_findings import PassFindings
from engine.policy import Policy
from engine.state import ReplicaRow, StateStore, TaskRow
from engine.storage.base import ItemProgress
from engine.task_progress import record_item_progress
from engine.workspace import create_workspace
from tests.tui.scenarios import (
    NOW,
    USER,
    copy_action,
    delete_action,
    make_scan,
    register_action,
)

ENDPOINTS = ("dtn", "cfs", "hpss")


@dataclass
class World:
    """A store the test writes, the TUI's read-only view of it, and a clock."""

    writer: StateStore
    reader: StateStore
    policy: Policy
    now: datetime = NOW
    scans: list[Scan] = field(default_factory=list)
    findings: PassFindings | None = None
    tasks: int = 0
    cache: RowCache = field(default_factory=RowCache)

    def check(self) -> int:
        """The incremental snapshot equals a full one; returns the rows it rebuilt."""
        incremental = self.cache.snapshot(self.reader, self.policy, self.now)
        full = load_snapshot(self.reader, self.policy, self.now)
        assert incremental.rows == full.rows
        assert incremental == full
        return self.cache.rebuilt


def make_world(root: Path, count: int = 24) -> World:
    config = create_workspace(root, dtn_keep_days=30, cfs_keep_days=730).config()
    writer = StateStore(config.state.path)
    # Ages around dtn's 30 days, so the clock moving on passes retention dates.
    scans = [make_scan(n, age_days=28.01 + n * 0.25) for n in range(count)]
    writer.upsert_scans(scans, NOW - timedelta(days=1))
    world = World(writer, StateStore(config.state.path, readonly=True), Policy.from_config(config))
    world.scans = scans
    world.findings = PassFindings(writer)
    for endpoint in ("dtn", "cfs"):
        verify(world, scans[: count // 2] if endpoint == "cfs" else scans, endpoint, Level.CHECKSUM)
    world.writer.beat(NOW, pid=1, host="h", mode="service", pass_started_at=NOW)
    return world


def verify(world: World, scans: list[Scan], endpoint: str, level: Level) -> None:
    rows = {s.id: ReplicaRow(level, s.size, 1, f"sig-{level}", world.now) for s in scans}
    world.writer.replace_replicas(endpoint, rows, [])


# ---- the changes ----------------------------------------------------------------------------
Change = Callable[[World, int], None]


def copy_verified(world: World, n: int) -> None:
    scan = world.scans[n % len(world.scans)]
    verify(world, [scan], ENDPOINTS[n % 3], (Level.SIZE, Level.CHECKSUM, Level.PRESENT)[n % 3])


def copy_lost(world: World, n: int) -> None:
    world.writer.replace_replicas(ENDPOINTS[n % 3], {}, [world.scans[n % len(world.scans)].id])


def pruned(world: World, n: int) -> None:
    scan = world.scans[n % len(world.scans)]
    action = delete_action(scan, "dtn")
    endpoint = ENDPOINTS[n % 3]
    world.writer.record_deletion(scan.id, endpoint, action.id, "task-x", world.now, {"files": 1})


def planned(world: World, n: int) -> None:
    scans = world.scans[n % len(world.scans) :][:3]
    makers = (
        lambda s: copy_action(s, "dtn", "cfs"),
        lambda s: delete_action(s, "dtn"),
        register_action,
        lambda s: copy_action(s, "cfs", "hpss"),
    )
    world.writer.save_plan([makers[(n + i) % 4](s) for i, s in enumerate(scans)], world.now)


def failed(world: World, n: int) -> None:
    rows = world.writer.actions(["planned"])
    if rows:
        action = rows[n % len(rows)]
        world.writer.record_failure(action.id, ErrorClass.NEEDS_HUMAN, f"no {n}", world.now, None)


def succeeded(world: World, n: int) -> None:
    rows = world.writer.actions(["planned", "submitted", "failed"])
    if rows:
        world.writer.record_success(rows[n % len(rows)].id, world.now)


def decided(world: World, n: int) -> None:
    rows = [a for a in world.writer.actions(["planned"]) if a.requires_approval]
    if rows:
        decide = world.writer.approve if n % 2 else world.writer.reject
        decide([rows[n % len(rows)].id], USER, world.now)


def task_started(world: World, n: int) -> None:
    rows = [a for a in world.writer.actions(["planned"]) if a.kind == "copy"][:2]
    if not rows:
        return
    world.tasks += 1
    sub = f"sub-{world.tasks}"
    task = TaskRow(sub, f"t{world.tasks}", "local", "copy", "dtn", "cfs", "copy", "active",
                   tuple(a.id for a in rows))  # fmt: skip
    world.writer.create_task(task, {a.id: a.scan for a in rows}, world.now)
    record_item_progress(world.writer, sub, [ItemProgress(rows[0].id, 0, 1000 + n)])


def task_moved(world: World, n: int) -> None:
    tasks = world.writer.tasks(["active"])
    if not tasks:
        return
    task = tasks[n % len(tasks)]
    if n % 3 == 0:
        world.writer.update_task(task.submission_id, world.now, status="succeeded")
    else:
        progress = [ItemProgress(a, 1, 500_000 * (n % 4)) for a in task.action_ids]
        record_item_progress(world.writer, task.submission_id, progress)


def held(world: World, n: int) -> None:
    scan = world.scans[n % len(world.scans)]
    until = world.now + timedelta(hours=1 + n % 5) if n % 2 else None
    world.writer.place_hold(scan.id, f"keep {n}", USER, world.now, until)


def lifted(world: World, n: int) -> None:
    world.writer.lift_hold(world.scans[n % len(world.scans)].id, USER, world.now)


def pass_recorded(world: World, n: int) -> None:
    """A pass's findings: what it held back, and the catalog as read (or unreadable)."""
    scans = world.scans[n % 5 :: 4]
    codes = ("waiting_for_source", "needs_attention", "rejected", "endpoint_unknown")
    blocked = tuple(
        Blocked(s.id, ActionKind.COPY, "hpss", codes[(n + i) % 4], f"why {n % 3}")
        for i, s in enumerate(scans)
    )
    listed = {s.id: frozenset({"cfs"}) for s in world.scans[(n // 10) % 3 :: 2]}
    catalog = CatalogView(enabled=True, locations=listed, ok=n % 7 != 0, error="down")
    assert world.findings is not None
    world.findings.record(Plan(as_of=world.now, actions=(), blocked=blocked), catalog, world.now)


def scan_added(world: World, n: int) -> None:
    scan = make_scan(1000 + len(world.scans), age_days=29 + (n % 8) * 0.3)
    world.scans.append(scan)
    world.writer.upsert_scans([scan], world.now)


def scan_forgotten(world: World, n: int) -> None:
    scan = world.scans[n % len(world.scans)]
    with world.writer.transaction() as conn:  # no engine writer forgets a scan: anyone might
        conn.execute("DELETE FROM scans WHERE id = ?", (scan.id,))


def heartbeat(world: World, n: int) -> None:
    world.writer.beat(world.now, pass_finished_at=world.now, last_ok_pass_at=world.now)
    world.writer.endpoint_ok(ENDPOINTS[n % 3], world.now)


def endpoint_failed(world: World, n: int) -> None:
    world.writer.endpoint_failed(ENDPOINTS[n % 3], f"timeout {n}", world.now)


def time_passes(world: World, n: int) -> None:
    world.now += timedelta(hours=(n % 9) * 3 + 1)


CHANGES: tuple[Change, ...] = (
    copy_verified,
    copy_lost,
    pruned,
    planned,
    failed,
    succeeded,
    decided,
    task_started,
    task_moved,
    held,
    lifted,
    pass_recorded,
    scan_added,
    scan_forgotten,
    heartbeat,
    endpoint_failed,
    time_passes,
)

steps = st.lists(
    st.lists(st.tuples(st.sampled_from(CHANGES), st.integers(0, 200)), min_size=1, max_size=4),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=steps)
def test_incremental_rows_equal_a_full_read(
    tmp_path_factory: pytest.TempPathFactory, batches
) -> None:  # type: ignore[no-untyped-def]
    world = make_world(tmp_path_factory.mktemp("world"))
    try:
        world.check()
        for batch in batches:
            for change, n in batch:
                change(world, n)
            world.check()
    finally:
        world.writer.close()
        world.reader.close()


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    made = make_world(tmp_path)
    yield made
    made.writer.close()
    made.reader.close()


def test_a_heartbeat_only_change_rebuilds_no_row(world: World) -> None:
    pass_recorded(world, 1)  # the catalog was read once: a quiet pass then only says so again
    first = world.cache.snapshot(world.reader, world.policy, world.now)
    assert world.cache.rebuilt == len(world.scans)
    world.now += timedelta(seconds=30)  # a quiet pass later: no retention date in between
    heartbeat(world, 0)
    world.findings.catalog_unchanged(world.now)  # type: ignore[union-attr]
    assert world.check() == 0
    again = world.cache.snapshot(world.reader, world.policy, world.now)
    assert again.rows is first.rows  # the very same rows: the scans view is not recomputed
    assert again.heartbeat != first.heartbeat
    assert world.cache.rebuilt == 0 and world.cache.full_reads == 1


def test_only_the_changed_rows_are_rebuilt(world: World) -> None:
    world.check()
    held(world, 3)
    copy_verified(world, 13)
    assert world.check() == 2


def test_a_retention_date_passing_rebuilds_the_rows_it_touches(world: World) -> None:
    world.check()
    world.now += timedelta(hours=6)  # the scans between 30 and 30¼ days old pass dtn's date
    rebuilt = world.check()
    assert 0 < rebuilt < len(world.scans)


def task_done(world: World, n: int) -> None:
    for task in world.writer.tasks(["active"]):
        world.writer.update_task(task.submission_id, world.now, status="succeeded")


# Each family of change marks, with changes that need it (the last one is made without it).
# Without the family the cache misses the change, and the comparison says so. (Holds are also
# read whole on every refresh, so their marks are a second guard, not tested alone.)
MARKS: dict[str, tuple[tuple[str, ...], list[tuple[Change, int]]]] = {
    "scans": (("scans",), [(scan_forgotten, 1)]),
    "replicas": (("replicas",), [(copy_verified, 2)]),
    "deletions": (("deletions",), [(pruned, 2)]),  # at hpss, where no replica is dropped
    "actions": (("actions",), [(planned, 1)]),
    "decisions": (("decisions",), [(planned, 1), (decided, 1)]),
    "blocked": (("blocked",), [(pass_recorded, 1), (pass_recorded, 2)]),
    "catalog": (("catalog_entries",), [(pass_recorded, 1), (pass_recorded, 11)]),
    "task progress": (
        ("task_items", "task_items_action"),
        [(planned, 1), (task_started, 1), (task_moved, 1)],
    ),
    "task status": (("tasks",), [(planned, 1), (task_started, 1), (task_done, 1)]),
}


@pytest.mark.parametrize("family", sorted(MARKS))
def test_the_comparison_catches_a_missing_marker(world: World, family: str) -> None:
    tables, changes = MARKS[family]
    for change, n in changes[:-1]:
        change(world, n)
    world.check()
    with world.writer.transaction() as conn:
        for table in tables:
            for when in ("insert", "update", "delete"):
                conn.execute(f"DROP TRIGGER {table}_marks_{when}")
    change, n = changes[-1]
    change(world, n)
    with pytest.raises(AssertionError):
        world.check()


def test_a_store_without_marks_is_read_whole(world: World) -> None:
    with world.writer.transaction() as conn:
        conn.execute("DROP TABLE change_epoch")
    world.check()
    world.check()
    assert world.cache.full_reads == 2


def test_another_epoch_is_another_store(world: World) -> None:
    """A copy put in the store's place (a backup gets its own epoch) is read whole, even when
    its marks have come as far as the original's."""
    world.check()
    with world.writer.transaction() as conn:
        conn.execute("UPDATE change_epoch SET epoch = 'restored'")
    copy_verified(world, 5)
    world.check()
    assert world.cache.full_reads == 2

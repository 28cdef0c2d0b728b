"""Which scans changed since a reader last looked: the views behind the TUI's incremental rows.

Every write to a column a scan's row is derived from (its size and date, its replicas' levels,
its removals, its actions, the decisions on them, its tasks and their per-scan progress, its
holds, what the last pass held back for it, whether the catalog lists it) moves that scan's
mark in `scan_changes` past every other mark. Triggers do it (migration "change marks"), inside
the writing transaction, so no writer, present or future, can forget to, and a mark is never
visible before the change it marks. A reader that remembers the highest mark it has seen
(`ChangeMark.seq`) therefore learns every scan whose row may differ by asking for the marks
above it; everything else a row depends on is either read whole (the active holds, the
catalog's status) or a date (`bl931tui.incremental` handles those).

A store without the marks (not migrated yet: the TUI never migrates) gives no `ChangeMark`,
and the reader then reads everything, as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.pass_findings import BlockedRecord, CatalogStatus, read_catalog_status
from engine.store.connection import iso, parse_time
from engine.store.status import ActionStatus
from engine.store.views import _OPEN, OPEN_ACTION_COLUMNS, ScanTableFacts
from engine.task_progress import ScanProgress

if TYPE_CHECKING:
    from engine.store import StateStore

_REGISTERED = f"status = '{ActionStatus.SUCCEEDED}' AND kind IN ('register', 'update_catalog')"


@dataclass(frozen=True, slots=True)
class ChangeMark:
    """Where a store's change marks stood: which store (`epoch`), how far (`seq`), which schema."""

    epoch: str
    seq: int
    schema: int


@dataclass(frozen=True, slots=True)
class TableTotals:
    """What the scan table's status lines show besides rows, read whole on every refresh."""

    active_tasks: int
    endpoint_errors: dict[str, str]
    catalog_status: CatalogStatus | None


@contextmanager
def one_read(store: StateStore) -> Iterator[None]:
    """Run the enclosed reads in one read transaction: one consistent state of the store."""
    conn = store.connection()
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def change_mark(store: StateStore) -> ChangeMark | None:
    """The store's current mark; None when it keeps no marks (not migrated yet)."""
    conn = store.connection()
    try:
        epoch = conn.execute("SELECT epoch FROM change_epoch WHERE id = 1").fetchone()
        seq = conn.execute("SELECT coalesce(max(seq), 0) FROM scan_changes").fetchone()[0]
    except sqlite3.OperationalError:
        return None
    if epoch is None:
        return None
    schema = int(conn.execute("PRAGMA user_version").fetchone()[0])
    return ChangeMark(str(epoch[0]), int(seq), schema)


def changed_since(store: StateStore, seq: int) -> set[str]:
    """The scans (present or forgotten) whose rows may have changed after mark `seq`."""
    rows = store.connection().execute("SELECT scan FROM scan_changes WHERE seq > ?", (seq,))
    return {r[0] for r in rows}


def scan_rowids(store: StateStore) -> dict[str, int]:
    """Scan → its row's place in the table (the order a full read lists scans in)."""
    return dict(store.connection().execute("SELECT id, rowid FROM scans"))


def new_epoch(conn: sqlite3.Connection) -> None:
    """Give a copy of a store its own epoch (a backup), so no reader takes it for the original."""
    try:
        conn.execute("UPDATE change_epoch SET epoch = lower(hex(randomblob(16))) WHERE id = 1")
    except sqlite3.OperationalError:
        return  # a store without marks: nothing to tell apart


def active_holds(store: StateStore, now: datetime) -> dict[str, str]:
    """Scan → reason of its hold in force at `now` (as `views.scan_table` reads them)."""
    holds: dict[str, str] = {}
    for scan, reason, expires in store.connection().execute(
        "SELECT scan, reason, expires_at FROM holds WHERE lifted_at IS NULL"
    ):
        until = parse_time(expires)
        if until is None or until > now:
            holds[scan] = reason
    return holds


def table_totals(store: StateStore, *, catalog: bool) -> TableTotals:
    conn = store.connection()
    active = int(conn.execute(f"SELECT count(*) FROM tasks WHERE status IN {_OPEN}").fetchone()[0])
    errors = {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT name, last_error FROM endpoints WHERE consecutive_failures > 0"
        )
    }
    return TableTotals(active, errors, read_catalog_status(conn) if catalog else None)


def registered_between(store: StateStore, start: datetime, end: datetime) -> set[str]:
    """Scans with a registration that succeeded in [start, end) (or [end, start)): the ones
    whose "registered since the catalog was read" changes when that reading moves."""
    low, high = sorted((start, end))
    rows = store.connection().execute(
        f"SELECT DISTINCT scan FROM actions WHERE {_REGISTERED} AND updated_at >= ?"
        " AND updated_at < ?",
        (iso(low), iso(high)),
    )
    return {r[0] for r in rows}


def scan_facts(
    store: StateStore,
    endpoints: tuple[str, ...],
    scans: Collection[str],
    *,
    holds: dict[str, str],
    totals: TableTotals,
    catalog: bool,
) -> ScanTableFacts:
    """`views.scan_table`'s facts for just these scans (those still in the store), read in
    the same orders, so a row built from them equals the one a full read builds."""
    conn = store.connection()
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS changed(scan TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM temp.changed")
    conn.executemany("INSERT INTO temp.changed VALUES (?)", [(s,) for s in scans])
    only = "scan IN (SELECT scan FROM temp.changed)"
    their_actions = f"SELECT id FROM actions WHERE {only}"
    epoch = "(julianday(acquired_at) - 2440587.5) * 86400.0"
    found = conn.execute(
        f"SELECT id, size, {epoch}, rowid FROM scans WHERE id IN (SELECT scan FROM temp.changed)"
        " ORDER BY rowid"
    ).fetchall()
    levels = {
        name: dict(
            conn.execute(f"SELECT scan, level FROM replicas WHERE endpoint = ? AND {only}", (name,))
        )
        for name in endpoints
    }
    pruned: dict[str, set[str]] = {name: set() for name in endpoints}
    for scan, endpoint in conn.execute(f"SELECT scan, endpoint FROM deletions WHERE {only}"):
        pruned.setdefault(endpoint, set()).add(scan)
    # One action at a time: asked for a list, the planner reads the `approvals` view's second
    # half through every submitted action.
    ids = [r[0] for r in conn.execute(f"{their_actions} ORDER BY rowid")]
    decided: dict[str, str] = {}
    for action in ids:
        for r in conn.execute(
            "SELECT action_id, decision FROM approvals WHERE action_id = ?", (action,)
        ):
            decided[r[0]] = r[1]
    scan_at = OPEN_ACTION_COLUMNS.index("scan")
    open_actions: dict[str, list[tuple[Any, ...]]] = {}
    for row in conn.execute(
        f"""SELECT {", ".join(OPEN_ACTION_COLUMNS)} FROM actions
            WHERE {only} AND status != '{ActionStatus.SUCCEEDED}' ORDER BY rowid"""
    ):
        open_actions.setdefault(row[scan_at], []).append(tuple(row))
    status = totals.catalog_status
    registered = None
    if catalog and status is not None and status.last_ok_at is not None:
        listed = {r[0] for r in conn.execute(f"SELECT scan FROM catalog_entries WHERE {only}")}
        since = conn.execute(  # from the changed scans, not from every succeeded action
            f"""SELECT DISTINCT a.scan FROM temp.changed c
                CROSS JOIN actions a INDEXED BY actions_scan ON a.scan = c.scan
                WHERE a.status = '{ActionStatus.SUCCEEDED}'
                  AND a.kind IN ('register', 'update_catalog') AND a.updated_at >= ?""",
            (iso(status.last_ok_at),),
        )
        registered = frozenset(listed | {r[0] for r in since})
    blocked: dict[str, list[BlockedRecord]] = {}
    for r in conn.execute(
        f"""SELECT scan, kind, endpoint, reason_code, reason, since FROM blocked WHERE {only}
            ORDER BY since, scan, kind, endpoint, reason_code"""
    ):
        record = BlockedRecord(r[0], r[1], r[2] or None, r[3], r[4], datetime.fromisoformat(r[5]))
        blocked.setdefault(record.scan, []).append(record)
    return ScanTableFacts(
        scans=[tuple(s) for s in found],
        total=len(found),
        levels=levels,
        pruned=pruned,
        decided=decided,
        holds=holds,
        progress=_progress(conn, their_actions),
        active_tasks=totals.active_tasks,
        open_actions=open_actions,
        catalog_status=status,
        registered=registered,
        blocked=blocked,
        endpoint_errors=totals.endpoint_errors,
    )


def _progress(conn: sqlite3.Connection, their_actions: str) -> dict[str, ScanProgress]:
    """`task_progress.open_item_progress`, for the actions of the changed scans only."""
    rows = conn.execute(
        f"""SELECT ti.action_id, ti.scan, ti.files_done, ti.bytes_done FROM task_items ti
           JOIN tasks t ON t.submission_id = ti.submission_id
           WHERE t.status IN {_OPEN} AND ti.action_id IN ({their_actions})"""
    ).fetchall()
    return {r[0]: ScanProgress(r[0], r[1], r[2], r[3]) for r in rows}

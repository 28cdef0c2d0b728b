"""Read models for the TUI: the store's tables reduced to what its screens show.

The TUI reads the store only through these (it writes only operator decisions, through
`engine.operator_decisions`). They run their own SELECTs rather than the aggregates' loaders,
which parse every scan's file list: only the columns a screen shows are read, as plain tuples
and rows, so a refresh over 100,000 scans stays cheap. A store the service has not migrated yet
(the TUI opens it read-only and never migrates) lacks the newer tables: the views then report
nothing rather than fail.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.pass_findings import (
    BlockedRecord,
    CatalogStatus,
    read_blocked,
    read_catalog_status,
    read_registered,
)
from engine.store.connection import iso, parse_time
from engine.store.status import ActionStatus, TaskRowStatus
from engine.task_progress import ScanProgress, open_item_progress, task_scans

if TYPE_CHECKING:
    from engine.store import StateStore

_OPEN = f"('{TaskRowStatus.PREPARING}', '{TaskRowStatus.ACTIVE}')"  # SQL list of open tasks


# ---- the scan table -------------------------------------------------------------------------


def fingerprint(store: StateStore) -> tuple[Any, ...]:
    """A cheap summary that changes whenever anything the TUI shows changes.

    A store with change marks (`engine.store.changes`) says in its highest mark whether any
    scan's facts changed (scans, replicas, actions, removals, holds, what a pass held back, the
    catalog's entries); the rest is counted and compared as before, from small tables only.
    """
    conn = store.connection()
    try:
        marks = conn.execute(
            """SELECT (SELECT epoch FROM change_epoch WHERE id = 1),
                      (SELECT max(seq) FROM scan_changes)"""
        ).fetchone()
    except sqlite3.OperationalError:
        marks = None
    if marks is not None and marks[0] is not None:
        row = conn.execute(
            """SELECT (SELECT max(seq) FROM events),
                      (SELECT beat_at FROM heartbeat WHERE id = 1),
                      (SELECT count(*) || ':' || coalesce(max(updated_at), '') FROM tasks),
                      (SELECT count(*) || ':' || coalesce(max(decided_at), '') FROM approvals),
                      (SELECT count(*) || ':' || coalesce(max(placed_at), '')
                              || coalesce(max(lifted_at), '') FROM holds),
                      (SELECT ok || coalesce(error, '') FROM catalog_status)"""
        ).fetchone()
        return ("marks", *marks, *row)
    row = conn.execute(
        """SELECT (SELECT max(seq) FROM events),
                  (SELECT beat_at FROM heartbeat WHERE id = 1),
                  (SELECT count(*) || ':' || coalesce(max(updated_at), '') FROM tasks),
                  (SELECT count(*) || ':' || coalesce(max(decided_at), '') FROM approvals),
                  (SELECT count(*) || ':' || coalesce(max(placed_at), '')
                          || coalesce(max(lifted_at), '') FROM holds),
                  (SELECT count(*) FROM actions),
                  (SELECT count(*) FROM deletions),
                  (SELECT count(*) FROM scans)"""
    ).fetchone()
    try:  # what passes recorded beside their plans (a store not yet at schema 7 has none)
        findings = tuple(
            conn.execute(
                """SELECT (SELECT count(*) || ':' || coalesce(max(since), '') FROM blocked),
                          (SELECT count(*) || ':' || coalesce(max(seen_at), '')
                           FROM catalog_entries),
                          (SELECT ok || coalesce(error, '') FROM catalog_status)"""
            ).fetchone()
        )
    except sqlite3.OperationalError:
        findings = ()
    return tuple(row) + findings


@dataclass(frozen=True)
class ScanTableFacts:
    """Everything one refresh of the scan table reads, keyed the way the row builder wants it."""

    scans: list[tuple[str, int, float, int]]  # (id, size, acquired as epoch seconds, rowid)
    total: int  # every scan in the store (more than `scans` when only the newest were read)
    levels: dict[str, dict[str, int]]  # endpoint → scan → stored level
    pruned: dict[str, set[str]]  # endpoint → scans deleted there
    decided: dict[str, str]  # action id → decision in the log's view
    holds: dict[str, str]  # scan → reason of its active hold
    progress: dict[str, ScanProgress]  # action id → its scan's progress in an open task
    active_tasks: int
    open_actions: dict[str, list[tuple[Any, ...]]]  # scan → its unfinished actions' columns
    catalog_status: CatalogStatus | None
    registered: frozenset[str] | None
    blocked: dict[str, list[BlockedRecord]]
    endpoint_errors: dict[str, str]


# The columns of `ScanTableFacts.open_actions` tuples, in order.
OPEN_ACTION_COLUMNS = (
    "id",
    "kind",
    "scan",
    "source",
    "target",
    "status",
    "requires_approval",
    "reason",
    "error",
)


def scan_table(
    store: StateStore,
    endpoints: tuple[str, ...],
    now: datetime,
    *,
    catalog: bool = True,
    first: int | None = None,
) -> ScanTableFacts:
    """Read the store once for the scan table; with `first`, only the newest `first` scans."""
    conn = store.connection()
    epoch = "(julianday(acquired_at) - 2440587.5) * 86400.0"
    if first is None:
        scans = conn.execute(
            f"SELECT id, size, {epoch}, rowid FROM scans ORDER BY rowid"
        ).fetchall()
        only = ""
    else:
        scans = conn.execute(
            f"SELECT id, size, {epoch} AS t, rowid FROM scans ORDER BY t DESC LIMIT ?", (first,)
        ).fetchall()
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS page(scan TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM temp.page")
        conn.executemany("INSERT INTO temp.page VALUES (?)", [(s[0],) for s in scans])
        only = " AND scan IN (SELECT scan FROM temp.page)"
    total = (
        len(scans)
        if first is None
        else int(conn.execute("SELECT count(*) FROM scans").fetchone()[0])
    )
    levels: dict[str, dict[str, int]] = {
        name: dict(
            conn.execute(f"SELECT scan, level FROM replicas WHERE endpoint = ?{only}", (name,))
        )
        for name in endpoints
    }
    pruned: dict[str, set[str]] = {name: set() for name in endpoints}
    for scan, endpoint in conn.execute(f"SELECT scan, endpoint FROM deletions WHERE 1{only}"):
        pruned.setdefault(endpoint, set()).add(scan)
    decided = {r[0]: r[1] for r in conn.execute("SELECT action_id, decision FROM approvals")}
    holds: dict[str, str] = {}
    for scan, reason, expires in conn.execute(
        "SELECT scan, reason, expires_at FROM holds WHERE lifted_at IS NULL"
    ):
        until = parse_time(expires)
        if until is None or until > now:
            holds[scan] = reason
    progress = open_item_progress(conn)
    active_tasks = int(
        conn.execute(f"SELECT count(*) FROM tasks WHERE status IN {_OPEN}").fetchone()[0]
    )
    scan_at = OPEN_ACTION_COLUMNS.index("scan")
    open_actions: dict[str, list[tuple[Any, ...]]] = {}
    for row in conn.execute(
        f"""SELECT {", ".join(OPEN_ACTION_COLUMNS)}
            FROM actions WHERE status != '{ActionStatus.SUCCEEDED}'{only} ORDER BY rowid"""
    ):
        open_actions.setdefault(row[scan_at], []).append(tuple(row))
    catalog_status = read_catalog_status(conn) if catalog else None
    registered = _catalog_truth(conn, catalog_status, only) if catalog else None
    blocked: dict[str, list[BlockedRecord]] = {}
    for record in read_blocked(conn) or ():
        blocked.setdefault(record.scan, []).append(record)
    errors = {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT name, last_error FROM endpoints WHERE consecutive_failures > 0"
        )
    }
    return ScanTableFacts(
        scans=[tuple(s) for s in scans],
        total=total,
        levels=levels,
        pruned=pruned,
        decided=decided,
        holds=holds,
        progress=progress,
        active_tasks=active_tasks,
        open_actions=open_actions,
        catalog_status=catalog_status,
        registered=registered,
        blocked=blocked,
        endpoint_errors=errors,
    )


def catalog_truth(store: StateStore, status: CatalogStatus | None) -> frozenset[str] | None:
    """The scans the catalog holds, as far as the store knows; None if it does not know."""
    return _catalog_truth(store.connection(), status)


def _catalog_truth(
    conn: sqlite3.Connection, status: CatalogStatus | None, only: str = ""
) -> frozenset[str] | None:
    # The catalog as a pass last read it, plus the registrations that succeeded since that read
    # (a pass reads the catalog before it registers). Never inferred from the copies: a scan is
    # registered only if the catalog said so or a registration of it succeeded.
    if status is None or status.last_ok_at is None:
        return None
    held = read_registered(conn) or frozenset()
    since = conn.execute(
        f"""SELECT DISTINCT scan FROM actions WHERE status = '{ActionStatus.SUCCEEDED}'
            AND kind IN ('register', 'update_catalog') AND updated_at >= ?{only}""",
        (iso(status.last_ok_at),),
    )
    return held | {r[0] for r in since}


# ---- one scan ---------------------------------------------------------------------------------


def scan_copies(
    store: StateStore, scan_id: str
) -> tuple[dict[str, sqlite3.Row], dict[str, sqlite3.Row], dict[str, str]]:
    """(endpoint → evidence row, endpoint → replica row, endpoint → when it was pruned)."""
    conn = store.connection()
    evidence = {
        row["endpoint"]: row
        for row in conn.execute("SELECT * FROM evidence WHERE scan = ?", (scan_id,))
    }
    observed = {
        row["endpoint"]: row
        for row in conn.execute(
            "SELECT endpoint, level, size, files, observed_at FROM replicas WHERE scan = ?",
            (scan_id,),
        )
    }
    pruned = {
        row["endpoint"]: row["deleted_at"]
        for row in conn.execute(
            "SELECT endpoint, deleted_at FROM deletions WHERE scan = ?", (scan_id,)
        )
    }
    return evidence, observed, pruned


def blocked_of(store: StateStore, scan_id: str) -> tuple[BlockedRecord, ...]:
    """What the last pass held back for one scan, and why."""
    return tuple(read_blocked(store.connection(), scan_id) or ())


# ---- tasks and events -----------------------------------------------------------------------


def task_rows(store: StateStore, *, finished: int = 30) -> list[sqlite3.Row]:
    """Open tasks first, then the most recently finished ones, each with its scan count and
    first scan (`scans`, `first_scan`)."""
    counted = """t.*, (SELECT count(*) FROM task_items i
                        WHERE i.submission_id = t.submission_id) AS scans,
                     (SELECT min(scan) FROM task_items i
                        WHERE i.submission_id = t.submission_id) AS first_scan"""
    return (
        store.connection()
        .execute(
            f"""SELECT {counted} FROM tasks t WHERE t.status IN {_OPEN}
           UNION ALL
           SELECT * FROM (SELECT {counted}
           FROM tasks t WHERE t.status NOT IN {_OPEN}
           ORDER BY t.updated_at DESC LIMIT ?)""",
            (finished,),
        )
        .fetchall()
    )


def scans_of_task(store: StateStore, submission_id: str) -> list[ScanProgress]:
    """The scans of one task, with their progress where the mover reported it."""
    return task_scans(store.connection(), submission_id)


def search_events(store: StateStore, text: str = "", *, limit: int = 2000) -> list[dict[str, Any]]:
    """The newest audit events matching `text` (words: `level:error`, `kind:delete`, substrings)."""
    clauses: list[str] = []
    params: list[Any] = []
    for word in text.split():
        field, sep, value = word.partition(":")
        if sep and field == "level":
            clauses.append("level = ?")
            params.append(value.lower())
        elif sep and field == "kind":
            clauses.append("kind LIKE ?")
            params.append(f"%{value}%")
        else:
            clauses.append("(kind LIKE ? OR coalesce(scan, '') LIKE ? OR message LIKE ?)")
            params.extend([f"%{word}%"] * 3)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = store.connection().execute(
        f"SELECT seq, at, level, kind, scan, action_id, message, data FROM events {where} "
        "ORDER BY seq DESC LIMIT ?",
        (*params, limit),
    )
    out = []
    for row in rows:
        item = dict(row)
        item["data"] = json.loads(item["data"]) if item["data"] else None
        out.append(item)
    return out


# ---- approvals --------------------------------------------------------------------------------


def undecided_gated(store: StateStore) -> list[tuple[Any, ...]]:
    """(id, kind, scan, source, target, bytes, reason) of planned gated actions no operator has
    decided on."""
    rows = store.connection().execute(
        f"""SELECT a.id, a.kind, a.scan, a.source, a.target, a.bytes, a.reason FROM actions a
           LEFT JOIN approvals d ON d.action_id = a.id
           WHERE a.status = '{ActionStatus.PLANNED}' AND a.requires_approval = 1
             AND d.action_id IS NULL"""
    )
    return [tuple(r) for r in rows]


def decisions_with_actions(store: StateStore, decision: str) -> list[tuple[Any, ...]]:
    """(action id, kind, scan, source, target, bytes, reason, status, by, at) of every decision
    of this kind in the log's view; the action's columns are None once it left the plan."""
    rows = (
        store.connection()
        .execute(
            """SELECT d.action_id, a.kind, a.scan, a.source, a.target, a.bytes, a.reason, a.status,
                  d.decided_by, d.decided_at
           FROM approvals d LEFT JOIN actions a ON a.id = d.action_id
           WHERE d.decision = ?""",
            (decision,),
        )
        .fetchall()
    )
    return [tuple(r) for r in rows]


def last_scan_of_action(
    store: StateStore, action_id: str
) -> tuple[str, tuple[str, int] | None] | None:
    """The scan an action's newest event names, with that scan's (checksum, size) or None when
    the scan is gone; None when no event names a scan."""
    conn = store.connection()
    row = conn.execute(
        """SELECT scan FROM events WHERE action_id = ? AND scan IS NOT NULL
           ORDER BY seq DESC LIMIT 1""",
        (action_id,),
    ).fetchone()
    if row is None:
        return None
    found = conn.execute("SELECT checksum, size FROM scans WHERE id = ?", (row[0],)).fetchone()
    return row[0], None if found is None else (found[0], found[1])

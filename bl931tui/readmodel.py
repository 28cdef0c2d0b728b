"""What the TUI shows, read from the state store in one go and reduced to plain rows.

The TUI never asks the engine anything: it reads the tables the service writes (DESIGN §8). A
refresh runs here, in a thread worker, and returns immutable values the UI thread only swaps in,
so 100,000 scans never cost the event loop more than a list assignment. The SQL selects only the
columns a row needs (not the scans' JSON file lists), and repeated cells, words and state sets are
interned so the snapshot stays small.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from engine.alert_log import AlertLog, AlertRecord
from engine.model import AlertEffect
from engine.pass_findings import (
    BlockedRecord,
    CatalogStatus,
    read_blocked,
    read_catalog_status,
    read_registered,
)
from engine.policy import Policy
from engine.state import StateStore, iso, parse_time
from engine.task_progress import open_item_progress

OPEN_TASK_STATES = ("preparing", "active")
CATALOG = "catalog"


class Cell(NamedTuple):
    """One status cell: a glyph and a word (meaning never rests on colour alone) and a tone."""

    glyph: str
    word: str
    tone: str  # ok · busy · wait · bad · hold · gone · none

    @property
    def text(self) -> str:
        return f"{self.glyph} {self.word}"


VERIFIED = Cell("✓", "verified", "ok")
SIZE_ONLY = Cell("✓", "size", "ok")
PARTIAL = Cell("◐", "partial", "wait")
WAITING = Cell("…", "waiting", "wait")
FAILED = Cell("✗", "failed", "bad")
HOLD = Cell("⏸", "hold", "hold")
PRUNED = Cell("–", "pruned", "gone")
NONE = Cell("·", "none", "none")
PRUNING = Cell("⇄", "pruning", "busy")
REGISTERED = Cell("✓", "registered", "ok")
REGISTERING = Cell("⇄", "registering", "busy")
UPDATE = Cell("~", "update", "wait")
UNKNOWN = Cell("?", "unknown", "unknown")  # the catalog never answered (or was never asked)

# Which filter state each tone puts a scan in.
TONE_STATE = {
    "ok": "verified",
    "busy": "inflight",
    "wait": "waiting",
    "bad": "failed",
    "hold": "hold",
    "gone": "pruned",
}


class ScanRow(NamedTuple):
    """One scan as the scans table shows it; equal rows need no repaint.

    A named tuple rather than a dataclass: 100,000 of them are built per full refresh, and a
    tuple is built several times faster than a frozen dataclass.
    """

    scan: str
    label: str
    size: int
    acquired: float  # epoch seconds
    cells: tuple[Cell, ...]
    next_text: str
    next_tone: str
    states: frozenset[str]
    at: frozenset[str]
    rank: int  # 0 failed · 1 in flight · 2 awaiting approval · 3 waiting · 4 hold · 5 settled


@dataclass(frozen=True, slots=True)
class Heartbeat:
    beat_at: datetime | None
    pass_started_at: datetime | None
    pass_finished_at: datetime | None
    last_ok_pass_at: datetime | None
    host: str | None
    summary: dict[str, Any] | None
    pid: int | None = None
    stopped_at: datetime | None = None  # the owner exited cleanly (until a later pass starts)

    @property
    def stopped(self) -> bool:
        """The owner said it stopped, and no pass started since."""
        if self.stopped_at is None:
            return False
        return self.pass_started_at is None or self.pass_started_at <= self.stopped_at


@dataclass(frozen=True)
class Snapshot:
    """Everything the scans screen needs, taken at `taken_at` (by the injected clock)."""

    taken_at: datetime
    fingerprint: tuple[Any, ...]
    stages: tuple[str, ...]
    rows: tuple[ScanRow, ...]
    heartbeat: Heartbeat | None
    pulse: dict[str, dict[str, int]]
    awaiting_approval: int
    active_holds: int
    active_tasks: int
    endpoint_errors: dict[str, str] = field(default_factory=dict)
    scans_total: int = 0
    alerts: tuple[AlertRecord, ...] = ()  # standing, acknowledged ones included
    catalog: CatalogStatus | None = None  # how the catalog answered when a pass last asked

    @property
    def alerts_acknowledged(self) -> int:
        return sum(1 for alert in self.alerts if alert.acknowledged_at is not None)

    @property
    def total(self) -> int:
        return max(self.scans_total, len(self.rows))

    @property
    def partial(self) -> bool:
        """Only the newest scans were read (the first paint); the full read follows."""
        return len(self.rows) < self.scans_total


def connection(store: StateStore) -> sqlite3.Connection:
    """The store's connection for this thread (read-only when the store was opened so).

    The read model runs its own SELECTs rather than the store's loaders, which parse every scan's
    file list; only the columns a row shows are read.
    """
    return store.connection()


def fingerprint(conn: sqlite3.Connection) -> tuple[Any, ...]:
    """A cheap summary that changes whenever anything the TUI shows changes."""
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
    return _fingerprint(conn) + findings


def _fingerprint(conn: sqlite3.Connection) -> tuple[Any, ...]:
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
    return tuple(row)


# What blocks most comes first on the Alerts screen.
EFFECT_RANK = {
    AlertEffect.FREEZE_DELETES: 0,
    AlertEffect.UNKNOWN_ENDPOINT: 1,
    AlertEffect.NOTIFY: 2,
}


def standing_alerts(store: StateStore) -> tuple[AlertRecord, ...]:
    """The standing alerts, what blocks most first, then oldest first.

    Read through the store's `AlertLog`. A store the service has not migrated yet (the TUI opens
    it read-only and never migrates) has no alerts table, and so no alerts to show.
    """
    try:
        records = AlertLog(store).records(standing_only=True).values()
    except sqlite3.OperationalError:
        return ()
    return tuple(sorted(records, key=lambda r: (EFFECT_RANK[r.effect], r.since, r.id)))


def read_heartbeat(store: StateStore) -> Heartbeat | None:
    beat = store.heartbeat()
    if beat is None:
        return None
    return Heartbeat(
        beat_at=beat["beat_at"],
        pass_started_at=beat["pass_started_at"],
        pass_finished_at=beat["pass_finished_at"],
        last_ok_pass_at=beat["last_ok_pass_at"],
        host=beat["host"],
        summary=beat["summary"],
        pid=beat["pid"],
        stopped_at=beat["stopped_at"],
    )


def load_snapshot(
    store: StateStore,
    policy: Policy,
    now: datetime,
    *,
    catalog: bool = True,
    first: int | None = None,
) -> Snapshot:
    """Read the store once and derive one row per scan (runs in a thread worker).

    With `first`, only the newest `first` scans are read: the first paint shows them while the
    full read runs, and the snapshot says it is partial.
    """
    from bl931tui.rows import A_SCAN, RowBuilder

    conn = connection(store)
    stamp = fingerprint(conn)
    stages = tuple(policy.endpoints) + ((CATALOG,) if catalog else ())
    epoch = "(julianday(acquired_at) - 2440587.5) * 86400.0"
    if first is None:
        scans = conn.execute(f"SELECT id, size, {epoch} FROM scans").fetchall()
        only = ""
    else:
        scans = conn.execute(
            f"SELECT id, size, {epoch} AS t FROM scans ORDER BY t DESC LIMIT ?", (first,)
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
        for name in policy.endpoints
    }
    pruned: dict[str, set[str]] = {name: set() for name in policy.endpoints}
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
        conn.execute(
            "SELECT count(*) FROM tasks WHERE status IN ('preparing', 'active')"
        ).fetchone()[0]
    )
    open_actions: dict[str, list[tuple[Any, ...]]] = {}
    for row in conn.execute(
        f"""SELECT id, kind, scan, source, target, status, requires_approval, reason, error
            FROM actions WHERE status != 'succeeded'{only}"""
    ):
        open_actions.setdefault(row[A_SCAN], []).append(tuple(row))
    catalog_status = read_catalog_status(conn) if catalog else None
    registered = catalog_truth(conn, catalog_status, only) if catalog else None
    blocked: dict[str, list[BlockedRecord]] = {}
    for record in read_blocked(conn) or ():
        blocked.setdefault(record.scan, []).append(record)
    errors = {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT name, last_error FROM endpoints WHERE consecutive_failures > 0"
        )
    }
    if catalog_status is not None and not catalog_status.ok:
        errors[CATALOG] = catalog_status.error or "no answer"
    builder = RowBuilder(
        policy,
        now,
        levels=levels,
        pruned=pruned,
        decided=decided,
        holds=holds,
        progress=progress,
        registered=registered,
        blocked=blocked,
        catalog=catalog,
    )
    build, no_actions = builder.build, ()
    rows = tuple(
        build(scan_id, size, acquired, open_actions.get(scan_id, no_actions))
        for scan_id, size, acquired in scans
    )
    pulse: dict[str, dict[str, int]] = {stage: {} for stage in stages}
    for cells, count in Counter(row.cells for row in rows).items():
        for stage, cell in zip(stages, cells, strict=True):
            pulse[stage][cell.tone] = pulse[stage].get(cell.tone, 0) + count
    awaiting = sum(
        n for states, n in Counter(row.states for row in rows).items() if "approval" in states
    )
    return Snapshot(
        taken_at=now,
        fingerprint=stamp,
        stages=stages,
        rows=rows,
        heartbeat=read_heartbeat(store),
        pulse=pulse,
        awaiting_approval=awaiting,
        active_holds=len(holds),
        active_tasks=active_tasks,
        endpoint_errors=errors,
        scans_total=total,
        alerts=standing_alerts(store),
        catalog=catalog_status,
    )


def catalog_truth(
    conn: sqlite3.Connection, status: CatalogStatus | None, only: str = ""
) -> frozenset[str] | None:
    """The scans the catalog holds, as far as the store knows; None if it does not know.

    The catalog as a pass last read it, plus the registrations that succeeded since that read
    (a pass reads the catalog before it registers). Never inferred from the copies: a scan is
    registered only if the catalog said so or a registration of it succeeded.
    """
    if status is None or status.last_ok_at is None:
        return None
    held = read_registered(conn) or frozenset()
    since = conn.execute(
        f"""SELECT DISTINCT scan FROM actions WHERE status = 'succeeded'
            AND kind IN ('register', 'update_catalog') AND updated_at >= ?{only}""",
        (iso(status.last_ok_at),),
    )
    return held | {r[0] for r in since}

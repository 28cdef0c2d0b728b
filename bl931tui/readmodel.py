"""What the TUI shows, read from the state store in one go and reduced to plain rows.

The TUI never asks the engine anything: it reads the tables the service writes (DESIGN §8). A
refresh runs here, in a thread worker, and returns immutable values the UI thread only swaps in,
so 100,000 scans never cost the event loop more than a list assignment. The SQL selects only the
columns a row needs (not the scans' JSON file lists), and repeated cells, words and state sets are
interned so the snapshot stays small.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bl931tui.render import printable
from engine.model import Level
from engine.policy import Policy
from engine.state import StateStore, parse_time

OPEN_TASK_STATES = ("preparing", "active")
CATALOG = "catalog"


@dataclass(frozen=True, slots=True)
class Cell:
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

# Which filter state each tone puts a scan in.
TONE_STATE = {
    "ok": "verified",
    "busy": "inflight",
    "wait": "waiting",
    "bad": "failed",
    "hold": "hold",
    "gone": "pruned",
}


@dataclass(frozen=True, slots=True)
class ScanRow:
    """One scan as the scans table shows it; equal rows need no repaint."""

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

    @property
    def total(self) -> int:
        return len(self.rows)


def connection(store: StateStore) -> sqlite3.Connection:
    """The store's connection for this thread (read-only when the store was opened so).

    The read model runs its own SELECTs rather than the store's loaders, which parse every scan's
    file list; only the columns a row shows are read.
    """
    return store._conn()


def fingerprint(conn: sqlite3.Connection) -> tuple[Any, ...]:
    """A cheap summary that changes whenever anything the TUI shows changes."""
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
    )


class _Interner:
    """Shares equal tuples, sets and strings between rows (most scans look alike)."""

    def __init__(self) -> None:
        self._seen: dict[Any, Any] = {}

    def __call__(self, value: Any) -> Any:
        return self._seen.setdefault(value, value)


def load_snapshot(
    store: StateStore, policy: Policy, now: datetime, *, catalog: bool = True
) -> Snapshot:
    """Read the store once and derive one row per scan (runs in a thread worker)."""
    conn = connection(store)
    stamp = fingerprint(conn)
    stages = tuple(policy.endpoints) + ((CATALOG,) if catalog else ())
    scans = conn.execute("SELECT id, size, acquired_at FROM scans").fetchall()
    levels: dict[str, dict[str, int]] = {name: {} for name in policy.endpoints}
    for scan, endpoint, level in conn.execute("SELECT scan, endpoint, level FROM replicas"):
        if endpoint in levels:
            levels[endpoint][scan] = level
    pruned: dict[str, set[str]] = {name: set() for name in policy.endpoints}
    for scan, endpoint in conn.execute("SELECT scan, endpoint FROM deletions"):
        pruned.setdefault(endpoint, set()).add(scan)
    decided = {r[0]: r[1] for r in conn.execute("SELECT action_id, decision FROM approvals")}
    holds: dict[str, str] = {}
    for scan, reason, expires in conn.execute(
        "SELECT scan, reason, expires_at FROM holds WHERE lifted_at IS NULL"
    ):
        until = parse_time(expires)
        if until is None or until > now:
            holds[scan] = reason
    progress: dict[str, float] = {}
    for action_id, done, total in conn.execute(
        """SELECT ti.action_id, t.bytes_done, t.bytes_total FROM task_items ti
           JOIN tasks t ON t.submission_id = ti.submission_id
           WHERE t.status IN ('preparing', 'active')"""
    ):
        progress[action_id] = done / total if total else 0.0
    active_tasks = int(
        conn.execute(
            "SELECT count(*) FROM tasks WHERE status IN ('preparing', 'active')"
        ).fetchone()[0]
    )
    open_actions: dict[str, list[sqlite3.Row]] = {}
    for row in conn.execute(
        """SELECT id, kind, scan, source, target, status, requires_approval, reason, error,
                  retry_at FROM actions WHERE status != 'succeeded'"""
    ):
        open_actions.setdefault(row["scan"], []).append(row)
    registered = {
        r[0]
        for r in conn.execute(
            """SELECT DISTINCT scan FROM actions WHERE status = 'succeeded'
               AND kind IN ('register', 'update_catalog')"""
        )
    }
    errors = {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT name, last_error FROM endpoints WHERE consecutive_failures > 0"
        )
    }
    derive = _RowBuilder(policy, now, levels, pruned, decided, holds, progress, registered, catalog)
    rows = tuple(
        derive(scan_id, size, acquired, open_actions.get(scan_id, ()))
        for scan_id, size, acquired in scans
    )
    pulse: dict[str, dict[str, int]] = {stage: {} for stage in stages}
    awaiting = 0
    for row in rows:
        for stage, cell in zip(stages, row.cells, strict=True):
            counts = pulse[stage]
            counts[cell.tone] = counts.get(cell.tone, 0) + 1
        if "approval" in row.states:
            awaiting += 1
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
    )


class _RowBuilder:
    """Turns one scan's stored facts into a `ScanRow` (the hot loop at 100k scans)."""

    def __init__(
        self,
        policy: Policy,
        now: datetime,
        levels: dict[str, dict[str, int]],
        pruned: dict[str, set[str]],
        decided: dict[str, str],
        holds: dict[str, str],
        progress: dict[str, float],
        registered: set[str],
        catalog: bool,
    ) -> None:
        self.endpoints = tuple(policy.endpoints)
        self.keep = {
            name: timedelta(days=rule.keep_days) for name, rule in policy.retention.items()
        }
        self.registration = policy.registration_endpoint
        self.now = now
        self.now_ts = now.timestamp()
        self.levels = levels
        self.pruned = pruned
        self.decided = decided
        self.holds = holds
        self.progress = progress
        self.registered = registered
        self.catalog = catalog
        self.intern = _Interner()
        self._busy: dict[str, Cell] = {}

    def _copying(self, fraction: float | None) -> Cell:
        word = "copying" if fraction is None else f"{int(fraction * 100)}%"
        cell = self._busy.get(word)
        if cell is None:
            cell = self._busy[word] = Cell("⇄", word, "busy")
        return cell

    def __call__(
        self, scan: str, size: int, acquired_text: str, actions: Iterable[sqlite3.Row]
    ) -> ScanRow:
        acquired = datetime.fromisoformat(acquired_text)
        acquired_ts = acquired.timestamp()
        acts = list(actions)
        held = scan in self.holds
        cells: list[Cell] = []
        at: list[str] = []
        for endpoint in self.endpoints:
            cell = self._endpoint_cell(scan, endpoint, acquired_ts, acts, held)
            cells.append(cell)
            if cell.tone in ("ok", "hold"):
                at.append(endpoint)
        if self.catalog:
            cells.append(self._catalog_cell(scan, acts))
        states = {TONE_STATE[c.tone] for c in cells if c.tone in TONE_STATE}
        awaiting = any(
            a["requires_approval"] and a["status"] == "planned" and a["id"] not in self.decided
            for a in acts
        )
        if awaiting:
            states.add("approval")
        if held:
            states.add("hold")
        if not acts and "failed" not in states:
            states.add("ok")
        next_text, next_tone = self._next(scan, acquired_ts, acts, held)
        rank = (
            0
            if "failed" in states
            else 1
            if "inflight" in states
            else 2
            if awaiting
            else 3
            if acts or "waiting" in states
            else 4
            if held
            else 5
        )
        intern = self.intern
        return ScanRow(
            scan=scan,
            label=printable(scan),
            size=size,
            acquired=acquired_ts,
            cells=intern(tuple(cells)),
            next_text=intern(next_text),
            next_tone=next_tone,
            states=intern(frozenset(states)),
            at=intern(frozenset(at)),
            rank=rank,
        )

    def _due(self, endpoint: str, acquired_ts: float) -> float | None:
        keep = self.keep.get(endpoint)
        return None if keep is None else acquired_ts + keep.total_seconds()

    def _endpoint_cell(
        self, scan: str, endpoint: str, acquired_ts: float, acts: list[sqlite3.Row], held: bool
    ) -> Cell:
        copy = delete = None
        for a in acts:
            if a["target"] == endpoint:
                if a["kind"] == "copy":
                    copy = a
                elif a["kind"] == "delete":
                    delete = a
        if copy is not None and copy["status"] == "submitted":
            return self._copying(self.progress.get(copy["id"]))
        if delete is not None and delete["status"] == "submitted":
            return PRUNING
        if (copy is not None and copy["status"] == "failed") or (
            delete is not None and delete["status"] == "failed"
        ):
            return FAILED
        level = self.levels[endpoint].get(scan, 0)
        if level == Level.ABSENT:
            if scan in self.pruned.get(endpoint, ()):
                return PRUNED
            due = self._due(endpoint, acquired_ts)
            if copy is not None or due is None or due > self.now_ts:
                return WAITING
            return NONE
        if held:
            due = self._due(endpoint, acquired_ts)
            if due is not None and due <= self.now_ts:
                return HOLD
        if level >= Level.CHECKSUM:
            return VERIFIED
        if level == Level.SIZE:
            return SIZE_ONLY
        return PARTIAL

    def _catalog_cell(self, scan: str, acts: list[sqlite3.Row]) -> Cell:
        for a in acts:
            if a["kind"] in ("register", "update_catalog"):
                if a["status"] == "submitted":
                    return REGISTERING
                if a["status"] == "failed":
                    return FAILED
                return WAITING if a["kind"] == "register" else UPDATE
        if scan in self.registered:
            return REGISTERED
        if self.registration and self.levels.get(self.registration, {}).get(scan, 0):
            return REGISTERED  # a verified first copy with nothing planned: already registered
        return WAITING

    def _next(
        self, scan: str, acquired_ts: float, acts: list[sqlite3.Row], held: bool
    ) -> tuple[str, str]:
        if acts:
            chosen = min(acts, key=_action_priority(self.decided))
            route = _route(chosen["kind"], chosen["source"], chosen["target"])
            status = chosen["status"]
            if status == "failed":
                return f"✗ {route}: {chosen['error'] or 'failed'}", "bad"
            if status == "submitted":
                return f"⇄ {route}", "busy"
            if chosen["requires_approval"] and chosen["id"] not in self.decided:
                return f"◷ {route}: awaiting approval", "wait"
            if self.decided.get(chosen["id"]) == "reject":
                return f"✗ {route}: rejected", "none"
            return f"{route}: {chosen['reason']}", "wait"
        if held:
            return f"⏸ held: {self.holds[scan]}", "hold"
        upcoming = [
            (due, endpoint)
            for endpoint in self.keep
            if self.levels.get(endpoint, {}).get(scan, 0)
            and (due := self._due(endpoint, acquired_ts)) is not None
        ]
        if upcoming:
            due, endpoint = min(upcoming)
            return f"prune {endpoint} due {datetime.fromtimestamp(due, UTC).date()}", "none"
        return "in sync", "none"


def _action_priority(decided: dict[str, str]) -> Any:
    order = {"failed": 0, "submitted": 1, "planned": 2}

    def key(a: sqlite3.Row) -> tuple[int, int]:
        gated = a["requires_approval"] and a["id"] not in decided
        return order.get(a["status"], 3), 0 if gated else 1

    return key


def _route(kind: str, source: str | None, target: str | None) -> str:
    if kind == "copy":
        return f"copy {source}→{target}"
    if kind == "delete":
        return f"delete from {target}"
    if kind == "register":
        return "register"
    return "update catalog"

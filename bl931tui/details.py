"""Read queries behind the detail, approvals, tasks and events screens (run in thread workers)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bl931tui.readmodel import connection
from engine.model import Evidence, Hold, Level, Scan
from engine.policy import Policy
from engine.state import ActionRow, StateStore, parse_time


@dataclass(frozen=True, slots=True)
class ReplicaView:
    endpoint: str
    level: Level
    size: int
    files: int
    observed_at: datetime | None
    evidence: Evidence | None
    pruned_at: str | None


@dataclass(frozen=True, slots=True)
class RetentionEntry:
    """When one copy is due to be pruned, and what that waits on."""

    endpoint: str
    due_at: datetime | None  # None: kept forever
    requires: tuple[tuple[str, bool], ...]  # (endpoint, verified at the required level)
    verify: Level
    waits_on: str


@dataclass(frozen=True)
class ScanDetail:
    scan: Scan | None
    scan_id: str
    replicas: tuple[ReplicaView, ...]
    actions: tuple[ActionRow, ...]
    decisions: dict[str, tuple[str, str, datetime]]
    events: tuple[dict[str, Any], ...]
    hold: Hold | None
    calendar: tuple[RetentionEntry, ...]


def load_detail(store: StateStore, policy: Policy, scan_id: str, now: datetime) -> ScanDetail:
    conn = connection(store)
    scan = store.get_scan(scan_id)
    evidence: dict[str, Evidence] = {}
    for row in conn.execute("SELECT * FROM evidence WHERE scan = ?", (scan_id,)):
        evidence[row["endpoint"]] = Evidence(
            level=Level(row["level"]),
            algorithm=row["algorithm"],
            value=row["value"],
            task_id=row["task_id"],
            verified_at=datetime.fromisoformat(row["verified_at"]),
            signature=row["signature"],
            how=row["how"],
        )
    pruned = {
        row["endpoint"]: row["deleted_at"]
        for row in conn.execute(
            "SELECT endpoint, deleted_at FROM deletions WHERE scan = ?", (scan_id,)
        )
    }
    observed = {
        row["endpoint"]: row
        for row in conn.execute(
            "SELECT endpoint, level, size, files, observed_at FROM replicas WHERE scan = ?",
            (scan_id,),
        )
    }
    replicas = []
    levels: dict[str, Level] = {}
    for endpoint in policy.endpoints:
        row = observed.get(endpoint)
        level = Level(row["level"]) if row else Level.ABSENT
        levels[endpoint] = level
        replicas.append(
            ReplicaView(
                endpoint=endpoint,
                level=level,
                size=row["size"] if row else 0,
                files=row["files"] if row else 0,
                observed_at=parse_time(row["observed_at"]) if row else None,
                evidence=evidence.get(endpoint),
                pruned_at=pruned.get(endpoint),
            )
        )
    actions = tuple(store.actions_for_scan(scan_id))
    ids = {a.id for a in actions}
    decisions = {aid: d for aid, d in store.decisions().items() if aid in ids}
    hold = store.active_holds(now).get(scan_id)
    calendar = _calendar(policy, scan, levels, pruned, hold, actions, decisions, now)
    events = tuple(store.events(scan=scan_id, limit=200))
    return ScanDetail(scan, scan_id, tuple(replicas), actions, decisions, events, hold, calendar)


def _calendar(
    policy: Policy,
    scan: Scan | None,
    levels: dict[str, Level],
    pruned: dict[str, str],
    hold: Hold | None,
    actions: tuple[ActionRow, ...],
    decisions: dict[str, tuple[str, str, datetime]],
    now: datetime,
) -> tuple[RetentionEntry, ...]:
    entries = []
    for endpoint in policy.endpoints:
        rule = policy.retention.get(endpoint)
        due = policy.delete_due_at(scan, endpoint) if scan is not None else None
        requires = tuple(
            (name, levels.get(name, Level.ABSENT) >= (rule.verify if rule else Level.CHECKSUM))
            for name in (rule.delete_requires if rule else ())
        )
        verify = rule.verify if rule else Level.CHECKSUM
        if endpoint in pruned:
            waits = f"pruned {pruned[endpoint][:19]}"
        elif rule is None:
            waits = "kept forever (no retention rule)"
        elif levels.get(endpoint, Level.ABSENT) is Level.ABSENT:
            waits = "no copy here"
        elif due is not None and due > now:
            waits = f"retention: {_days(due - now)} left"
        elif missing := [name for name, ok in requires if not ok]:
            waits = f"a {verify.word}-verified copy at {', '.join(missing)}"
        elif hold is not None:
            waits = f"hold by {hold.placed_by}: {hold.reason}"
        else:
            delete = next(
                (a for a in actions if a.kind.value == "delete" and a.target == endpoint), None
            )
            if delete is None:
                waits = "due now; the next pass plans it"
            elif delete.status == "planned" and delete.requires_approval:
                decision = decisions.get(delete.id)
                waits = (
                    "operator approval"
                    if decision is None
                    else f"{decision[0]}d by {decision[1]}; the next pass acts"
                )
            else:
                waits = f"delete {delete.status}"
        entries.append(RetentionEntry(endpoint, due, requires, verify, waits))
    return tuple(entries)


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.0f} days" if days >= 1 else f"{delta.total_seconds() / 3600:.1f} hours"


@dataclass(frozen=True, slots=True)
class ApprovalItem:
    id: str
    kind: str
    scan: str
    source: str | None
    target: str | None
    bytes: int
    reason: str


@dataclass(frozen=True, slots=True)
class ApprovalGroup:
    kind: str
    target: str | None
    items: tuple[ApprovalItem, ...]

    @property
    def bytes(self) -> int:
        return sum(item.bytes for item in self.items)


def pending_approvals(store: StateStore) -> tuple[ApprovalGroup, ...]:
    """Planned gated actions no operator has decided on, grouped by kind and endpoint."""
    rows = connection(store).execute(
        """SELECT a.id, a.kind, a.scan, a.source, a.target, a.bytes, a.reason FROM actions a
           LEFT JOIN approvals d ON d.action_id = a.id
           WHERE a.status = 'planned' AND a.requires_approval = 1 AND d.action_id IS NULL
           ORDER BY a.kind, a.target, a.scan"""
    )
    groups: dict[tuple[str, str | None], list[ApprovalItem]] = {}
    for r in rows:
        item = ApprovalItem(r[0], r[1], r[2], r[3], r[4], r[5], r[6])
        groups.setdefault((item.kind, item.target), []).append(item)
    return tuple(
        ApprovalGroup(kind, target, tuple(items)) for (kind, target), items in groups.items()
    )


@dataclass(frozen=True, slots=True)
class TaskView:
    submission_id: str
    task_id: str | None
    kind: str
    source: str | None
    target: str
    label: str
    status: str
    bytes_total: int
    bytes_done: int
    files_total: int
    files_done: int
    rate: float
    error: str | None
    scans: int
    created_at: datetime | None

    @property
    def eta_seconds(self) -> float | None:
        if self.rate <= 0 or self.bytes_total <= self.bytes_done:
            return None
        return (self.bytes_total - self.bytes_done) / self.rate


def load_tasks(store: StateStore, *, finished: int = 30) -> tuple[TaskView, ...]:
    """Open tasks first, then the most recently finished ones."""
    conn = connection(store)
    rows = conn.execute(
        """SELECT t.*, (SELECT count(*) FROM task_items i
                        WHERE i.submission_id = t.submission_id) AS scans
           FROM tasks t WHERE t.status IN ('preparing', 'active')
           UNION ALL
           SELECT * FROM (SELECT t.*, (SELECT count(*) FROM task_items i
                        WHERE i.submission_id = t.submission_id) AS scans
           FROM tasks t WHERE t.status NOT IN ('preparing', 'active')
           ORDER BY t.updated_at DESC LIMIT ?)""",
        (finished,),
    ).fetchall()
    return tuple(
        TaskView(
            submission_id=r["submission_id"],
            task_id=r["task_id"],
            kind=r["kind"],
            source=r["source"],
            target=r["target"],
            label=r["label"],
            status=r["status"],
            bytes_total=r["bytes_total"],
            bytes_done=r["bytes_done"],
            files_total=r["files_total"],
            files_done=r["files_done"],
            rate=r["rate"],
            error=r["error"],
            scans=r["scans"],
            created_at=parse_time(r["created_at"]),
        )
        for r in rows
    )


def load_events(store: StateStore, text: str = "", *, limit: int = 2000) -> list[dict[str, Any]]:
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
    rows = connection(store).execute(
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

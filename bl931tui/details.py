"""Read queries behind the detail, approvals, tasks and events screens (run in thread workers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bl931tui.approval_items import ApprovalItem, decided
from engine.model import ActionKind, Evidence, Hold, Level, Scan
from engine.pass_findings import BlockedRecord
from engine.policy import Policy
from engine.state import OPEN_TASK_STATES, ActionRow, ActionStatus, StateStore, parse_time
from engine.store import views


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
    blocked: tuple[BlockedRecord, ...] = ()  # what the last pass held back, and why
    standing: tuple[ApprovalItem, ...] = ()  # rejections and unspent approvals (`u`)
    export_control: str = ""  # whether the scan is export-controlled, and by what (or "")


# A delete held back by another delete it must follow: it gets its own approval round after.
_FOLLOWS = frozenset({"still_needed", "required_by_other_delete", "required_copy_being_deleted"})


def load_detail(store: StateStore, policy: Policy, scan_id: str, now: datetime) -> ScanDetail:
    scan = store.get_scan(scan_id)
    evidence_rows, observed, pruned = views.scan_copies(store, scan_id)
    evidence: dict[str, Evidence] = {
        endpoint: Evidence(
            level=Level(row["level"]),
            algorithm=row["algorithm"],
            value=row["value"],
            task_id=row["task_id"],
            verified_at=datetime.fromisoformat(row["verified_at"]),
            signature=row["signature"],
            how=row["how"],
        )
        for endpoint, row in evidence_rows.items()
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
    blocked = views.blocked_of(store, scan_id)
    standing = (
        *decided(store, policy, "reject", scan_id),
        *decided(store, policy, "approve", scan_id),
    )
    calendar = _calendar(
        policy, scan, levels, pruned, hold, actions, decisions, now, blocked, standing
    )
    events = tuple(store.events(scan=scan_id, limit=200))
    return ScanDetail(
        scan,
        scan_id,
        tuple(replicas),
        actions,
        decisions,
        events,
        hold,
        calendar,
        blocked,
        tuple(standing),
        _export_control(store, scan_id, blocked),
    )


def _export_control(store: StateStore, scan_id: str, blocked: tuple[BlockedRecord, ...]) -> str:
    """The scan's export-control flag as the watcher's notify and the last pass left it."""
    from engine.export_control import CONTROLLED, UNKNOWN
    from engine.scan_hints import ScanHints

    flag = ScanHints(store).flags().get(scan_id)
    ruled = next((b for b in blocked if b.reason_code == CONTROLLED), None)
    if flag:
        return "export-controlled (notify): never copied off-site"
    if ruled is not None:
        why = ruled.reason.partition("(")[2].partition(")")[0]
        return f"export-controlled ({why}): never copied off-site"
    if any(b.reason_code == UNKNOWN for b in blocked):
        return "export control not known yet: off-site copies wait for a notify or a rule"
    if flag is False:
        return "not export-controlled (notify)"
    return ""


def _calendar(
    policy: Policy,
    scan: Scan | None,
    levels: dict[str, Level],
    pruned: dict[str, str],
    hold: Hold | None,
    actions: tuple[ActionRow, ...],
    decisions: dict[str, tuple[str, str, datetime]],
    now: datetime,
    blocked: tuple[BlockedRecord, ...] = (),
    standing: tuple[ApprovalItem, ...] = (),
) -> tuple[RetentionEntry, ...]:
    """Per endpoint: when its copy is due, and what its prune waits on, in the planner's own
    words where the last pass recorded them (who rejected it; which prune it must follow, and
    that its own approval round comes after)."""
    gated = ActionKind.DELETE in policy.approval_for
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
        elif held_back := _held_back(endpoint, actions, decisions, blocked, standing, gated):
            waits = held_back
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
            elif delete.status == ActionStatus.PLANNED and delete.requires_approval:
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


def _held_back(
    endpoint: str,
    actions: tuple[ActionRow, ...],
    decisions: dict[str, tuple[str, str, datetime]],
    blocked: tuple[BlockedRecord, ...],
    standing: tuple[ApprovalItem, ...],
    gated: bool,
) -> str | None:
    """What holds a due prune back, from the decisions and the last pass's blocked entries."""
    delete = next((a for a in actions if a.kind.value == "delete" and a.target == endpoint), None)
    if delete is not None and delete.status != ActionStatus.PLANNED:
        return None  # in flight or done: said by the general case
    rejection = next(
        (
            i
            for i in standing
            if i.state == "rejected" and i.kind == "delete" and i.target == endpoint
        ),
        None,
    )
    if rejection is not None and rejection.decided_at is not None:
        return (
            f"rejected by {rejection.decided_by} {rejection.decided_at:%Y-%m-%d %H:%M}; "
            "u takes it back"
        )
    if delete is not None:
        return None
    record = next((b for b in blocked if b.kind == "delete" and b.endpoint == endpoint), None)
    if record is None:
        return None
    text = f"{record.reason_code}: {record.reason}"
    if record.reason_code in _FOLLOWS and gated:
        text += " · then its own approval (a second round)"
    return text


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.0f} days" if days >= 1 else f"{delta.total_seconds() / 3600:.1f} hours"


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
    updated_at: datetime | None = None
    first_scan: str | None = None

    def elapsed(self, now: datetime) -> timedelta | None:
        """How long it has run (to now), or ran (to its last update once finished)."""
        if self.created_at is None:
            return None
        end = now if self.status in OPEN_TASK_STATES else self.updated_at or now
        return max(timedelta(0), end - self.created_at)

    @property
    def eta_seconds(self) -> float | None:
        if self.rate <= 0 or self.bytes_total <= self.bytes_done:
            return None
        return (self.bytes_total - self.bytes_done) / self.rate


def load_tasks(store: StateStore, *, finished: int = 30) -> tuple[TaskView, ...]:
    """Open tasks first, then the most recently finished ones."""
    rows = views.task_rows(store, finished=finished)
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
            updated_at=parse_time(r["updated_at"]),
            first_scan=r["first_scan"],
        )
        for r in rows
    )


def load_events(store: StateStore, text: str = "", *, limit: int = 2000) -> list[dict[str, Any]]:
    """The newest audit events matching `text` (words: `level:error`, `kind:delete`, substrings)."""
    return views.search_events(store, text, limit=limit)

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bl931tui.cells import (
    FAILED,
    HOLD,
    NONE,
    PARTIAL,
    PRUNED,
    PRUNING,
    REGISTERED,
    REGISTERING,
    SIZE_ONLY,
    TONE_STATE,
    UNKNOWN,
    UPDATE,
    VERIFIED,
    WAITING,
    Cell,
    ScanRow,
)
from bl931tui.rows import RowBuilder
from engine.alert_log import AlertLog, AlertRecord
from engine.model import AlertEffect
from engine.pass_findings import (
    CatalogStatus,
)
from engine.policy import Policy
from engine.state import StateStore
from engine.store import changes, views
from engine.store.views import ScanTableFacts

CATALOG = "catalog"

__all__ = [
    "CATALOG",
    "EFFECT_RANK",
    "FAILED",
    "HOLD",
    "NONE",
    "PARTIAL",
    "PRUNED",
    "PRUNING",
    "REGISTERED",
    "REGISTERING",
    "SIZE_ONLY",
    "TONE_STATE",
    "UNKNOWN",
    "UPDATE",
    "VERIFIED",
    "WAITING",
    "Cell",
    "Heartbeat",
    "ScanRow",
    "Snapshot",
    "assemble",
    "fingerprint",
    "load_snapshot",
    "read_heartbeat",
    "standing_alerts",
]


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


def fingerprint(store: StateStore) -> tuple[Any, ...]:
    """A cheap summary that changes whenever anything the TUI shows changes."""
    return views.fingerprint(store)


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


def row_builder(policy: Policy, now: datetime, facts: ScanTableFacts, catalog: bool) -> RowBuilder:
    """A row builder over one read of the store (all scans, or only some)."""
    return RowBuilder(
        policy,
        now,
        levels=facts.levels,
        pruned=facts.pruned,
        decided=facts.decided,
        holds=facts.holds,
        progress=facts.progress,
        registered=facts.registered,
        blocked=facts.blocked,
        catalog=catalog,
    )


def stages_of(policy: Policy, catalog: bool) -> tuple[str, ...]:
    return tuple(policy.endpoints) + ((CATALOG,) if catalog else ())


def assemble(
    store: StateStore,
    *,
    taken_at: datetime,
    stamp: tuple[Any, ...],
    stages: tuple[str, ...],
    rows: tuple[ScanRow, ...],
    cell_counts: Counter[tuple[Cell, ...]],
    awaiting: int,
    active_holds: int,
    active_tasks: int,
    endpoint_errors: dict[str, str],
    catalog_status: CatalogStatus | None,
    total: int,
) -> Snapshot:
    """The snapshot of these rows, with the store-wide figures read alongside them."""
    errors = dict(endpoint_errors)
    if catalog_status is not None and not catalog_status.ok:
        errors[CATALOG] = catalog_status.error or "no answer"
    pulse: dict[str, dict[str, int]] = {stage: {} for stage in stages}
    for cells, count in cell_counts.items():
        if count:
            for stage, cell in zip(stages, cells, strict=True):
                pulse[stage][cell.tone] = pulse[stage].get(cell.tone, 0) + count
    return Snapshot(
        taken_at=taken_at,
        fingerprint=stamp,
        stages=stages,
        rows=rows,
        heartbeat=read_heartbeat(store),
        pulse=pulse,
        awaiting_approval=awaiting,
        active_holds=active_holds,
        active_tasks=active_tasks,
        endpoint_errors=errors,
        scans_total=total,
        alerts=standing_alerts(store),
        catalog=catalog_status,
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
    full read runs, and the snapshot says it is partial. `bl931tui.incremental.RowCache` keeps
    a full snapshot up to date by rebuilding only the rows that changed; it must always equal
    what this gives.
    """
    with changes.one_read(store):
        stamp = fingerprint(store)
        facts = views.scan_table(store, tuple(policy.endpoints), now, catalog=catalog, first=first)
        build, no_actions = row_builder(policy, now, facts, catalog).build, ()
        rows = tuple(
            build(scan_id, size, acquired, facts.open_actions.get(scan_id, no_actions))
            for scan_id, size, acquired, _ in facts.scans
        )
        return assemble(
            store,
            taken_at=now,
            stamp=stamp,
            stages=stages_of(policy, catalog),
            rows=rows,
            cell_counts=Counter(row.cells for row in rows),
            awaiting=awaiting_count(rows),
            active_holds=len(facts.holds),
            active_tasks=facts.active_tasks,
            endpoint_errors=facts.endpoint_errors,
            catalog_status=facts.catalog_status,
            total=facts.total,
        )


def awaiting_count(rows: Iterable[ScanRow]) -> int:
    """How many rows wait for an operator's approval."""
    return sum(
        n for states, n in Counter(row.states for row in rows).items() if "approval" in states
    )

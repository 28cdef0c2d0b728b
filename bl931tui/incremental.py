"""The scan table kept up to date by rebuilding only the rows that changed.

A full read (`readmodel.load_snapshot`) derives 100,000 rows from 100,000 scans' facts; a
service pass usually changes a handful of them, and a quiet pass none (it writes only the
heartbeat and the endpoints' health times). `RowCache` keeps the last snapshot's rows and, on a
refresh, rebuilds exactly the rows that may differ:

- scans whose change mark moved (`engine.store.changes`: triggers mark every write to what a
  row is derived from, so this is exact, not a guess from timestamps that some writes leave
  alone: a blocked entry's `since` stays put when its reason changes, a catalog entry's
  `seen_at` when it is dropped);
- scans whose hold came, went, changed or expired (the active holds are read whole: few);
- scans with a registration that succeeded between the catalog's previous and current readings
  (a registration counts as "registered" only if it succeeded after the last reading);
- scans a retention date of which fell between the previous refresh and this one (a row says
  "waiting" or "none", "due" or "due since", and shows a hold only once its date has passed).

It reads everything again, as on the first paint, whenever it cannot be sure: no snapshot yet,
a store without change marks, another store or schema (epoch, migration), marks that went
backwards, the clock that went backwards, another policy, the catalog's reading that appeared
or vanished, or an operator's forced refresh. The result always equals a full read; the tests
(tests/tui/test_incremental.py) compare the two after random changes.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right, insort
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bl931tui.cells import Cell, ScanRow
from bl931tui.readmodel import (
    Snapshot,
    assemble,
    fingerprint,
    load_snapshot,
    row_builder,
    stages_of,
)
from engine.policy import Policy
from engine.state import StateStore
from engine.store import changes

_RESORT = 256  # beyond this many moved dates, sort them all again rather than one by one
_EDGE = 1e-3  # seconds of slack around a date boundary: rebuilding one row too many is harmless


@dataclass
class _Base:
    """What the last snapshot was derived from."""

    store: StateStore
    mark: changes.ChangeMark
    policy_key: tuple[Any, ...]
    now_ts: float
    rows: dict[str, ScanRow]  # in rowid order, like a full read
    rowids: dict[str, int]
    holds: dict[str, str]
    last_ok_at: datetime | None
    catalog_known: bool
    cell_counts: Counter[tuple[Cell, ...]]
    awaiting: int
    dated: list[tuple[float, str]] = field(default_factory=list)  # (acquired, scan), sorted
    snapshot: Snapshot | None = None


class RowCache:
    """The app's rows between refreshes. A cancelled thread worker runs on to its end, so two
    refreshes may overlap: they take turns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._base: _Base | None = None
        self.rebuilt = 0  # rows rebuilt by the last refresh
        self.full_reads = 0

    def forget(self) -> None:
        """Read everything on the next refresh."""
        with self._lock:
            self._base = None

    def snapshot(
        self, store: StateStore, policy: Policy, now: datetime, *, catalog: bool = True
    ) -> Snapshot:
        """The scan table at `now`, rebuilding only what changed since the last call."""
        with self._lock, changes.one_read(store):
            mark = changes.change_mark(store)
            base = self._base
            if (
                base is None
                or mark is None
                or base.store is not store
                or mark.epoch != base.mark.epoch
                or mark.schema != base.mark.schema
                or mark.seq < base.mark.seq
                or base.policy_key != _policy_key(policy, catalog)
                or now.timestamp() < base.now_ts
            ):
                return self._full(store, policy, now, catalog, mark)
            update = self._update(base, store, policy, now, catalog, mark)
            return update if update is not None else self._full(store, policy, now, catalog, mark)

    def _full(
        self,
        store: StateStore,
        policy: Policy,
        now: datetime,
        catalog: bool,
        mark: changes.ChangeMark | None,
    ) -> Snapshot:
        snapshot = load_snapshot(store, policy, now, catalog=catalog)
        self.rebuilt = len(snapshot.rows)
        self.full_reads += 1
        if mark is None:
            self._base = None
            return snapshot
        rowids = changes.scan_rowids(store)
        status = snapshot.catalog
        self._base = _Base(
            store=store,
            mark=mark,
            policy_key=_policy_key(policy, catalog),
            now_ts=now.timestamp(),
            rows={row.scan: row for row in snapshot.rows},
            rowids=rowids,
            holds=changes.active_holds(store, now),
            last_ok_at=None if status is None else status.last_ok_at,
            catalog_known=status is not None and status.last_ok_at is not None,
            cell_counts=Counter(row.cells for row in snapshot.rows),
            awaiting=snapshot.awaiting_approval,
            dated=sorted((row.acquired, row.scan) for row in snapshot.rows),
            snapshot=snapshot,
        )
        return snapshot

    def _update(
        self,
        base: _Base,
        store: StateStore,
        policy: Policy,
        now: datetime,
        catalog: bool,
        mark: changes.ChangeMark,
    ) -> Snapshot | None:
        now_ts = now.timestamp()
        totals = changes.table_totals(store, catalog=catalog)
        status = totals.catalog_status
        last_ok_at = None if status is None else status.last_ok_at
        if catalog and (last_ok_at is not None) != base.catalog_known:
            return None  # every catalog cell changes: read everything
        stale = changes.changed_since(store, base.mark.seq) if mark.seq > base.mark.seq else set()
        holds = changes.active_holds(store, now)
        stale.update(
            s for s in holds.keys() | base.holds.keys() if holds.get(s) != base.holds.get(s)
        )
        if catalog and last_ok_at is not None and base.last_ok_at != last_ok_at:
            assert base.last_ok_at is not None
            stale |= changes.registered_between(store, base.last_ok_at, last_ok_at)
        stale |= self._dates_passed(base, policy, now_ts)
        if stale:
            self._rebuild(base, store, policy, now, catalog, stale, holds, totals)
        rows = base.rows
        self.rebuilt = len(stale)
        base.mark, base.now_ts, base.holds, base.last_ok_at = mark, now_ts, holds, last_ok_at
        previous = base.snapshot
        same_rows = previous is not None and not stale
        snapshot = assemble(
            store,
            taken_at=now,
            stamp=fingerprint(store),
            stages=stages_of(policy, catalog),
            rows=previous.rows if same_rows and previous is not None else tuple(rows.values()),
            cell_counts=base.cell_counts,
            awaiting=base.awaiting,
            active_holds=len(holds),
            active_tasks=totals.active_tasks,
            endpoint_errors=totals.endpoint_errors,
            catalog_status=status,
            total=len(rows),
        )
        base.snapshot = snapshot
        return snapshot

    def dates_pass(self, policy: Policy, now: datetime) -> bool:
        """Whether a retention date fell since the last refresh (a row's words then change
        though the store did not), or the cache cannot tell."""
        base = self._base
        if base is None:
            return True
        now_ts = now.timestamp()
        return now_ts < base.now_ts or bool(self._dates_passed(base, policy, now_ts))

    def _dates_passed(self, base: _Base, policy: Policy, now_ts: float) -> set[str]:
        """Scans one of whose retention dates fell in (last refresh, now]."""
        if now_ts == base.now_ts:
            return set()
        passed: set[str] = set()
        dated = base.dated
        for rule in policy.retention.values():
            keep = rule.keep_days * 86400.0
            low = bisect_right(dated, (base.now_ts - keep - _EDGE, "\U0010ffff"))
            high = bisect_right(dated, (now_ts - keep + _EDGE, "\U0010ffff"))
            passed.update(scan for _, scan in dated[low:high])
        return passed

    def _rebuild(
        self,
        base: _Base,
        store: StateStore,
        policy: Policy,
        now: datetime,
        catalog: bool,
        stale: set[str],
        holds: dict[str, str],
        totals: changes.TableTotals,
    ) -> None:
        facts = changes.scan_facts(
            store, tuple(policy.endpoints), stale, holds=holds, totals=totals, catalog=catalog
        )
        build, no_actions = row_builder(policy, now, facts, catalog).build, ()
        rows, rowids, counts = base.rows, base.rowids, base.cell_counts
        moved: list[tuple[float | None, float | None, str]] = []
        in_order = True
        last_rowid = max(rowids.values(), default=0)
        fresh: dict[str, ScanRow] = {}
        for scan, size, acquired, rowid in facts.scans:
            fresh[scan] = build(scan, size, acquired, facts.open_actions.get(scan, no_actions))
            known = rowids.get(scan)
            if known is None:
                in_order = in_order and rowid > last_rowid
                last_rowid = max(last_rowid, rowid)
            elif known != rowid:
                in_order = False
            rowids[scan] = rowid
        for scan in stale:
            old = rows.get(scan)
            new = fresh.get(scan)
            if old is not None:
                counts[old.cells] -= 1
                if not counts[old.cells]:
                    del counts[old.cells]
                base.awaiting -= "approval" in old.states
            if new is not None:
                counts[new.cells] += 1
                base.awaiting += "approval" in new.states
            if old is None or new is None or old.acquired != new.acquired:
                moved.append(
                    (
                        None if old is None else old.acquired,
                        None if new is None else new.acquired,
                        scan,
                    )
                )
            if new is None:
                rows.pop(scan, None)
                rowids.pop(scan, None)
            elif old is not None:
                rows[scan] = new
        # New scans go in rowid order, as a full read lists them.
        for scan, row in fresh.items():
            if scan not in rows:
                rows[scan] = row
        if not in_order:
            base.rows = dict(sorted(rows.items(), key=lambda item: rowids[item[0]]))
        _move_dates(base, moved)


def _move_dates(base: _Base, moved: list[tuple[float | None, float | None, str]]) -> None:
    if len(moved) > _RESORT:
        base.dated = sorted((row.acquired, row.scan) for row in base.rows.values())
        return
    dated = base.dated
    for old, new, scan in moved:
        if old is not None:
            at = bisect_left(dated, (old, scan))
            if at < len(dated) and dated[at] == (old, scan):
                del dated[at]
        if new is not None:
            insort(dated, (new, scan))


def _policy_key(policy: Policy, catalog: bool) -> tuple[Any, ...]:
    keep = tuple(sorted((name, rule.keep_days) for name, rule in policy.retention.items()))
    return stages_of(policy, catalog), keep, policy.registration_endpoint, catalog

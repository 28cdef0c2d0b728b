"""One scan's stored facts → its `ScanRow`: the hot loop of a refresh at 100,000 scans.

Most scans are settled (nothing open, no hold), and settled scans with the same replica levels,
registration and retention day look identical, so their cells, states and next-action text are
computed once per distinct signature and shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bl931tui.readmodel import (
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
    UPDATE,
    VERIFIED,
    WAITING,
    Cell,
    ScanRow,
)
from bl931tui.render import printable
from engine.model import Level
from engine.policy import Policy

# Columns of an open action as `load_snapshot` selects them.
A_ID, A_KIND, A_SCAN, A_SOURCE, A_TARGET, A_STATUS, A_GATED, A_REASON, A_ERROR = range(9)
ActionTuple = tuple[Any, ...]
_STATUS_ORDER = {"failed": 0, "submitted": 1, "planned": 2}


def label_of(scan: str) -> str:
    """The scan path as shown; `printable` only when something needs escaping."""
    return scan if scan.isprintable() else printable(scan)


def route(kind: str, source: str | None, target: str | None) -> str:
    if kind == "copy":
        return f"copy {source}→{target}"
    if kind == "delete":
        return f"delete from {target}"
    if kind == "register":
        return "register"
    return "update catalog"


class RowBuilder:
    """Derives rows against one moment (`now`) and one read of the store."""

    def __init__(
        self,
        policy: Policy,
        now: datetime,
        *,
        levels: dict[str, dict[str, int]],
        pruned: dict[str, set[str]],
        decided: dict[str, str],
        holds: dict[str, str],
        progress: dict[str, float],
        registered: set[str],
        catalog: bool,
    ) -> None:
        self.endpoints = tuple(policy.endpoints)
        self.keep_seconds = {
            name: rule.keep_days * 86400.0 for name, rule in policy.retention.items()
        }
        self.registration = policy.registration_endpoint
        self.now_ts = now.timestamp()
        self.levels = levels
        self.pruned = pruned
        self.decided = decided
        self.holds = holds
        self.progress = progress
        self.registered = registered
        self.catalog = catalog
        self._settled: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._interned: dict[Any, Any] = {}
        self._busy: dict[str, Cell] = {}
        self._level_maps = [levels[e] for e in self.endpoints]
        self._pruned_sets = [pruned.get(e, set()) for e in self.endpoints]
        self._any_pruned = any(self._pruned_sets)
        self._kept = [
            (index, self.keep_seconds[e])
            for index, e in enumerate(self.endpoints)
            if e in self.keep_seconds
        ]

    def _intern(self, value: Any) -> Any:
        return self._interned.setdefault(value, value)

    def build(
        self, scan: str, size: int, acquired: float, actions: Sequence[ActionTuple]
    ) -> ScanRow:
        held = scan in self.holds
        if not actions and not held:
            return self._settled_row(scan, size, acquired)
        cells = [self._endpoint_cell(scan, e, acquired, actions, held) for e in self.endpoints]
        at = [e for e, c in zip(self.endpoints, cells, strict=True) if c.tone in ("ok", "hold")]
        if self.catalog:
            cells.append(self._catalog_cell(scan, actions))
        states = {TONE_STATE[c.tone] for c in cells if c.tone in TONE_STATE}
        decided = self.decided
        awaiting = any(
            a[A_GATED] and a[A_STATUS] == "planned" and a[A_ID] not in decided for a in actions
        )
        if awaiting:
            states.add("approval")
        if held:
            states.add("hold")
        if not actions and "failed" not in states:
            states.add("ok")
        next_text, next_tone = self._next(scan, acquired, actions, held)
        rank = (
            0
            if "failed" in states
            else 1
            if "inflight" in states
            else 2
            if awaiting
            else 3
            if actions or "waiting" in states
            else 4
        )
        intern = self._intern
        return ScanRow(
            scan,
            label_of(scan),
            size,
            acquired,
            intern(tuple(cells)),
            intern(next_text),
            next_tone,
            intern(frozenset(states)),
            intern(frozenset(at)),
            rank,
        )

    def _settled_row(self, scan: str, size: int, acquired: float) -> ScanRow:
        levels = tuple(self.levels[e].get(scan, 0) for e in self.endpoints)
        gone = tuple(scan in self.pruned.get(e, ()) for e in self.endpoints)
        registered = scan in self.registered
        dues = tuple(
            int((acquired + keep) // 86400) if levels[self.endpoints.index(e)] else None
            for e, keep in self.keep_seconds.items()
            if e in self.endpoints
        )
        signature = (
            levels,
            gone,
            registered,
            dues,
            tuple(d is not None and d * 86400 <= self.now_ts for d in dues),
        )
        shared = self._settled.get(signature)
        if shared is None:
            shared = self._settled[signature] = self._settled_parts(scan, acquired)
        cells, next_text, states, at, rank = shared
        return ScanRow(
            scan, label_of(scan), size, acquired, cells, next_text, "none", states, at, rank
        )

    def _settled_parts(self, scan: str, acquired: float) -> tuple[Any, ...]:
        cells = [self._endpoint_cell(scan, e, acquired, (), False) for e in self.endpoints]
        at = frozenset(e for e, c in zip(self.endpoints, cells, strict=True) if c.tone == "ok")
        if self.catalog:
            cells.append(self._catalog_cell(scan, ()))
        states = {TONE_STATE[c.tone] for c in cells if c.tone in TONE_STATE}
        if "failed" not in states:
            states.add("ok")
        next_text, _ = self._next(scan, acquired, (), False)
        rank = 3 if "waiting" in states else 5
        return tuple(cells), next_text, frozenset(states), at, rank

    def _due(self, endpoint: str, acquired: float) -> float | None:
        keep = self.keep_seconds.get(endpoint)
        return None if keep is None else acquired + keep

    def _copying(self, fraction: float | None) -> Cell:
        word = "copying" if fraction is None else f"{int(fraction * 100)}%"
        cell = self._busy.get(word)
        if cell is None:
            cell = self._busy[word] = Cell("⇄", word, "busy")
        return cell

    def _endpoint_cell(
        self,
        scan: str,
        endpoint: str,
        acquired: float,
        actions: Sequence[ActionTuple],
        held: bool,
    ) -> Cell:
        copy = delete = None
        for a in actions:
            if a[A_TARGET] == endpoint:
                if a[A_KIND] == "copy":
                    copy = a
                elif a[A_KIND] == "delete":
                    delete = a
        if copy is not None and copy[A_STATUS] == "submitted":
            return self._copying(self.progress.get(copy[A_ID]))
        if delete is not None and delete[A_STATUS] == "submitted":
            return PRUNING
        if (copy is not None and copy[A_STATUS] == "failed") or (
            delete is not None and delete[A_STATUS] == "failed"
        ):
            return FAILED
        level = self.levels[endpoint].get(scan, 0)
        if level == Level.ABSENT:
            if scan in self.pruned.get(endpoint, ()):
                return PRUNED
            due = self._due(endpoint, acquired)
            if copy is not None or due is None or due > self.now_ts:
                return WAITING
            return NONE
        if held:
            due = self._due(endpoint, acquired)
            if due is not None and due <= self.now_ts:
                return HOLD
        if level >= Level.CHECKSUM:
            return VERIFIED
        if level == Level.SIZE:
            return SIZE_ONLY
        return PARTIAL

    def _catalog_cell(self, scan: str, actions: Sequence[ActionTuple]) -> Cell:
        for a in actions:
            if a[A_KIND] in ("register", "update_catalog"):
                if a[A_STATUS] == "submitted":
                    return REGISTERING
                if a[A_STATUS] == "failed":
                    return FAILED
                return WAITING if a[A_KIND] == "register" else UPDATE
        if scan in self.registered:
            return REGISTERED
        if self.registration and self.levels.get(self.registration, {}).get(scan, 0):
            return REGISTERED  # a verified first copy with nothing planned: already registered
        return WAITING

    def _priority(self, a: ActionTuple) -> tuple[int, int]:
        gated = a[A_GATED] and a[A_ID] not in self.decided
        return _STATUS_ORDER.get(a[A_STATUS], 3), 0 if gated else 1

    def _next(
        self, scan: str, acquired: float, actions: Sequence[ActionTuple], held: bool
    ) -> tuple[str, str]:
        if actions:
            chosen = min(actions, key=self._priority)
            where = route(chosen[A_KIND], chosen[A_SOURCE], chosen[A_TARGET])
            status = chosen[A_STATUS]
            if status == "failed":
                return f"✗ {where}: {chosen[A_ERROR] or 'failed'}", "bad"
            if status == "submitted":
                return f"⇄ {where}", "busy"
            decision = self.decided.get(chosen[A_ID])
            if chosen[A_GATED] and decision is None:
                return f"◷ {where}: awaiting approval", "wait"
            if decision == "reject":
                return f"✗ {where}: rejected", "none"
            return f"{where}: {chosen[A_REASON]}", "wait"
        if held:
            return f"⏸ held: {self.holds[scan]}", "hold"
        upcoming = [
            (due, endpoint)
            for endpoint in self.keep_seconds
            if self.levels.get(endpoint, {}).get(scan, 0)
            and (due := self._due(endpoint, acquired)) is not None
        ]
        if upcoming:
            due, endpoint = min(upcoming)
            return f"prune {endpoint} due {datetime.fromtimestamp(due, UTC).date()}", "none"
        return "in sync", "none"

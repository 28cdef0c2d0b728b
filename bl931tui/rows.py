"""One scan's stored facts → its `ScanRow`: the hot loop of a refresh at 100,000 scans.

Most scans are settled (nothing open, no hold), and settled scans with the same replica levels,
registration and retention day look identical, so their cells, states and next-action text are
computed once per distinct signature and shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
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
from bl931tui.render import printable
from engine.model import NEEDS_PERSON_CODES, Level
from engine.pass_findings import BlockedRecord
from engine.policy import Policy
from engine.state import ActionStatus
from engine.task_progress import ScanProgress

# Columns of an open action as `load_snapshot` selects them.
A_ID, A_KIND, A_SCAN, A_SOURCE, A_TARGET, A_STATUS, A_GATED, A_REASON, A_ERROR = range(9)
ActionTuple = tuple[Any, ...]
_STATUS_ORDER = {ActionStatus.FAILED: 0, ActionStatus.SUBMITTED: 1, ActionStatus.PLANNED: 2}


def label_of(scan: str) -> str:
    """The scan path as shown; `printable` only when something needs escaping."""
    return scan if scan.isprintable() else printable(scan)


def route(kind: str, source: str | None, target: str | None) -> str:
    if kind == "copy":
        return f"copy {source}→{target}" if source else f"copy to {target}"
    if kind == "delete":
        return f"delete from {target}"
    if kind == "register":
        return "register"
    return "update catalog"


# Codes whose blocked entry already shows as a failed action (its row keeps `failed`).
_SHOWN_AS_FAILED = frozenset({"failed", "needs_attention"})
_KIND_ORDER = {"delete": 0, "copy": 1, "register": 2, "update_catalog": 3}


def blocked_states(records: Sequence[BlockedRecord]) -> set[str]:
    """Filter states of a scan's blocked entries: `blocked` for any, `rejected` for an
    operator's rejection, `attention` for a reason only a person clears."""
    states = set()
    for record in records:
        if record.reason_code == "on_hold":
            continue
        states.add("blocked")
        if record.reason_code == "rejected":
            states.add("rejected")
        elif record.reason_code in NEEDS_PERSON_CODES:
            states.add("attention")
    return states


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
        progress: dict[str, ScanProgress],
        registered: frozenset[str] | None,  # None: the catalog's answer is not known
        blocked: dict[str, list[BlockedRecord]],
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
        self.blocked = blocked
        self.position = {name: index for index, name in enumerate(self.endpoints)}
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
        blocked = self.blocked.get(scan, ())
        if not actions and not held and not blocked:
            return self._settled_row(scan, size, acquired)
        cells = [
            self._endpoint_cell(scan, e, size, acquired, actions, held) for e in self.endpoints
        ]
        at = [e for e, c in zip(self.endpoints, cells, strict=True) if c.tone in ("ok", "hold")]
        if self.catalog:
            cells.append(self._catalog_cell(scan, actions))
        states = {TONE_STATE[c.tone] for c in cells if c.tone in TONE_STATE}
        decided = self.decided
        awaiting = any(
            a[A_GATED] and a[A_STATUS] == ActionStatus.PLANNED and a[A_ID] not in decided
            for a in actions
        )
        if awaiting:
            states.add("approval")
        if held:
            states.add("hold")
        states |= blocked_states(blocked)
        if any(decided.get(a[A_ID]) == "reject" for a in actions):
            states |= {"blocked", "rejected"}
        if not actions and not {"failed", "attention"} & states:
            states.add("ok")
        next_text, next_tone = self._next(scan, acquired, actions, held, blocked)
        rank = (
            0
            if "failed" in states or "attention" in states
            else 1
            if "inflight" in states
            else 2
            if awaiting
            else 3
            if actions or "waiting" in states or "blocked" in states
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
        registered = None if self.registered is None else scan in self.registered
        # Everything the shared parts read: the retention day of each copy present (the next
        # action's date) and, exactly, whether each retention date has passed (the date itself
        # may fall later today for one scan and earlier for another).
        kept = [(index, acquired + keep) for index, keep in self._kept]
        dues = tuple(int(due // 86400) if levels[index] else None for index, due in kept)
        passed = tuple(due <= self.now_ts for _, due in kept)
        signature = (levels, gone, registered, dues, passed)
        shared = self._settled.get(signature)
        if shared is None:
            shared = self._settled[signature] = self._settled_parts(scan, acquired)
        cells, next_text, states, at, rank = shared
        return ScanRow(
            scan, label_of(scan), size, acquired, cells, next_text, "none", states, at, rank
        )

    def _settled_parts(self, scan: str, acquired: float) -> tuple[Any, ...]:
        cells = [self._endpoint_cell(scan, e, 0, acquired, (), False) for e in self.endpoints]
        at = frozenset(e for e, c in zip(self.endpoints, cells, strict=True) if c.tone == "ok")
        if self.catalog:
            cells.append(self._catalog_cell(scan, ()))
        states = {TONE_STATE[c.tone] for c in cells if c.tone in TONE_STATE}
        if "failed" not in states:
            states.add("ok")
        next_text, _ = self._next(scan, acquired, (), False, ())
        rank = 3 if "waiting" in states else 5
        return tuple(cells), next_text, frozenset(states), at, rank

    def _due(self, endpoint: str, acquired: float) -> float | None:
        keep = self.keep_seconds.get(endpoint)
        return None if keep is None else acquired + keep

    def _copying(self, action_id: str, size: int) -> Cell:
        """This scan's own share of its task, from the mover's per-file records (not the
        batch's percentage); "copying" when the mover does not report per scan."""
        share = self.progress.get(action_id)
        if share is None or share.bytes_done is None:
            word = "copying"
        elif size:
            word = f"{min(100, share.bytes_done * 100 // size)}%"
        else:
            word = "100%" if share.files_done else "0%"
        cell = self._busy.get(word)
        if cell is None:
            cell = self._busy[word] = Cell("⇄", word, "busy")
        return cell

    def _endpoint_cell(
        self,
        scan: str,
        endpoint: str,
        size: int,
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
        if copy is not None and copy[A_STATUS] == ActionStatus.SUBMITTED:
            return self._copying(copy[A_ID], size)
        if delete is not None and delete[A_STATUS] == ActionStatus.SUBMITTED:
            return PRUNING
        if (copy is not None and copy[A_STATUS] == ActionStatus.FAILED) or (
            delete is not None and delete[A_STATUS] == ActionStatus.FAILED
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
                if a[A_STATUS] == ActionStatus.SUBMITTED:
                    return REGISTERING
                if a[A_STATUS] == ActionStatus.FAILED:
                    return FAILED
                return WAITING if a[A_KIND] == "register" else UPDATE
        if self.registered is None:
            return UNKNOWN
        return REGISTERED if scan in self.registered else WAITING

    def _priority(self, a: ActionTuple) -> tuple[int, int]:
        gated = a[A_GATED] and a[A_ID] not in self.decided
        return _STATUS_ORDER.get(a[A_STATUS], 3), 0 if gated else 1

    def _blocked_order(self, record: BlockedRecord) -> tuple[int, int]:
        return _KIND_ORDER.get(record.kind, 9), self.position.get(record.endpoint or "", 0)

    def _next(
        self,
        scan: str,
        acquired: float,
        actions: Sequence[ActionTuple],
        held: bool,
        blocked: Sequence[BlockedRecord],
    ) -> tuple[str, str]:
        """What comes next for the scan, or what holds it back and why: a failure, then a
        reason only a person clears, work in flight, an approval awaited, a rejection, planned
        work, anything else blocked, a hold, and only then the retention dates."""
        chosen = min(actions, key=self._priority) if actions else None
        if chosen is not None and chosen[A_STATUS] == ActionStatus.FAILED:
            where = route(chosen[A_KIND], chosen[A_SOURCE], chosen[A_TARGET])
            return f"✗ {where}: {chosen[A_ERROR] or 'failed'}", "bad"
        ordered = sorted(
            (b for b in blocked if b.reason_code not in _SHOWN_AS_FAILED),
            key=self._blocked_order,
        )
        for record in ordered:
            if record.reason_code in NEEDS_PERSON_CODES:
                where = route(record.kind, None, record.endpoint)
                return f"⊘ {where}: {record.reason_code}: {record.reason}", "bad"
        if chosen is not None:
            where = route(chosen[A_KIND], chosen[A_SOURCE], chosen[A_TARGET])
            status = chosen[A_STATUS]
            if status == ActionStatus.SUBMITTED:
                return f"⇄ {where}", "busy"
            decision = self.decided.get(chosen[A_ID])
            if chosen[A_GATED] and decision is None:
                return f"◷ {where}: awaiting approval", "wait"
            if decision == "reject":
                return f"⊘ {where}: rejected", "hold"
        for record in ordered:
            if record.reason_code == "rejected":
                return f"⊘ {route(record.kind, None, record.endpoint)}: rejected", "hold"
        if chosen is not None:
            where = route(chosen[A_KIND], chosen[A_SOURCE], chosen[A_TARGET])
            return f"{where}: {chosen[A_REASON]}", "wait"
        for record in ordered:
            if record.reason_code != "on_hold":
                where = route(record.kind, None, record.endpoint)
                return f"⊘ {where}: {record.reason_code}", "wait"
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
            day = datetime.fromtimestamp(due, UTC).date()
            if due <= self.now_ts:  # nothing planned or held back yet: the next pass plans it
                return f"prune {endpoint} due since {day}", "none"
            return f"prune {endpoint} due {day}", "none"
        return "in sync", "none"

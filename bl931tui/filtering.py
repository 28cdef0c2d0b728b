"""The `/` filter and the sort keys of the scans table: pure functions over `ScanRow`s.

Grammar (words separated by spaces, all must match; a leading `!` negates a word):
- `state:failed|inflight|waiting|approval|hold|pruned|verified|ok|blocked|rejected|attention`
  (`blocked`: something the last pass wanted is held back; `rejected`: by an operator;
  `attention`: for a reason only a person clears)
- `at:ENDPOINT` — a verified (or held) copy is at ENDPOINT
- `awaiting:approval` — a gated action waits for an operator
- anything else — a case-insensitive substring of the scan path
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bl931tui.readmodel import ScanRow

STATES = (
    "failed",
    "inflight",
    "waiting",
    "approval",
    "hold",
    "pruned",
    "verified",
    "ok",
    "blocked",
    "rejected",
    "attention",
)
STATE_ALIASES = {"flight": "inflight", "in-flight": "inflight", "held": "hold", "error": "failed"}
FAULT_STATES = frozenset({"failed", "approval", "hold", "rejected", "attention"})
SORT_KEYS = ("age", "name", "size", "status")

Predicate = Callable[[ScanRow], bool]


class FilterError(ValueError):
    """A filter word that cannot be understood (shown to the operator as is)."""


@dataclass(frozen=True, slots=True)
class ViewQuery:
    """What the operator asked to see: filter text, faults only, and an order."""

    text: str = ""
    faults_only: bool = False
    sort: str = "age"
    reverse: bool = False


def _word_predicate(word: str) -> Predicate:
    negate = word.startswith("!")
    if negate:
        word = word[1:]
    field, sep, value = word.partition(":")
    value = value.lower()
    test: Predicate
    if sep and field == "state":
        state = STATE_ALIASES.get(value, value)
        if state not in STATES:
            raise FilterError(f"unknown state {value!r}; one of {', '.join(STATES)}")

        def test(row: ScanRow) -> bool:
            return state in row.states

    elif sep and field == "at":

        def test(row: ScanRow) -> bool:
            return value in row.at

    elif sep and field == "awaiting":
        if value != "approval":
            raise FilterError("awaiting: takes 'approval'")

        def test(row: ScanRow) -> bool:
            return "approval" in row.states

    else:
        needle = word.lower()

        def test(row: ScanRow) -> bool:
            return needle in row.label.lower()

    if negate:
        return lambda row: not test(row)
    return test


def parse_filter(text: str) -> list[Predicate]:
    """Compile the filter text; raises `FilterError` on a word it cannot understand."""
    return [_word_predicate(word) for word in text.split()]


def is_fault(row: ScanRow) -> bool:
    """What the faults-only toggle keeps: failures, holds, rejections, anything awaiting an
    approval, and whatever is held back for a reason only a person clears."""
    return not FAULT_STATES.isdisjoint(row.states)


def _sort_key(name: str) -> Callable[[ScanRow], Any]:
    if name == "name":
        return lambda row: row.label
    if name == "size":
        return lambda row: -row.size
    if name == "status":
        return lambda row: (row.rank, -row.acquired)
    return lambda row: -row.acquired  # age: newest first


def apply_view(rows: Sequence[ScanRow], query: ViewQuery) -> list[ScanRow]:
    """The rows to show, in order (runs in a worker: it is O(n log n) at 100k scans)."""
    predicates = parse_filter(query.text)
    if query.faults_only:
        predicates.append(is_fault)
    shown = [row for row in rows if all(p(row) for p in predicates)]
    shown.sort(key=_sort_key(query.sort), reverse=query.reverse)
    return shown

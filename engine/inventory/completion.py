"""When is a scan finished being written? A small, pure state machine.

The watcher feeds it what the filesystem said (`event`) and what a stat of the scan showed
(`record`), each with an explicit `now` (seconds on a monotonic clock); it answers which scans
need a stat now (`due`) and which are complete. No threads, no I/O, no clock of its own, so every
rule is unit-tested with plain numbers.

Completion rules, strongest signal first:

1. **End marker** (directory scans): the producer wrote its done-marker file. Complete on the
   first stat after it appeared.
2. **Rename into place** (file scans): the file arrived by an atomic rename, so it is whole.
   Complete on the first stat. **Close after write** (file scans): a writer closed the file; it
   is complete once two stats `check_seconds` apart agree and nothing happened in between. A
   writer that reopens within `check_seconds` is caught; one that reopens later makes a new
   version once, after which that file's closes are distrusted and it completes by quiescence.
3. **Quiescence**: no event for `quiet_seconds` *and* the scan's stat signature (paths, sizes,
   mtimes) unchanged on two consecutive checks `check_seconds` apart. The only rule that works on
   polled and network filesystems, and the only one for a directory scan without a marker: one
   file closing says nothing about whether the next frame is coming.

Any later event reopens a complete scan: it goes back to pending, and the walk then gives it a
new checksum and version. Scans the walk found but no event announced are `discover`ed; the
caller counts those as missed by events.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Signal(enum.Enum):
    """What an event says about a scan."""

    ACTIVITY = "activity"  # created, written, touched, a file in it deleted: still changing
    CLOSED = "closed"  # a writer closed a file after writing to it
    MOVED_IN = "moved_in"  # a file was renamed into place (an atomic, whole arrival)
    MARKER = "marker"  # the producer's end marker appeared in the scan
    GONE = "gone"  # the scan itself was deleted or renamed away


class Rule(enum.Enum):
    """Why a scan was declared complete (kept for logs and counters)."""

    MARKER = "marker"
    MOVED_IN = "rename"
    CLOSED = "close"
    QUIET = "quiet"


@dataclass
class _Pending:
    last_event: float
    rule: Rule = Rule.QUIET
    signature: str | None = None  # at the previous check
    checked_at: float | None = None
    retry_at: float = 0.0
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Completion:
    """A scan declared complete: its stat signature then, when, and by which rule."""

    scan: str
    signature: str
    at: float
    rule: Rule


@dataclass
class TrackerCounters:
    events: int = 0
    completed: int = 0
    reopened: int = 0
    discovered: int = 0
    stat_failures: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)


class CompletionTracker:
    """Decides which scans are complete from events and stat signatures.

    Args:
        quiet_seconds: how long a scan must see no event before quiescence can complete it.
        check_seconds: the spacing of the two stats that must agree (also the retry step).
        directory_scans: True when a scan is a folder (close and rename then only count as
            activity: one file arriving does not finish a folder).
        keep_completed_seconds: how long a completion stays in `completed()`; after that the
            walk's own mtime rule says the same, and memory stays bounded.
        max_retry_seconds: the longest wait before re-trying a scan whose stat failed.
    """

    def __init__(
        self,
        *,
        quiet_seconds: float,
        check_seconds: float,
        directory_scans: bool,
        keep_completed_seconds: float = 3600.0,
        max_retry_seconds: float = 60.0,
    ) -> None:
        if check_seconds <= 0:
            raise ValueError("check_seconds must be positive")
        self.quiet_seconds = max(0.0, quiet_seconds)
        self.check_seconds = check_seconds
        self.directory_scans = directory_scans
        self.keep_completed_seconds = keep_completed_seconds
        self.max_retry_seconds = max_retry_seconds
        self.counters = TrackerCounters()
        self._pending: dict[str, _Pending] = {}
        self._completed: dict[str, Completion] = {}
        self._known: set[str] = set()
        # File scans written again after a close: their writer reopens files, so a close says
        # nothing for them any more and they complete by quiescence.
        self._reopening: set[str] = set()

    # ---- input -------------------------------------------------------------------------
    def event(self, scan: str, signal: Signal, now: float) -> None:
        """Note one filesystem event for `scan` at `now`."""
        self.counters.events += 1
        if signal is Signal.GONE:
            self._forget(scan)
            return
        self._known.add(scan)
        done = self._completed.pop(scan, None)
        if done is not None:
            self.counters.reopened += 1
            if done.rule is Rule.CLOSED:
                self._reopening.add(scan)
        state = self._pending.get(scan)
        if state is None:
            state = self._pending[scan] = _Pending(last_event=now)
        elif state.rule is Rule.CLOSED and signal is not Signal.CLOSED:
            self._reopening.add(scan)
        state.last_event = max(state.last_event, now)
        state.signature = None  # an event breaks the chain of agreeing stats
        state.checked_at = None
        state.rule = self._rule_after(scan, state.rule, signal)

    def discover(
        self, scan: str, now: float, age_seconds: float, *, baseline: bool = False
    ) -> bool:
        """A walk listed `scan`; returns True if no event had announced it (missed by events).

        Args:
            scan: the scan id.
            now: the current time.
            age_seconds: how long ago the scan's newest file was modified (its mtime age).
            baseline: the start-up walk: existing scans are known, not missed, and only recent
                ones are tracked (no flood of completions for an old tree).
        """
        if scan in self._known:
            return False
        self._known.add(scan)
        age = max(0.0, age_seconds)
        if baseline and age >= self.quiet_seconds:
            return False
        self._pending[scan] = _Pending(last_event=now - age)
        if not baseline:
            self.counters.discovered += 1
        return not baseline

    def record(self, scan: str, signature: str | None, now: float) -> Completion | None:
        """Feed one stat of a pending scan; returns its completion if this stat completes it.

        Args:
            scan: the scan id.
            signature: the scan's stat signature, or None if the scan is not there (any more).
            now: when the stat was taken.
        """
        state = self._pending.get(scan)
        if state is None:
            return None
        if signature is None:
            self._forget(scan)
            return None
        state.failures = 0
        state.retry_at = 0.0
        ready = now >= self._eligible_at(state)
        single = state.rule in (Rule.MARKER, Rule.MOVED_IN)
        agreed = (
            state.signature == signature
            and state.checked_at is not None
            and now - state.checked_at >= self.check_seconds * 0.5
        )
        if ready and (single or agreed):
            return self._complete(scan, signature, now, state.rule)
        state.signature = signature
        state.checked_at = now
        return None

    def failed(self, scan: str, now: float) -> float:
        """A stat of `scan` failed (e.g. permission denied); returns when it will be retried."""
        state = self._pending.get(scan)
        if state is None:
            return now
        self.counters.stat_failures += 1
        state.failures += 1
        state.signature = None
        state.checked_at = None
        delay = min(self.check_seconds * 2**state.failures, self.max_retry_seconds)
        state.retry_at = now + delay
        return state.retry_at

    def retain(self, listed: set[str]) -> None:
        """After a full walk: forget known scans the walk no longer lists (deleted unseen)."""
        self._known &= listed
        self._reopening &= listed
        for scan in [s for s in self._completed if s not in listed]:
            del self._completed[scan]

    # ---- answers -----------------------------------------------------------------------
    def due(self, now: float) -> list[str]:
        """Pending scans that need a stat now."""
        return [scan for scan, state in self._pending.items() if self._next_check(state) <= now]

    def next_due(self) -> float | None:
        """The earliest time some pending scan needs a stat (None: nothing pending)."""
        if not self._pending:
            return None
        return min(self._next_check(state) for state in self._pending.values())

    def expire(self, now: float) -> None:
        """Drop completions older than `keep_completed_seconds` (the scan stays known)."""
        horizon = now - self.keep_completed_seconds
        for scan in [s for s, c in self._completed.items() if c.at < horizon]:
            del self._completed[scan]

    def completed(self) -> dict[str, Completion]:
        return dict(self._completed)

    def pending(self) -> frozenset[str]:
        return frozenset(self._pending)

    def known(self, scan: str) -> bool:
        return scan in self._known

    # ---- rules -------------------------------------------------------------------------
    def _rule_after(self, scan: str, current: Rule, signal: Signal) -> Rule:
        if signal is Signal.MARKER or current is Rule.MARKER:
            return Rule.MARKER  # a marker stays decisive until the scan completes
        if self.directory_scans:
            return Rule.QUIET
        if signal is Signal.MOVED_IN:
            return Rule.MOVED_IN
        if signal is Signal.CLOSED and scan not in self._reopening:
            return Rule.CLOSED
        return Rule.QUIET

    def _eligible_at(self, state: _Pending) -> float:
        if state.rule in (Rule.MARKER, Rule.MOVED_IN):
            return state.last_event
        if state.rule is Rule.CLOSED:
            return state.last_event + self.check_seconds
        return state.last_event + self.quiet_seconds

    def _next_check(self, state: _Pending) -> float:
        eligible = self._eligible_at(state)
        if state.rule in (Rule.MARKER, Rule.MOVED_IN):
            when = eligible
        elif state.checked_at is None:
            # The first of the two stats, timed so the second lands when the scan is eligible.
            when = max(state.last_event, eligible - self.check_seconds)
        else:
            when = max(state.checked_at + self.check_seconds, eligible)
        return max(when, state.retry_at)

    def _complete(self, scan: str, signature: str, now: float, rule: Rule) -> Completion:
        del self._pending[scan]
        completion = Completion(scan, signature, now, rule)
        self._completed[scan] = completion
        self.counters.completed += 1
        self.counters.by_rule[rule.value] = self.counters.by_rule.get(rule.value, 0) + 1
        return completion

    def _forget(self, scan: str) -> None:
        self._pending.pop(scan, None)
        self._completed.pop(scan, None)
        self._known.discard(scan)
        self._reopening.discard(scan)

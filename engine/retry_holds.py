"""Waits a remote service asked for (`Retry-After` on a 429/503), kept in the state store.

Globus answers a throttled call with 429 (or 503) and a `Retry-After` in seconds. globus-sdk
sleeps at most a few seconds between its own retries, then gives up; bl931 then sends nothing
more for that key (a collection's listings, or Transfer's task calls) until the wait is over,
and goes on with other work meanwhile. A hold lives in the `retry_holds` table, so a new
process (each `--reconcile --once` pass, a restart) honours a wait asked of an earlier one.

The reconciler hands the store's book to the backends at start (`keep_holds_in`); a read-only
store (an audit) is read but never written, so its holds are kept in memory only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from engine.state import StateStore, iso, parse_time

if TYPE_CHECKING:
    from engine.backends import Backends

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Hold:
    """No call for `key` before `until` (asked at `since`; `what` was the call refused)."""

    key: str
    since: datetime
    until: datetime
    what: str


class HoldBook(Protocol):
    """Where holds outlive a process."""

    def load(self) -> list[Hold]: ...

    def put(self, hold: Hold) -> None: ...

    def drop(self, key: str) -> None: ...


class StoreHoldBook:
    """The `retry_holds` table of one state store."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def load(self) -> list[Hold]:
        if not self.store.has_table("retry_holds"):
            return []  # a read-only store at an older schema
        rows = self.store.connection().execute("SELECT * FROM retry_holds ORDER BY key")
        holds = []
        for row in rows:
            since, until = parse_time(row["since"]), parse_time(row["until"])
            if since is not None and until is not None:
                holds.append(Hold(row["key"], since, until, row["what"]))
        return holds

    def put(self, hold: Hold) -> None:
        if self.store.readonly:
            return
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO retry_holds(key, since, until, what) VALUES (?,?,?,?)",
                (hold.key, iso(hold.since), iso(hold.until), hold.what),
            )

    def drop(self, key: str) -> None:
        if self.store.readonly:
            return
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM retry_holds WHERE key = ?", (key,))


def keep_holds_in(backends: Backends, store: StateStore) -> None:
    """Give every mover the store's book (the reconciler does at start); one that honours
    `Retry-After` keeps its waits there. A Globus mover hands it to the session its endpoints'
    listings share."""
    book = StoreHoldBook(store)
    for mover in backends.movers.values():
        mover.keep_holds_in(book)

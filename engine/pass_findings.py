"""What a pass found that its planned actions do not say: why scans are held back, and the
catalog as it was read.

The plan's `blocked` entries and the catalog's answer live only as long as a pass; the TUI, which
reads the state store and never plans, would otherwise guess them (a scan never registered shown
as registered, a rejected or blocked prune shown as merely "due"). Each service pass records them
here, writing only what changed, so a steady pass over 100,000 scans writes nothing:

- `blocked`: every blocked entry except `retention_not_reached` (a date the TUI computes itself),
  with `since`, when the scan was first held back for that reason;
- `catalog_entries`: the scans the catalog holds and the locations it records for each, as last
  read (kept while the catalog cannot be read: the last answer, with `catalog_status` saying so);
- `catalog_status`: when the catalog was last asked, whether it answered, and the error.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from engine.model import Blocked, CatalogView, Plan
from engine.state import StateStore, iso, parse_time

DATED = "retention_not_reached"  # the one reason a reader derives from the policy itself

BlockedKey = tuple[str, str, str, str]  # scan, kind, endpoint ('' for the catalog), code


@dataclass(frozen=True, slots=True)
class BlockedRecord:
    """One thing a pass wanted to do for a scan and did not, and why."""

    scan: str
    kind: str  # copy · delete · register · update_catalog
    endpoint: str | None
    reason_code: str
    reason: str
    since: datetime


@dataclass(frozen=True, slots=True)
class CatalogStatus:
    """Whether the catalog answered when it was last asked."""

    read_at: datetime
    ok: bool
    error: str | None
    last_ok_at: datetime | None


class PassFindings:
    """Records each pass's findings; the writer is the store's one owner (the service).

    What was last written is kept in memory, so a pass compares against it instead of reading
    the tables back.
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._blocked: dict[BlockedKey, str] | None = None
        # The locations last written per scan (None: nothing written by this process yet); a
        # scan whose set is equal is not re-encoded (a steady pass encodes nothing; issue 15).
        self._catalog_sets: Mapping[str, frozenset[str]] | None = None

    def record(self, plan: Plan, catalog: CatalogView, now: datetime) -> None:
        """Keep this pass's blocked entries and the catalog's answer (if there is a catalog)."""
        self._record_blocked(plan.blocked, now)
        if catalog.enabled:
            self._record_catalog(catalog, now)

    def _record_blocked(self, blocked: Iterable[Blocked], now: datetime) -> None:
        current: dict[BlockedKey, str] = {
            (b.scan, b.kind.value, b.endpoint or "", b.reason_code): b.reason
            for b in blocked
            if b.reason_code != DATED
        }
        before = self._blocked
        if before is None:
            before = {
                (r[0], r[1], r[2], r[3]): r[4]
                for r in self.store.connection().execute(
                    "SELECT scan, kind, endpoint, reason_code, reason FROM blocked"
                )
            }
        gone = [key for key in before if key not in current]
        changed = [(*key, reason) for key, reason in current.items() if before.get(key) != reason]
        if gone or changed:
            with self.store.transaction() as conn:
                conn.executemany(
                    """DELETE FROM blocked
                       WHERE scan = ? AND kind = ? AND endpoint = ? AND reason_code = ?""",
                    gone,
                )
                conn.executemany(
                    """INSERT INTO blocked VALUES (?,?,?,?,?,?)
                       ON CONFLICT(scan, kind, endpoint, reason_code)
                       DO UPDATE SET reason = excluded.reason""",
                    [(*row, iso(now)) for row in changed],
                )
        self._blocked = current

    def _record_catalog(self, catalog: CatalogView, now: datetime) -> None:
        stamp = iso(now)
        if not catalog.ok:
            with self.store.transaction() as conn:
                conn.execute(
                    """INSERT INTO catalog_status(id, read_at, ok, error) VALUES (1, ?, 0, ?)
                       ON CONFLICT(id) DO UPDATE SET read_at = excluded.read_at, ok = 0,
                         error = excluded.error""",
                    (stamp, catalog.error or "no answer"),
                )
            return
        # One text per distinct set of locations (most scans share one): not 100k copies.
        encoded: dict[frozenset[str], str] = {}

        def encode(locations: frozenset[str]) -> str:
            text = encoded.get(locations)
            if text is None:
                text = encoded[locations] = json.dumps(sorted(locations))
            return text

        now_at = catalog.locations
        sets = self._catalog_sets
        if sets is None:  # the first write: compare with the texts stored
            before = dict(
                self.store.connection().execute("SELECT scan, locations FROM catalog_entries")
            )
            changed = [
                (scan, text, stamp)
                for scan, locations in now_at.items()
                if before.get(scan) != (text := encode(locations))
            ]
            gone = [(scan,) for scan in before if scan not in now_at]
        else:  # later: a set equal to the one written has the text written (a steady pass
            # encodes nothing and keeps no texts)
            changed = [
                (scan, encode(locations), stamp)
                for scan, locations in now_at.items()
                if sets.get(scan) != locations
            ]
            gone = [(scan,) for scan in sets if scan not in now_at]
        with self.store.transaction() as conn:
            conn.executemany("DELETE FROM catalog_entries WHERE scan = ?", gone)
            conn.executemany(
                """INSERT INTO catalog_entries VALUES (?,?,?)
                   ON CONFLICT(scan) DO UPDATE SET locations = excluded.locations,
                     seen_at = excluded.seen_at""",
                changed,
            )
            _catalog_ok(conn, stamp)
        # The view's own dict when it is one (a catalog answers each pass with a new dict and
        # nothing changes it after: one dict over every scan, not two; issue 15).
        self._catalog_sets = now_at if isinstance(now_at, dict) else dict(now_at)

    def record_added(self, blocked: Iterable[Blocked], now: datetime) -> None:
        """A delta pass: the new scans' blocked entries, added to those recorded (which stand
        unchanged for every other scan, `engine.incremental.delta`)."""
        if self._blocked is None:
            raise RuntimeError("a delta pass follows a recorded pass")  # never: a bug
        added = {
            (b.scan, b.kind.value, b.endpoint or "", b.reason_code): b.reason
            for b in blocked
            if b.reason_code != DATED
        }
        changed = [
            (*key, reason) for key, reason in added.items() if self._blocked.get(key) != reason
        ]
        if changed:
            with self.store.transaction() as conn:
                conn.executemany(
                    """INSERT INTO blocked VALUES (?,?,?,?,?,?)
                       ON CONFLICT(scan, kind, endpoint, reason_code)
                       DO UPDATE SET reason = excluded.reason""",
                    [(*row, iso(now)) for row in changed],
                )
        self._blocked.update(added)

    def catalog_unchanged(self, now: datetime) -> None:
        """A quiet pass found the catalog as last read (`engine.incremental.quiet`)."""
        with self.store.transaction() as conn:
            _catalog_ok(conn, iso(now))


def _catalog_ok(conn: sqlite3.Connection, stamp: str | None) -> None:
    conn.execute(
        """INSERT INTO catalog_status(id, read_at, ok, error, last_ok_at)
           VALUES (1, ?, 1, NULL, ?)
           ON CONFLICT(id) DO UPDATE SET read_at = excluded.read_at, ok = 1, error = NULL,
             last_ok_at = excluded.last_ok_at""",
        (stamp, stamp),
    )


# ---- reading (the TUI) ---------------------------------------------------------------------
# A store the service has not migrated yet has none of these tables: its readers get None
# ("not known"), never an empty answer that would read as "nothing blocked", "not registered".


def read_blocked(conn: sqlite3.Connection, scan: str | None = None) -> list[BlockedRecord] | None:
    """The recorded blocked entries (of one scan, or all), oldest reason first."""
    where, params = ("WHERE scan = ?", (scan,)) if scan is not None else ("", ())
    try:
        rows = conn.execute(
            f"""SELECT scan, kind, endpoint, reason_code, reason, since FROM blocked {where}
                ORDER BY since, scan, kind, endpoint, reason_code""",
            params,
        ).fetchall()
    except sqlite3.OperationalError:
        return None
    return [
        BlockedRecord(r[0], r[1], r[2] or None, r[3], r[4], datetime.fromisoformat(r[5]))
        for r in rows
    ]


def read_catalog_status(conn: sqlite3.Connection) -> CatalogStatus | None:
    """How the catalog answered when last asked; None if no pass has asked it yet."""
    try:
        row = conn.execute(
            "SELECT read_at, ok, error, last_ok_at FROM catalog_status WHERE id = 1"
        ).fetchone()
    except sqlite3.OperationalError:
        return None
    if row is None:
        return None
    return CatalogStatus(
        read_at=datetime.fromisoformat(row[0]),
        ok=bool(row[1]),
        error=row[2],
        last_ok_at=parse_time(row[3]),
    )


def read_registered(conn: sqlite3.Connection) -> frozenset[str] | None:
    """The scans the catalog held when it last answered; None if that is not known."""
    try:
        return frozenset(r[0] for r in conn.execute("SELECT scan FROM catalog_entries"))
    except sqlite3.OperationalError:
        return None


def read_catalog_locations(conn: sqlite3.Connection, scan: str) -> frozenset[str] | None:
    """The endpoints the catalog records for one scan; None if it does not hold the scan (or
    that is not known)."""
    try:
        row = conn.execute(
            "SELECT locations FROM catalog_entries WHERE scan = ?", (scan,)
        ).fetchone()
    except sqlite3.OperationalError:
        return None
    return None if row is None else frozenset(json.loads(row[0]))

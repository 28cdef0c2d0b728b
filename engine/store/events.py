"""The audit log (events) and the receipts of removals (deletions).

Receipts are append-only, one per removal; recording one also drops the replica and evidence
rows of what was removed (the absence is then expected, not missing).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from engine.store.connection import StoreBase, iso

if TYPE_CHECKING:
    from engine.store import StateStore

# (at, level, kind, scan, action_id, message, data): one audit-log row as `add_events` takes it.
EventRow = tuple[datetime, str, str, str | None, str | None, str, dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class ForeignFiles:
    """Files a prune found beside a scan's verified files at one endpoint and left in place.

    They were never copied anywhere by the engine, so they are not a replica of the scan (it
    counts as pruned there) and are reported to a person once.
    """

    scan: str
    endpoint: str
    paths: tuple[str, ...]  # relative to the endpoint root; a folder ends with "/"
    action_id: str  # the delete that left them
    recorded_at: datetime


def write_events(conn: sqlite3.Connection, events: Iterable[EventRow]) -> None:
    """Append audit-log rows inside the caller's transaction (the one place events are
    written from Python values; `EventStore.add_events` opens its own transaction)."""
    rows = [
        (iso(at), level, kind, scan, aid, message, json.dumps(data) if data else None)
        for at, level, kind, scan, aid, message, data in events
    ]
    if rows:
        conn.executemany(
            """INSERT INTO events(at, level, kind, scan, action_id, message, data)
               VALUES (?,?,?,?,?,?,?)""",
            rows,
        )


def action_scan(
    conn: sqlite3.Connection,
    action_id: str,
    fallback: str | None = None,
    *,
    from_events: bool = False,
) -> str | None:
    """The scan an action concerns, for its events: its row's; else `fallback`; else (with
    `from_events`) the scan its latest event names (an action pruned from the table)."""
    row = conn.execute("SELECT scan FROM actions WHERE id = ?", (action_id,)).fetchone()
    if row is not None and row[0] is not None:
        return str(row[0])
    if fallback is not None or not from_events:
        return fallback
    row = conn.execute(
        """SELECT scan FROM events WHERE action_id = ? AND scan IS NOT NULL
           ORDER BY seq DESC LIMIT 1""",
        (action_id,),
    ).fetchone()
    return str(row[0]) if row is not None else None


class EventStore(StoreBase):
    """The events and deletions tables."""

    def add_events(
        self,
        events: Iterable[EventRow],
    ) -> None:
        """Append (at, level, kind, scan, action_id, message, data) rows to the audit log."""
        rows = list(events)
        if rows:
            with self.transaction() as conn:
                write_events(conn, rows)

    def event(
        self,
        at: datetime,
        kind: str,
        message: str,
        *,
        scan: str | None = None,
        action_id: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        self.add_events([(at, level, kind, scan, action_id, message, data)])

    def events(
        self,
        *,
        scan: str | None = None,
        action_id: str | None = None,
        after_seq: int = 0,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        clauses, params = ["seq > ?"], [after_seq]
        if scan is not None:
            clauses.append("scan = ?")
            params.append(scan)  # type: ignore[arg-type]
        if action_id is not None:
            clauses.append("action_id = ?")
            params.append(action_id)  # type: ignore[arg-type]
        rows = self._conn().execute(
            f"SELECT * FROM events WHERE {' AND '.join(clauses)} ORDER BY seq DESC LIMIT ?",
            (*params, limit),
        )
        out = []
        for row in rows:
            item = dict(row)
            item["data"] = json.loads(item["data"]) if item["data"] else None
            out.append(item)
        out.reverse()
        return out

    # ---- deletions (receipts) ------------------------------------------------------------
    def record_deletion(
        self,
        scan: str,
        endpoint: str,
        action_id: str,
        task_id: str | None,
        now: datetime,
        receipt: dict[str, Any],
        *,
        submission_id: str | None = None,
    ) -> None:
        """Append the receipt of one removal (and make the absence expected).

        Receipts are append-only, one per removal: a later delete of the same action (the same
        bytes put back and pruned again) adds its own. One submission's receipt for an action is
        written once; what a later look at the same submission learns (the rest of a scan an
        interrupted delete had cut part-way) completes that row instead of adding another.
        """
        self._forget(replicas=True, evidence=True)
        body = json.dumps(receipt)
        with self.transaction() as conn:
            updated = 0
            if submission_id is not None:
                updated = conn.execute(
                    """UPDATE deletions SET task_id = ?, deleted_at = ?, receipt = ?
                       WHERE submission_id = ? AND action_id = ?""",
                    (task_id, iso(now), body, submission_id, action_id),
                ).rowcount
            if not updated:
                conn.execute(
                    """INSERT INTO deletions(scan, endpoint, action_id, task_id, submission_id,
                           deleted_at, receipt) VALUES (?,?,?,?,?,?,?)""",
                    (scan, endpoint, action_id, task_id, submission_id, iso(now), body),
                )
            conn.execute("DELETE FROM replicas WHERE scan = ? AND endpoint = ?", (scan, endpoint))
            conn.execute("DELETE FROM evidence WHERE scan = ? AND endpoint = ?", (scan, endpoint))
        # And again after: a reader may have cached in between.
        self._forget(replicas=True, evidence=True)

    def foreign_files(self) -> list[ForeignFiles]:
        """Every recorded set of foreign files, oldest first (from the receipts' `left_behind`).

        The receipts are the record: a delete writes the files it left beside the scan into its
        receipt once. The LIKE narrows the scan to receipts that name any before JSON is parsed.
        """
        rows = self._conn().execute(
            """SELECT scan, endpoint, action_id, deleted_at,
                      json_extract(receipt, '$.left_behind') AS left_behind
               FROM deletions
               WHERE receipt LIKE '%"left_behind": ["%'
                 AND json_array_length(json_extract(receipt, '$.left_behind')) > 0
               ORDER BY deleted_at, scan, endpoint"""
        )
        return [
            ForeignFiles(
                scan=r["scan"],
                endpoint=r["endpoint"],
                paths=tuple(json.loads(r["left_behind"])),
                action_id=r["action_id"],
                recorded_at=datetime.fromisoformat(r["deleted_at"]),
            )
            for r in rows
        ]

    def deleted(self) -> dict[str, set[str]]:
        """endpoint → scans the engine deleted there (expected absences)."""
        out: dict[str, set[str]] = {}
        for row in self._conn().execute("SELECT scan, endpoint FROM deletions"):
            out.setdefault(row[1], set()).add(row[0])
        return out

    def receipts(self, scan: str) -> list[dict[str, Any]]:
        """Every receipt of a scan, one per removal, oldest first (`engine/receipt_search.py`)."""
        from engine.receipt_search import ReceiptQuery, find_receipts

        if not scan or scan.endswith("/"):
            return []  # a scan id, never a folder
        return find_receipts(cast("StateStore", self), ReceiptQuery(scan))

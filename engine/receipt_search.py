"""Deletion receipts by scan, by folder (a proposal, a month) and by when the delete happened.

`--receipt` reads these. A *folder* is given with a trailing `/` and matches whole path
components at any depth: `ALS-1234/` finds `2026/01/ALS-1234/scan_0001.h5`, `2026/01/` finds
every scan under that month's folder, `ALS-123/` finds neither. Anything else is one scan id.
The range is on `deleted_at`: `since` inclusive, `until` exclusive (a caller that takes a plain
date as the whole day passes the next midnight).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.state import StateStore


@dataclass(frozen=True, slots=True)
class ReceiptQuery:
    """Which receipts: `scan` (an id, or a folder ending in `/`; "" for every scan) and a range."""

    scan: str = ""
    since: datetime | None = None
    until: datetime | None = None

    @property
    def folder(self) -> bool:
        return self.scan.endswith("/")

    def matches_scan(self, scan: str) -> bool:
        if not self.scan:
            return True
        if self.folder:
            return scan.startswith(self.scan) or f"/{self.scan}" in scan
        return scan == self.scan

    def matches_time(self, deleted_at: datetime) -> bool:
        if self.since is not None and deleted_at < self.since:
            return False
        return self.until is None or deleted_at < self.until


def receipt_row(row: sqlite3.Row) -> dict[str, Any]:
    """One receipt as `--receipt --json` prints it: the row's keys, then the receipt document.

    Also readable on a store at an older schema (a read-only audit run before the service
    migrated it): its rows have no submission id.
    """
    columns = row.keys()
    return {
        "receipt_id": row["receipt_id"],
        "scan": row["scan"],
        "endpoint": row["endpoint"],
        "action_id": row["action_id"],
        "task_id": row["task_id"],
        "submission_id": row["submission_id"] if "submission_id" in columns else None,
        "deleted_at": row["deleted_at"],
        **json.loads(row["receipt"]),
    }


def find_receipts(store: StateStore, query: ReceiptQuery) -> list[dict[str, Any]]:
    """The matching receipts, one per removal, oldest first."""
    conn = store.connection()
    select = "SELECT rowid AS receipt_id, * FROM deletions"
    order = " ORDER BY deleted_at, rowid"
    if not query.scan:
        rows = conn.execute(select + order)
    elif query.folder:
        # A cheap narrowing in SQL; `matches_scan` decides on whole components.
        rows = conn.execute(
            select
            + " WHERE substr(scan, 1, length(?1)) = ?1 OR instr(scan, '/' || ?1) > 0"
            + order,
            (query.scan,),
        )
    else:
        rows = conn.execute(select + " WHERE scan = ?" + order, (query.scan,))
    found = []
    for row in rows:
        if not query.matches_scan(row["scan"]):
            continue
        if not query.matches_time(datetime.fromisoformat(row["deleted_at"])):
            continue
        found.append(receipt_row(row))
    found.sort(key=lambda r: (datetime.fromisoformat(r["deleted_at"]), r["receipt_id"]))
    return found

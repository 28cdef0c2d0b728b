"""Operator decisions as the engine reads and writes them: approvals and rejections (the log and
its rules live in `engine.decisions`; this only forwards to it), holds and retries.

Who may decide, and over which channel, is `engine.operator_decisions`; undoing a decision is
`engine.decision_undo`; acknowledgements of alerts are `engine.alert_log`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, cast

from engine.model import Hold
from engine.store.connection import StoreBase, iso, parse_time
from engine.store.events import write_events

if TYPE_CHECKING:
    from engine.store import StateStore


class OperatorStore(StoreBase):
    """The decisions (through `engine.decisions.DecisionLog`), holds and retries tables."""

    def approve(
        self,
        action_ids: Iterable[str],
        by: str,
        now: datetime,
        note: str = "",
        *,
        scans: Mapping[str, str] | None = None,
    ) -> None:
        from engine.decisions import APPROVE, DecisionLog

        DecisionLog(cast("StateStore", self)).record(
            action_ids, APPROVE, by, now, note, scans=scans
        )

    def reject(
        self,
        action_ids: Iterable[str],
        by: str,
        now: datetime,
        note: str = "",
        *,
        scans: Mapping[str, str] | None = None,
    ) -> None:
        from engine.decisions import REJECT, DecisionLog

        DecisionLog(cast("StateStore", self)).record(action_ids, REJECT, by, now, note, scans=scans)

    def decisions(self) -> dict[str, tuple[str, str, datetime]]:
        """action id → (decision, by, when) of the decision in force (a spent approval is not)."""
        from engine.decisions import DecisionLog

        return {
            aid: (d.decision, d.by, d.at)
            for aid, d in DecisionLog(cast("StateStore", self)).in_force().items()
        }

    def place_hold(
        self, scan: str, reason: str, by: str, now: datetime, expires_at: datetime | None = None
    ) -> int:
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO holds(scan, reason, placed_by, placed_at, expires_at) VALUES (?,?,?,?,?)",
                (scan, reason, by, iso(now), iso(expires_at)),
            )
            message = f"hold placed by {by}: {reason}"
            write_events(conn, [(now, "info", "hold.placed", scan, None, message, None)])
            return int(cur.lastrowid or 0)

    def lift_hold(self, scan: str, by: str, now: datetime) -> int:
        with self.transaction() as conn:
            cur = conn.execute(
                """UPDATE holds SET lifted_by = ?, lifted_at = ?
                   WHERE scan = ? AND lifted_at IS NULL""",
                (by, iso(now), scan),
            )
            if cur.rowcount:
                message = f"hold lifted by {by}"
                write_events(conn, [(now, "info", "hold.lifted", scan, None, message, None)])
            return int(cur.rowcount)

    def active_holds(self, now: datetime) -> dict[str, Hold]:
        out: dict[str, Hold] = {}
        for row in self._conn().execute("SELECT * FROM holds WHERE lifted_at IS NULL"):
            expires = parse_time(row["expires_at"])
            if expires is not None and expires <= now:
                continue
            out[row["scan"]] = Hold(
                scan=row["scan"],
                reason=row["reason"],
                placed_by=row["placed_by"],
                placed_at=datetime.fromisoformat(row["placed_at"]),
                expires_at=expires,
            )
        return out

    def request_retry(self, action_ids: Iterable[str], by: str, now: datetime) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO retries VALUES (?,?,?)",
                [(aid, by, iso(now)) for aid in action_ids],
            )

    def consume_retries(self, now: datetime) -> list[str]:
        """Operator retries: failed actions become due now (the reconciler calls this)."""
        with self.transaction() as conn:
            ids = [row[0] for row in conn.execute("SELECT action_id FROM retries")]
            conn.executemany(
                """UPDATE actions SET retry_at = ?, attempts = 0 WHERE id = ? AND status = 'failed'""",
                [(iso(now), aid) for aid in ids],
            )
            conn.execute("DELETE FROM retries")
        return ids

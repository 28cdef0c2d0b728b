"""Standing alerts: when each was raised, when it cleared, and who acknowledged it.

Each pass computes the alerts that hold right now (the planner's missing-fraction alerts, lost
endpoint identities, foreign files left by prunes). This log gives each its `since`, records an
event when one is raised or clears, and applies operators' acknowledgements:

- an acknowledged `notify` alert no longer stands (the person has seen it);
- an acknowledged missing-fraction alert means "accept the loss": the reconciler takes the
  endpoint's current listing as its new baseline, so the condition itself goes away;
- so does an acknowledged lost-documents alert of the catalog: the lost registrations are
  forgotten (`engine.catalog.custody`) and the scans are registered again where they can be;
- an alert cleared only by its condition (an endpoint's identity) cannot be acknowledged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from engine.errors import UsageError
from engine.model import Alert, AlertEffect, ClearedBy
from engine.state import StateStore, iso, parse_time
from engine.store.events import write_events


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert as the state store keeps it."""

    id: str
    code: str
    endpoint: str | None
    scan: str | None
    effect: AlertEffect
    message: str
    since: datetime
    cleared_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    acknowledged_why: str | None

    @property
    def standing(self) -> bool:
        return self.cleared_at is None

    @property
    def cleared_by(self) -> ClearedBy:
        """What ends this alert: the rule `AlertLog.acknowledge` enforces, for front ends to show."""
        return _cleared_by(self)


class AlertLog:
    """The `alerts` table of one state store."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def records(self, *, standing_only: bool = False) -> dict[str, AlertRecord]:
        if not self.store.has_table("alerts"):
            return {}  # a read-only store still at an older schema: nothing recorded yet
        query = "SELECT * FROM alerts" + (" WHERE cleared_at IS NULL" if standing_only else "")
        out = {}
        for row in self.store.connection().execute(query + " ORDER BY since"):
            out[row["id"]] = AlertRecord(
                row["id"],
                row["code"],
                row["endpoint"],
                row["scan"],
                AlertEffect(row["effect"]),
                row["message"],
                parse_time(row["since"]) or datetime.min,
                parse_time(row["cleared_at"]),
                row["acknowledged_by"],
                parse_time(row["acknowledged_at"]),
                row["acknowledged_why"],
            )
        return out

    def accepted_losses(self) -> set[str]:
        """Endpoints whose standing missing-fraction alert an operator acknowledged."""
        return {
            r.endpoint
            for r in self.records(standing_only=True).values()
            if r.code == "missing_fraction" and r.acknowledged_at is not None and r.endpoint
        }

    def acknowledged(self, code: str, endpoint: str | None) -> bool:
        """Whether a standing alert of this code and endpoint was acknowledged by an operator."""
        return any(
            r.code == code and r.endpoint == endpoint and r.acknowledged_at is not None
            for r in self.records(standing_only=True).values()
        )

    def refresh(self, current: Iterable[Alert], now: datetime, *, write: bool) -> tuple[Alert, ...]:
        """The alerts that stand this pass, with `since` filled in.

        With `write`, new alerts are recorded (and an `alert.raised` event), alerts whose
        condition went away are closed (`alert.cleared`), and a re-raised alert starts afresh.
        Acknowledged `notify` alerts are left out of the answer while their condition lasts.
        """
        known = self.records()
        current = list({a.id: a for a in current}.values())
        now_ids = {a.id for a in current}
        standing: list[Alert] = []
        raised: list[Alert] = []
        for alert in current:
            record = known.get(alert.id)
            if record is None or not record.standing:
                raised.append(alert)
                standing.append(replace(alert, since=now))
                continue
            if record.acknowledged_at is not None and alert.effect is AlertEffect.NOTIFY:
                continue  # seen and acknowledged by a person
            standing.append(replace(alert, since=record.since))
        cleared = [r for r in known.values() if r.standing and r.id not in now_ids]
        if write and (raised or cleared or current):
            self._write(raised, cleared, current, now)
        return tuple(standing)

    def _write(
        self, raised: list[Alert], cleared: list[AlertRecord], current: list[Alert], now: datetime
    ) -> None:
        at = iso(now)
        with self.store.transaction() as conn:
            for alert in raised:
                conn.execute(
                    "INSERT OR REPLACE INTO alerts(id, code, endpoint, scan, effect, message, "
                    "since, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        alert.id,
                        alert.code,
                        alert.endpoint,
                        alert.scan,
                        alert.effect.value,
                        alert.message,
                        at,
                        at,
                    ),
                )
                _event(conn, now, "alert.raised", alert.message, alert.scan, alert.to_json())
            for alert in current:
                conn.execute(
                    "UPDATE alerts SET last_seen = ?, message = ? WHERE id = ?",
                    (at, alert.message, alert.id),
                )
            for record in cleared:
                conn.execute("UPDATE alerts SET cleared_at = ? WHERE id = ?", (at, record.id))
                how = (
                    f"after {record.acknowledged_by} acknowledged it"
                    if record.acknowledged_by
                    else "the condition went away"
                )
                _event(
                    conn,
                    now,
                    "alert.cleared",
                    f"cleared ({how}): {record.message}",
                    record.scan,
                    {"id": record.id, "code": record.code, "endpoint": record.endpoint},
                )

    def acknowledge(self, alert_id: str, *, by: str, why: str, now: datetime) -> AlertRecord:
        """Record an operator's acknowledgement of a standing alert.

        Raises:
            UsageError: no standing alert has this id, it is cleared only by its condition, or
                no reason was given.
        """
        if not why.strip():
            raise UsageError("--acknowledge needs --why: say why the alert is accepted")
        record = self.records(standing_only=True).get(alert_id)
        if record is None:
            raise UsageError(
                f"no standing alert has id {alert_id!r} (see alert_details in --dry-run --json)"
            )
        if _cleared_by(record) is ClearedBy.CONDITION:
            raise UsageError(
                f"alert {alert_id} ({record.code}) clears only when its condition goes away: "
                f"{record.message}"
            )
        at = iso(now)
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE alerts SET acknowledged_by = ?, acknowledged_at = ?, acknowledged_why = ? "
                "WHERE id = ?",
                (by, at, why, alert_id),
            )
            _event(
                conn,
                now,
                "alert.acknowledged",
                f"{by} acknowledged: {record.message} — {why}",
                record.scan,
                {"id": alert_id, "code": record.code, "by": by, "why": why},
            )
        return replace(record, acknowledged_by=by, acknowledged_at=now, acknowledged_why=why)


# Which codes an operator may acknowledge (the alert's own `cleared_by` says the same in JSON).
_ACKNOWLEDGEABLE = {
    "missing_fraction",
    "foreign_files",
    "catalog_lost_documents",
    "removed_unverified",
}


def _cleared_by(record: AlertRecord) -> ClearedBy:
    if record.code in _ACKNOWLEDGEABLE or record.effect is AlertEffect.NOTIFY:
        return ClearedBy.CONDITION_OR_ACKNOWLEDGEMENT
    return ClearedBy.CONDITION


def _event(
    conn: sqlite3.Connection,
    at: datetime,
    kind: str,
    message: str,
    scan: str | None,
    data: dict[str, Any],
) -> None:
    level = "error" if kind == "alert.raised" else "info"
    write_events(conn, [(at, level, kind, scan, None, message, data)])

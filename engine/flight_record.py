"""Recording a flight check: the state store, the alert, the metrics, and who writes them.

A flight check's outcome is engine state (a row in `flight_checks`, an event, and while the
latest check failed one `flight_check_failed` alert per failed leg, a `notify` alert that a green
check clears or an operator acknowledges). Only the store's owner writes it:

- a running service takes the report over its decision socket (`OP`, `handle`), records it and
  shows it in its metrics at once;
- with no service listening, the caller takes the owner lock itself (`engine.lock`) and writes
  it; a store whose lock is held by a process that does not listen (`--reconcile --once`) is
  waited for, up to `wait_seconds`, then reported as not recorded.

Each pass of the reconciler re-derives the alert from the latest check (`flight_alerts`), so it
stands across passes until the condition clears.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import Counter as PromCounter

from engine.clock import SYSTEM_CLOCK, Clock
from engine.config import Config
from engine.decision_socket import NoService, Peer, ask, socket_path
from engine.errors import StateLocked
from engine.flight_check import FlightReport
from engine.model import Alert, AlertEffect, ClearedBy
from engine.state import StateStore, iso

log = logging.getLogger(__name__)

OP = "flight_check.record"
ALERT_CODE = "flight_check_failed"


def latest(store: StateStore) -> FlightReport | None:
    """The most recent flight check recorded in the store, if any."""
    if not store.has_table("flight_checks"):
        return None
    row = (
        store.connection()
        .execute("SELECT report FROM flight_checks ORDER BY id DESC LIMIT 1")
        .fetchone()
    )
    return FlightReport.from_json(json.loads(row[0])) if row else None


def flight_alerts(store: StateStore) -> list[Alert]:
    """The alerts the latest flight check raises (none when it passed, or none was run)."""
    report = latest(store)
    if report is None or report.ok:
        return []
    return _alerts_of(report)


def _alerts_of(report: FlightReport) -> list[Alert]:
    def alert(endpoint: str | None, what: str) -> Alert:
        return Alert(
            ALERT_CODE,
            AlertEffect.NOTIFY,
            f"flight check of {report.started_at.isoformat(timespec='seconds')} failed: {what}",
            endpoint=endpoint,
            cleared_by=ClearedBy.CONDITION_OR_ACKNOWLEDGEMENT,
        )

    alerts = [alert(leg.target, f"{leg.pair}: {leg.error}") for leg in report.failed_legs]
    if report.setup_error:
        alerts.append(alert(None, report.setup_error))
    if report.cleanup_errors:
        alerts.append(alert(None, "canary left behind: " + "; ".join(report.cleanup_errors)))
    return alerts


def record(store: StateStore, report: FlightReport, now: datetime) -> None:
    """Write the report, its event, and bring the flight-check alerts in line with it (raised at
    once, so the TUI shows them before the next pass; cleared by a green check)."""
    at = iso(now)
    current = {a.id: a for a in (_alerts_of(report) if not report.ok else [])}
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO flight_checks(at, ok, report) VALUES (?, ?, ?)",
            (at, int(report.ok), json.dumps(report.to_json())),
        )
        conn.execute(
            "INSERT INTO events(at, level, kind, scan, message, data) VALUES (?, ?, ?, ?, ?, ?)",
            (
                at,
                "info" if report.ok else "error",
                "flight_check.passed" if report.ok else "flight_check.failed",
                None,
                _summary(report),
                json.dumps(report.to_json()),
            ),
        )
        standing = {
            row[0]
            for row in conn.execute(
                "SELECT id FROM alerts WHERE code = ? AND cleared_at IS NULL", (ALERT_CODE,)
            )
        }
        for alert in current.values():
            if alert.id in standing:
                conn.execute(
                    "UPDATE alerts SET message = ?, last_seen = ? WHERE id = ?",
                    (alert.message, at, alert.id),
                )
                continue
            conn.execute(
                "INSERT OR REPLACE INTO alerts(id, code, endpoint, scan, effect, message, since, "
                "last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    alert.id,
                    alert.code,
                    alert.endpoint,
                    None,
                    alert.effect.value,
                    alert.message,
                    at,
                    at,
                ),
            )
            conn.execute(
                "INSERT INTO events(at, level, kind, scan, message, data) VALUES (?, ?, ?, ?, ?, ?)",
                (at, "error", "alert.raised", None, alert.message, json.dumps(alert.to_json())),
            )
        for alert_id in standing - set(current):
            conn.execute("UPDATE alerts SET cleared_at = ? WHERE id = ?", (at, alert_id))
            conn.execute(
                "INSERT INTO events(at, level, kind, scan, message, data) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    at,
                    "info",
                    "alert.cleared",
                    None,
                    "cleared (a later flight check passed)",
                    json.dumps({"id": alert_id, "code": ALERT_CODE}),
                ),
            )


def _summary(report: FlightReport) -> str:
    legs = ", ".join(
        f"{leg.pair} {'ok' if leg.ok else 'FAILED'}"
        + (f" {leg.latency_seconds:.2f}s" if leg.latency_seconds is not None else "")
        for leg in report.legs
    )
    return f"flight check {'passed' if report.ok else 'failed'}: {legs or report.setup_error}"


class FlightMetrics:
    """The flight check's metric families, on a service's (or a one-off) registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ok = Gauge(
            "bl931_flight_check_ok",
            "1 if the latest flight check passed, 0 if it failed.",
            registry=registry,
        )
        self.last = Gauge(
            "bl931_flight_check_timestamp_seconds",
            "Unix time at which the latest flight check started.",
            registry=registry,
        )
        self.leg_ok = Gauge(
            "bl931_flight_check_leg_ok",
            "1 if the leg passed in the latest flight check, 0 if it failed.",
            ["source", "target", "check"],
            registry=registry,
        )
        self.latency = Gauge(
            "bl931_flight_check_leg_latency_seconds",
            "Seconds the leg took in the latest flight check (copy and checksum, or reachability).",
            ["source", "target", "check"],
            registry=registry,
        )
        self.checks = PromCounter(
            "bl931_flight_checks",
            "Flight checks recorded, by result.",
            ["result"],
            registry=registry,
        )

    def show(self, report: FlightReport | None, *, count: bool = False) -> None:
        if report is None:
            return
        self.ok.set(1 if report.ok else 0)
        self.last.set(report.started_at.timestamp())
        self.leg_ok.clear()
        self.latency.clear()
        for leg in report.legs:
            self.leg_ok.labels(leg.source, leg.target, leg.check).set(1 if leg.ok else 0)
            if leg.latency_seconds is not None:
                self.latency.labels(leg.source, leg.target, leg.check).set(leg.latency_seconds)
        if count:
            self.checks.labels("ok" if report.ok else "failed").inc()


class FlightDesk:
    """The service's side of `OP` on the decision socket: record a report the caller ran."""

    def __init__(
        self,
        store: StateStore,
        clock: Callable[[], datetime],
        metrics: FlightMetrics | None = None,
        allowed: Callable[[Peer], str | None] = lambda peer: None,
    ) -> None:
        self.store, self.clock, self.metrics, self.allowed = store, clock, metrics, allowed

    def __call__(self, wire: dict[str, Any], peer: Peer) -> dict[str, Any]:
        refusal = self.allowed(peer)
        if refusal is not None:
            return {"ok": False, "error": "not_approver", "message": refusal}
        try:
            report = FlightReport.from_json(wire["report"])
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "error": "bad_request", "message": f"bad report: {exc!r}"}
        record(self.store, report, self.clock())
        if self.metrics is not None:
            self.metrics.show(report, count=True)
        return {"ok": True, "via": "service"}


def routed(
    default: Callable[[dict[str, Any], Peer], dict[str, Any]],
    ops: dict[str, Callable[[dict[str, Any], Peer], dict[str, Any]]],
) -> Callable[[dict[str, Any], Peer], dict[str, Any]]:
    """A socket handler sending a request whose `op` is one of `ops` there, the rest to
    `default` (the decision desk)."""

    def handle(wire: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return ops.get(str(wire.get("op", "")), default)(wire, peer)

    return handle


def hand_over(
    config: Config,
    report: FlightReport,
    *,
    clock: Clock = SYSTEM_CLOCK,
    wait_seconds: float = 60.0,
) -> str:
    """Record the report with the store's owner: the running service, else this process under
    the owner lock. Returns where it went: "service", "direct", or "none" (no state store
    exists yet: nothing is created, the report is only printed).

    Raises:
        StateLocked: another process holds the lock and does not listen, for `wait_seconds`.
        PermissionError, OSError: the socket could not be reached / the service refused.
    """
    from engine.file_modes import owned_store
    from engine.lock import OwnerLock

    if not config.state.path.exists():
        # Creating the store here would make the service's first pass find a store that is not
        # new, and so not write the endpoints' identity markers by itself.
        return "none"
    path = socket_path(config.state.path)
    waited = 0.0
    while True:
        try:
            reply = ask(path, {"op": OP, "report": report.to_json()})
        except NoService:
            pass
        else:
            if not reply.get("ok"):
                raise PermissionError(str(reply.get("message") or "refused by the service"))
            return "service"
        try:
            with OwnerLock(config.state.path, clock=clock):
                store = owned_store(config)
                try:
                    record(store, report, clock.now())
                finally:
                    store.close()
                return "direct"
        except StateLocked:
            if waited >= wait_seconds:
                raise
            clock.sleep(1.0)
            waited += 1.0

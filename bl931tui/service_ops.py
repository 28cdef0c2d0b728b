"""The service's hooks for the operations features (flight checks, the Pushgateway), kept out of
`bl931tui/service.py` so that file stays about the loop itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from engine.config import Config
from engine.decision_socket import Peer
from engine.flight_record import OP, FlightDesk, FlightMetrics, latest, routed
from engine.metrics import ServiceMetrics
from engine.operators import Approvers, resolve
from engine.pushgateway import Pusher, gateway_settings
from engine.reconciler import PassReport
from engine.state import StateStore

Handler = Callable[[dict[str, Any], Peer], dict[str, Any]]


def flight_metrics_for(store: StateStore, metrics: ServiceMetrics) -> FlightMetrics:
    """The flight-check gauges on the service's registry, showing the latest recorded check."""
    flight = FlightMetrics(metrics.registry)
    flight.show(latest(store))
    return flight


def with_flight_desk(
    desk: Any, store: StateStore, clock: Callable[[], datetime], flight: FlightMetrics
) -> Handler:
    """The decision desk, plus `flight_check.record` for flight checks run by other processes.

    Who may record one: whoever may decide (the approvers, the service user), since a report
    raises or clears an alert."""

    def allowed(peer: Peer) -> str | None:
        approvers = Approvers.parse(desk.config().approval.approvers)
        return approvers.refusal(resolve(peer.uid, desk.accounts), service_uid=desk.service_uid)

    return routed(desk, {OP: FlightDesk(store, clock, flight, allowed=allowed)})


def observe_and_push(metrics: ServiceMetrics, pusher: Pusher) -> Callable[[PassReport], None]:
    """The loop's `on_pass`: fold the pass into the metrics, then push them (if configured)."""

    def on_pass(report: PassReport) -> None:
        metrics.observe_pass(report)
        pusher.push()

    return on_pass


def push_once(config: Config, report: PassReport, environ: Mapping[str, str]) -> bool:
    """`--reconcile --once` with `PUSHGATEWAY_URL`: the pass's metrics, pushed once."""
    if gateway_settings(environ) is None:
        return True
    metrics = ServiceMetrics()
    metrics.observe_pass(report)
    return Pusher(config.beamline.name, metrics.registry, environ).push()

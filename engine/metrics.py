"""Prometheus metrics of the service, on a registry of its own.

A `ServiceMetrics` owns a private `CollectorRegistry` (never the process-wide default), so two
services or two tests in one process never share counters. The loop calls `observe_pass` with
each `PassReport`; everything exported is derived from the report, which is itself derived
from the pass's observation, plan and outcome (the action outcomes the executor's recorder
counted as it wrote each one's audit event: engine/tallies.py).

Gauges describe the latest pass (replaced wholesale each time, so a label that disappears —
an endpoint removed by a config reload — stops being exported); counters accumulate over the
life of the process, as Prometheus expects.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client import Counter as PromCounter

from engine.blocked_entries import scans_of
from engine.model import ActionKind
from engine.pass_report import PassReport

log = logging.getLogger(__name__)

# Pass durations range from well under a second (local, steady) to many minutes (first listing
# of a large Globus tree), hence the wide buckets.
PASS_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class ServiceMetrics:
    """The metric families of one service and the code that fills them from a pass report."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.scans = Gauge(
            "bl931_scans",
            "Scans by lifecycle state in the latest plan "
            "(in_flight, awaiting_approval, pending, blocked, in_sync).",
            ["state"],
            registry=r,
        )
        self.replicas = Gauge(
            "bl931_replicas",
            "Replicas seen in the latest pass, per endpoint and verification level "
            "(present, size, checksum): how many scans have reached each stage.",
            ["endpoint", "level"],
            registry=r,
        )
        self.bytes_pending = Gauge(
            "bl931_bytes_pending",
            "Bytes of planned copies not yet submitted, per target endpoint.",
            ["endpoint"],
            registry=r,
        )
        self.deletes_awaiting_approval = Gauge(
            "bl931_deletes_awaiting_approval",
            "Deletes that are allowed but wait for an operator's approval.",
            registry=r,
        )
        self.planned_actions = Gauge(
            "bl931_planned_actions",
            "Actions in the latest plan, by kind.",
            ["kind"],
            registry=r,
        )
        self.endpoint_up = Gauge(
            "bl931_endpoint_up",
            "1 if the endpoint listed in the latest pass, 0 if it failed or is backed off.",
            ["endpoint"],
            registry=r,
        )
        self.actions = PromCounter(
            "bl931_actions",
            "Action lifecycle outcomes (submitted, succeeded, failed, skipped), by action kind.",
            ["kind", "outcome"],
            registry=r,
        )
        self.errors = PromCounter(
            "bl931_errors",
            "Errors by class (transient, needs_human, terminal) and endpoint: failed listings "
            "and failed actions.",
            ["error_class", "endpoint"],
            registry=r,
        )
        self.passes = PromCounter(
            "bl931_passes", "Passes run, by result (ok, error, crashed).", ["result"], registry=r
        )
        self.pass_duration = Histogram(
            "bl931_pass_duration_seconds",
            "Wall time of one reconcile pass.",
            buckets=PASS_BUCKETS,
            registry=r,
        )
        self.last_pass_duration = Gauge(
            "bl931_last_pass_duration_seconds", "Wall time of the latest pass.", registry=r
        )
        self.last_success = Gauge(
            "bl931_last_successful_pass_timestamp_seconds",
            "Unix time at which the latest pass without errors finished.",
            registry=r,
        )
        self.last_pass = Gauge(
            "bl931_last_pass_timestamp_seconds",
            "Unix time at which the latest pass finished (with or without errors).",
            registry=r,
        )
        for kind in ActionKind:
            for outcome in ("submitted", "succeeded", "failed"):
                self.actions.labels(kind.value, outcome)
        for result in ("ok", "error", "crashed"):
            self.passes.labels(result)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # ---- updating -----------------------------------------------------------------------
    def observe_pass(self, report: PassReport) -> None:
        """Fold one finished pass into the metrics."""
        duration = max(0.0, (report.finished_at - report.started_at).total_seconds())
        self.pass_duration.observe(duration)
        self.last_pass_duration.set(duration)
        self.last_pass.set(report.finished_at.timestamp())
        self.passes.labels("ok" if report.ok else "error").inc()
        if report.ok:
            self.last_success.set(report.finished_at.timestamp())
        plan = report.plan

        states = scan_states(report)
        self.scans.clear()
        for state in ("in_flight", "awaiting_approval", "pending", "blocked", "in_sync"):
            self.scans.labels(state).set(states.get(state, 0))

        self.replicas.clear()
        for (endpoint, level), count in sorted(report.replica_levels.items()):
            self.replicas.labels(endpoint, level).set(count)

        pending: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        awaiting_deletes = 0
        for action in plan.actions:
            kinds[action.kind.value] += 1
            if action.kind is ActionKind.COPY and action.target is not None:
                pending[action.target] += action.bytes
            if (
                action.kind is ActionKind.DELETE
                and action.requires_approval
                and not action.approved
            ):
                awaiting_deletes += 1
        self.bytes_pending.clear()
        for endpoint in report.endpoints:
            self.bytes_pending.labels(endpoint).set(pending.get(endpoint, 0))
        self.planned_actions.clear()
        for kind in ActionKind:
            self.planned_actions.labels(kind.value).set(kinds.get(kind.value, 0))
        self.deletes_awaiting_approval.set(awaiting_deletes)

        failed_endpoints = {e.endpoint for e in plan.errors}
        self.endpoint_up.clear()
        for endpoint in report.endpoints:
            self.endpoint_up.labels(endpoint).set(0 if endpoint in failed_endpoints else 1)
        for error in plan.errors:
            self.errors.labels(error.error_class.value, error.endpoint).inc()

        for (action_kind, outcome), count in report.actions.outcomes.items():
            self.actions.labels(action_kind, outcome.value).inc(count)
        for (error_class, endpoint), count in report.actions.failures.items():
            self.errors.labels(error_class, endpoint).inc(count)

    def observe_crash(self) -> None:
        """A pass that raised instead of returning a report."""
        self.passes.labels("crashed").inc()

    # ---- serving ------------------------------------------------------------------------
    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve `/metrics` over HTTP in a daemon thread; returns the bound port (0 picks one).

        Bound to localhost by default: the metrics name scans and endpoints, and a scraper on
        the same host (or an SSH tunnel) is how the flow VM is monitored.
        """
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._server, self._thread = server, thread
        bound = int(server.server_address[1])
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


_STATE_ORDER = ("in_flight", "awaiting_approval", "pending", "blocked")


def scan_states(report: PassReport) -> dict[str, int]:
    """Each known scan counted once, in the most active state it is in.

    A scan with a copy in flight and a delete blocked is `in_flight`: the state an operator
    would want to see first. Scans with nothing to do are `in_sync`.
    """
    plan = report.plan
    state_of: dict[str, int] = {}
    rank = {state: i for i, state in enumerate(_STATE_ORDER)}

    def mark(scan: str, state: str) -> None:
        current = state_of.get(scan)
        if current is None or rank[state] < current:
            state_of[scan] = rank[state]

    for flight in plan.in_flight:
        mark(flight.scan, "in_flight")
    for action in plan.actions:
        mark(
            action.scan,
            "awaiting_approval" if action.requires_approval and not action.approved else "pending",
        )
    for scan in scans_of(plan.blocked):  # without making 100,000s of `Blocked` (a view)
        mark(scan, "blocked")
    counts = Counter(_STATE_ORDER[i] for i in state_of.values())
    out = {state: counts.get(state, 0) for state in _STATE_ORDER}
    out["in_sync"] = max(0, report.scans - len(state_of))
    return out

"""Optional push of the metrics to a Prometheus Pushgateway (`PUSHGATEWAY_URL`), as the ALS's
splash_flows does (`orchestration/prometheus_utils.py`: `push_to_gateway(PUSHGATEWAY_URL, job=…,
registry=…, grouping_key=…)`), besides the service's pull endpoint.

The push happens after each pass (and after a flight check run outside the service). It uses
`push_to_gateway` (PUT: the group's metrics are replaced as a whole), job `bl931`, grouping key
`{"beamline": <[beamline] name>}`, so two beamlines on one gateway never overwrite each other.
A gateway that is down, slow or refuses never fails the pass: the error is logged and counted
(`failures`, and `bl931_pushgateway_failures` on the service's registry).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, push_to_gateway
from prometheus_client import Counter as PromCounter

from engine.config import Config

log = logging.getLogger(__name__)

JOB = "bl931"
TIMEOUT_SECONDS = 10.0


class Pusher:
    """Pushes one registry to the gateway named by `PUSHGATEWAY_URL` (nothing when unset)."""

    def __init__(
        self,
        beamline: str,
        registry: CollectorRegistry,
        environ: Mapping[str, str],
        *,
        job: str = JOB,
    ) -> None:
        self.url = (environ.get("PUSHGATEWAY_URL") or "").strip() or None
        self.beamline, self.registry, self.job = beamline, registry, job
        self.failures = 0
        self.pushes = 0
        self._counter = PromCounter(
            "bl931_pushgateway_failures",
            "Pushes to the Pushgateway (PUSHGATEWAY_URL) that failed; the passes carried on.",
            registry=registry,
        )

    def push(self) -> bool:
        """Push now; True if it went through (or no gateway is configured)."""
        if self.url is None:
            return True
        try:
            push_to_gateway(
                self.url,
                job=self.job,
                registry=self.registry,
                grouping_key={"beamline": self.beamline},
                timeout=TIMEOUT_SECONDS,
            )
        except Exception as exc:  # a gateway problem never fails the pass
            self.failures += 1
            self._counter.inc()
            log.warning("pushing metrics to the Pushgateway at %s failed: %s", self.url, exc)
            return False
        self.pushes += 1
        return True


def push_flight(config: Config, report: object, environ: Mapping[str, str]) -> bool:
    """Push one flight check's gauges (a run outside the service), as job `bl931_flight_check`."""
    if not (environ.get("PUSHGATEWAY_URL") or "").strip():
        return True
    from engine.flight_check import FlightReport
    from engine.flight_record import FlightMetrics

    assert isinstance(report, FlightReport)
    registry = CollectorRegistry(auto_describe=True)
    FlightMetrics(registry).show(report, count=True)
    return Pusher(config.beamline.name, registry, environ, job="bl931_flight_check").push()

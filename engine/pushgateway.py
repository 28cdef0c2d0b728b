"""Optional push of the metrics to a Prometheus Pushgateway (`PUSHGATEWAY_URL`), as the ALS's
splash_flows does (`orchestration/prometheus_utils.py`: `push_to_gateway(PUSHGATEWAY_URL, job=…,
registry=…, grouping_key=…)`), besides the service's pull endpoint.

The push happens after each pass (and after a flight check run outside the service). It uses
`push_to_gateway` (PUT: the group's metrics are replaced as a whole), job `bl931`, grouping key
`{"beamline": <[beamline] name>}`, so two beamlines on one gateway never overwrite each other.

- **Credentials.** `http://USER:PASSWORD@host:9091` is sent as HTTP basic auth with
  prometheus_client's `basic_auth_handler` (the credentials taken out of the URL; the
  Pushgateway's `--web.config.file` `basic_auth_users`, or a proxy in front, checks them). A query
  (`?token=…`, for a proxy) is kept on every push URL. Neither ever appears in a log line or an
  error: the gateway is shown as `http://***@host:9091/?***`.
- **A deadline on the whole push.** `PUSHGATEWAY_TIMEOUT_SECONDS` (default 10) bounds each socket
  read *and* the push as a whole: the push runs in a daemon thread and is given up when the
  deadline passes, so a gateway that trickles its answer a byte at a time cannot hold a pass.
  While a given-up push still holds its connection, the next push is skipped (and counted), so
  at most one such thread ever lingers.
- A gateway that is down, slow or refuses never fails the pass: the error is logged and counted
  (`failures`, and `bl931_pushgateway_failures` on the service's registry). A malformed
  `PUSHGATEWAY_URL` or `PUSHGATEWAY_TIMEOUT_SECONDS` is a configuration error at startup
  (`gateway_settings`), naming the variable and never echoing its value.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from prometheus_client import CollectorRegistry, push_to_gateway
from prometheus_client import Counter as PromCounter
from prometheus_client.exposition import basic_auth_handler, default_handler

from engine.config import Config
from engine.errors import ConfigError

log = logging.getLogger(__name__)

JOB = "bl931"
TIMEOUT_SECONDS = 10.0
URL_VAR, TIMEOUT_VAR = "PUSHGATEWAY_URL", "PUSHGATEWAY_TIMEOUT_SECONDS"


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """`PUSHGATEWAY_URL` taken apart: where to push, and the secrets kept out of the URL."""

    gateway: str  # scheme://host[:port][/path], no userinfo, no query
    shown: str  # for logs: the userinfo and the query replaced by ***
    username: str | None
    password: str | None
    query: str  # appended to every push URL ("" for none)
    timeout: float
    secrets: tuple[str, ...]  # every spelling of a secret, scrubbed from error texts

    def scrub(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def gateway_settings(environ: Mapping[str, str]) -> GatewaySettings | None:
    """The Pushgateway settings from the environment; None when `PUSHGATEWAY_URL` is unset.

    Raises:
        ConfigError: the URL is not `http(s)://[USER[:PASSWORD]@]HOST[:PORT][/PATH][?QUERY]`, or
            the timeout is not a positive number of seconds (the value is never echoed).
    """
    raw = (environ.get(URL_VAR) or "").strip()
    if not raw:
        return None
    timeout = _timeout(environ.get(TIMEOUT_VAR))
    # Like prometheus_client: a URL without an http(s) scheme is taken as http://.
    url = raw if re.match(r"(?i)^https?://", raw) else f"http://{raw}"
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    try:
        port_ok = parts.port is not None or not hostport.endswith(":")
    except ValueError:  # not a number, or out of range
        port_ok = False
    if not parts.hostname or not port_ok or parts.fragment:
        raise ConfigError(
            "is not a usable Pushgateway address: expected http(s)://[USER:PASSWORD@]HOST[:PORT]"
            "[/PATH][?QUERY] (the value is not shown: it may hold a password)",
            key=URL_VAR,
        )
    gateway = f"{parts.scheme.lower()}://{hostport}{parts.path}"
    username = unquote(parts.username) if at and parts.username is not None else None
    password = unquote(parts.password) if at and parts.password is not None else None
    secrets = {s for s in (userinfo, parts.password, password, parts.query) if s}
    secrets |= {unquote(parts.query)} if parts.query else set()
    shown = (
        f"{parts.scheme.lower()}://{'***@' if at else ''}{hostport}{parts.path}"
        f"{'?***' if parts.query else ''}"
    )
    return GatewaySettings(
        gateway, shown, username, password, parts.query, timeout, tuple(sorted(secrets))
    )


def _timeout(value: str | None) -> float:
    if value is None or not value.strip():
        return TIMEOUT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(
            f"{value.strip()!r} is not a positive number of seconds (the deadline of one push "
            f"to the Pushgateway; default {TIMEOUT_SECONDS:g})",
            key=TIMEOUT_VAR,
        )
    return seconds


class Pusher:
    """Pushes one registry to the gateway named by `PUSHGATEWAY_URL` (nothing when unset).

    Raises:
        ConfigError: from `gateway_settings`, at construction (the service's startup).
    """

    def __init__(
        self,
        beamline: str,
        registry: CollectorRegistry,
        environ: Mapping[str, str],
        *,
        job: str = JOB,
    ) -> None:
        self.settings = gateway_settings(environ)
        self.url = self.settings.shown if self.settings is not None else None  # safe to show
        self.beamline, self.registry, self.job = beamline, registry, job
        self.failures = 0
        self.pushes = 0
        self._lingering: threading.Thread | None = None  # a given-up push still connected
        self._counter = PromCounter(
            "bl931_pushgateway_failures",
            "Pushes to the Pushgateway (PUSHGATEWAY_URL) that failed; the passes carried on.",
            registry=registry,
        )

    def push(self) -> bool:
        """Push now, within the deadline; True if it went through (or no gateway is set)."""
        settings = self.settings
        if settings is None:
            return True
        if self._lingering is not None and self._lingering.is_alive():
            return self._failed(
                f"skipped: the previous push, given up after {settings.timeout:g} s "
                f"({TIMEOUT_VAR}), still holds its connection"
            )
        outcome: list[BaseException | None] = []

        def run() -> None:
            try:
                push_to_gateway(
                    settings.gateway,
                    job=self.job,
                    registry=self.registry,
                    grouping_key={"beamline": self.beamline},
                    # per socket operation; the whole push is bounded by the join below. Longer
                    # than the deadline, so a push given up is never also cut by its own read.
                    timeout=settings.timeout * 3,
                    handler=self._handler,
                )
                outcome.append(None)
            except BaseException as exc:  # reported by the caller's thread
                outcome.append(exc)

        thread = threading.Thread(target=run, name="bl931-pushgateway", daemon=True)
        thread.start()
        thread.join(settings.timeout)
        if thread.is_alive():
            self._lingering = thread
            return self._failed(
                f"no complete answer within {settings.timeout:g} s ({TIMEOUT_VAR}); given up"
            )
        error = outcome[0] if outcome else RuntimeError("the push ended without a result")
        if error is not None:  # a gateway problem never fails the pass
            return self._failed(settings.scrub(f"{type(error).__name__}: {error}"))
        self.pushes += 1
        return True

    def _failed(self, why: str) -> bool:
        self.failures += 1
        self._counter.inc()
        log.warning("pushing metrics to the Pushgateway at %s failed: %s", self.url, why)
        return False

    def _handler(
        self,
        url: str,
        method: str,
        timeout: float | None,
        headers: list[tuple[str, str]],
        data: bytes,
    ) -> Callable[[], None]:
        """prometheus_client's handler protocol: the query put back, basic auth if given."""
        settings = self.settings
        assert settings is not None
        if settings.query:
            url = f"{url}?{settings.query}"
        if settings.username is not None:
            return basic_auth_handler(
                url, method, timeout, headers, data, settings.username, settings.password or ""
            )
        return default_handler(url, method, timeout, headers, data)


def push_flight(config: Config, report: object, environ: Mapping[str, str]) -> bool:
    """Push one flight check's gauges (a run outside the service), as job `bl931_flight_check`."""
    if gateway_settings(environ) is None:
        return True
    from engine.flight_check import FlightReport
    from engine.flight_record import FlightMetrics

    assert isinstance(report, FlightReport)
    registry = CollectorRegistry(auto_describe=True)
    FlightMetrics(registry).show(report, count=True)
    return Pusher(config.beamline.name, registry, environ, job="bl931_flight_check").push()

"""Who writes a flight check (the running service, over its socket), the service's flight-check
metrics, and the optional Pushgateway push — against a recording HTTP server on 127.0.0.1.

The Pushgateway's API (prometheus/pushgateway README, "API"): `PUT /metrics/job/<JOB>{/<LABEL>/
<VALUE>}` replaces the group's metrics with the body (Prometheus text format); the gateway answers
200 (or 202). prometheus_client's `push_to_gateway` sends exactly that PUT.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge

from engine.pushgateway import Pusher
from engine.workspace import LocalWorkspace
from tests.conftest import RunCli
from tests.service.helpers import ServiceProcess, metrics_port, sample, wait_for


@contextmanager
def gateway(status: int = 200) -> Iterator[list[tuple[str, str, str]]]:
    """A tiny Pushgateway stand-in on 127.0.0.1 recording (method, path, body) of each push."""
    pushes: list[tuple[str, str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            pushes.append(("PUT", self.path, body.decode()))
            self.send_response(status)
            self.end_headers()

        do_POST = do_PUT

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        pushes.append(("URL", f"http://127.0.0.1:{server.server_address[1]}", ""))
        yield pushes
    finally:
        server.shutdown()
        server.server_close()


def test_pusher_puts_the_registry_under_the_beamline() -> None:
    registry = CollectorRegistry()
    Gauge("bl931_example", "x", registry=registry).set(3)
    with gateway() as pushes:
        pusher = Pusher("7.3.3", registry, {"PUSHGATEWAY_URL": pushes[0][1]})
        assert pusher.push() is True
    method, path, body = pushes[1]
    assert method == "PUT" and path == "/metrics/job/bl931/beamline/7.3.3"
    assert "bl931_example 3.0" in body and pusher.failures == 0


def test_a_failing_gateway_is_counted_never_raised() -> None:
    registry = CollectorRegistry()
    with gateway(status=500) as pushes:
        pusher = Pusher("9.3.1", registry, {"PUSHGATEWAY_URL": pushes[0][1]})
        assert pusher.push() is False
    # Nobody listens any more: a refused connection is a failure too.
    assert pusher.push() is False
    assert pusher.failures == 2
    assert sample_value(registry, "bl931_pushgateway_failures_total") == 2.0
    assert Pusher("9.3.1", CollectorRegistry(), {}).push() is True  # unset: nothing to do


def sample_value(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name)


def test_a_pass_pushes_and_a_dead_gateway_never_fails_it(
    run_cli: RunCli, workspace: LocalWorkspace, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    ws.write_scan("2026/11/S0001.h5", b"tender" * 100)
    with gateway() as pushes:
        monkeypatch.setenv("PUSHGATEWAY_URL", pushes[0][1])
        done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 0, done.stderr
    (_, path, body) = pushes[1]
    assert path == "/metrics/job/bl931/beamline/9.3.1" and "bl931_passes_total" in body
    with gateway(status=503) as pushes:
        monkeypatch.setenv("PUSHGATEWAY_URL", pushes[0][1])
        done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 0, done.stderr
    assert "Pushgateway" in done.stderr and "failed" in done.stderr


def test_a_running_service_records_the_flight_check(
    run_cli: RunCli, workspace: LocalWorkspace, tmp_path: Path
) -> None:
    """The CLI never writes the store the service owns: its report goes over the socket; the
    service records it, raises the alert and shows it in its metrics."""
    ws = workspace
    ws.write_scan("2026/11/S0001.h5", b"tender" * 100)
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    service = ServiceProcess(
        ws.config_path, "--interval", "3600", "--metrics-port", "0", log_path=tmp_path / "svc.log"
    )
    try:
        port = metrics_port(service)
        wait_for(lambda: Path(f"{ws.state_path}.sock").exists(), what="the decision socket")
        ws.cfs.rename(ws.root / "cfs-away")
        done = run_cli("--flight-check", "--json", config=ws.config_path)
        assert done.returncode == 1, done.stderr
        assert "recorded by the running service" in done.stderr
        with sqlite3.connect(ws.state_path) as db:
            (ok,) = db.execute("SELECT ok FROM flight_checks").fetchone()
            alerts = db.execute(
                "SELECT endpoint FROM alerts WHERE code = 'flight_check_failed'"
            ).fetchall()
        assert ok == 0 and alerts == [("cfs",)]
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        exposition = text.decode()
        assert sample(exposition, "bl931_flight_check_ok") == 0.0
        assert (
            sample(
                exposition, "bl931_flight_check_leg_ok", source="dtn", target="cfs", check="copy"
            )
            == 0.0
        )
        assert sample(exposition, "bl931_flight_checks_total", result="failed") == 1.0
        assert json.loads(done.stdout)["ok"] is False
    finally:
        service.close()

"""`PUSHGATEWAY_URL` with credentials and a query, `PUSHGATEWAY_TIMEOUT_SECONDS`, through the
real CLI and against the real prometheus_client, with a gateway stand-in on 127.0.0.1.

The stand-in answers the way the Pushgateway does behind its web config
(prometheus/exporter-toolkit docs/web-configuration.md, `basic_auth_users`): 401 Unauthorized
with `WWW-Authenticate: Basic` unless the request carries the right `Authorization: Basic …`
header, and otherwise the Pushgateway API's 200 for `PUT /metrics/job/<JOB>/<LABEL>/<VALUE>`
(prometheus/pushgateway README, "API"). prometheus_client's `basic_auth_handler` sends exactly
that header (prometheus_client/exposition.py).
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry

from engine.errors import ConfigError
from engine.pushgateway import Pusher, gateway_settings
from engine.workspace import LocalWorkspace

CLI = [sys.executable, "-m", "bl931tui"]
PASSWORD = "p@ss:w0rd/S3CRET"  # needs percent-encoding in a URL
QUOTED = "p%40ss%3Aw0rd%2FS3CRET"
TOKEN = "T0KEN-S3CRET"


@contextmanager
def guarded_gateway(user: str, password: str) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """Records (path, Authorization) of every PUT; 401 without the right basic credentials."""
    seen: list[tuple[str, str]] = []
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            auth = self.headers.get("Authorization") or ""
            seen.append((self.path, auth))
            if auth != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="pushgateway"')
            else:
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1]), seen
    finally:
        server.shutdown()
        server.server_close()


def cli(ws: LocalWorkspace, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATEWAY_")}
    return subprocess.run(
        [*CLI, "--config", str(ws.config_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, "PYTHONUNBUFFERED": "1", **env},
        stdin=subprocess.DEVNULL,
    )


def test_credentials_go_as_basic_auth_and_the_query_is_kept(workspace: LocalWorkspace) -> None:
    ws = workspace
    ws.write_scan("2026/11/S0001.h5", b"tender" * 100)
    with guarded_gateway("ops", PASSWORD) as (port, seen):
        url = f"http://ops:{QUOTED}@127.0.0.1:{port}/gw?token={TOKEN}"
        done = cli(ws, "--reconcile", "--once", env={"PUSHGATEWAY_URL": url})
        assert done.returncode == 0, done.stderr
        flight = cli(ws, "--flight-check", env={"PUSHGATEWAY_URL": url})
        assert flight.returncode == 0, flight.stderr
    expected = "Basic " + base64.b64encode(f"ops:{PASSWORD}".encode()).decode()
    assert seen == [
        (f"/gw/metrics/job/bl931/beamline/9.3.1?token={TOKEN}", expected),
        (f"/gw/metrics/job/bl931_flight_check/beamline/9.3.1?token={TOKEN}", expected),
    ]
    assert "Pushgateway" not in done.stderr + flight.stderr  # no failure to report


def test_a_refused_password_is_logged_without_it(workspace: LocalWorkspace) -> None:
    ws = workspace
    ws.write_scan("2026/11/S0001.h5", b"tender" * 100)
    with guarded_gateway("ops", "the-right-one") as (port, seen):
        url = f"http://ops:{QUOTED}@127.0.0.1:{port}/?token={TOKEN}"
        done = cli(ws, "--reconcile", "--once", env={"PUSHGATEWAY_URL": url})
    assert done.returncode == 0, done.stderr
    assert len(seen) == 1
    assert f"Pushgateway at http://***@127.0.0.1:{port}/?*** failed" in done.stderr
    assert "401" in done.stderr
    for secret in ("S3CRET", QUOTED, TOKEN):
        assert secret not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PUSHGATEWAY_URL": "http://ops:S3CRET@127.0.0.1:notaport"}, "PUSHGATEWAY_URL"),
        ({"PUSHGATEWAY_URL": "http://ops:S3CRET@/metrics"}, "PUSHGATEWAY_URL"),
        (
            {"PUSHGATEWAY_URL": "http://127.0.0.1:9", "PUSHGATEWAY_TIMEOUT_SECONDS": "soon"},
            "PUSHGATEWAY_TIMEOUT_SECONDS",
        ),
        (
            {"PUSHGATEWAY_URL": "http://127.0.0.1:9", "PUSHGATEWAY_TIMEOUT_SECONDS": "0"},
            "PUSHGATEWAY_TIMEOUT_SECONDS",
        ),
    ],
    ids=["bad-port", "no-host", "timeout-text", "timeout-zero"],
)
def test_malformed_settings_are_a_config_error_before_anything_runs(
    workspace: LocalWorkspace, env: dict[str, str], named: str
) -> None:
    ws = workspace
    ws.write_scan("2026/11/S0001.h5", b"tender" * 100)
    for args in (("--reconcile", "--once"), ("--flight-check",)):
        done = cli(ws, *args, env=env)
        assert done.returncode == 78, (args, done.stderr)
        assert named in done.stderr and "S3CRET" not in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not ws.state_path.exists()  # refused before the pass: nothing ran
    assert list(ws.cfs.rglob("*.h5")) == []


def test_settings_split_and_redact_the_url() -> None:
    settings = gateway_settings({"PUSHGATEWAY_URL": f"ops:{QUOTED}@gw.example:9091?token={TOKEN}"})
    assert settings is not None
    assert settings.gateway == "http://gw.example:9091"
    assert (settings.username, settings.password) == ("ops", PASSWORD)
    assert settings.shown == "http://***@gw.example:9091?***"
    assert settings.timeout == 10.0
    text = f"failed for ops:{QUOTED} and {PASSWORD} with token={TOKEN}"
    assert "S3CRET" not in settings.scrub(text) and TOKEN not in settings.scrub(text)
    assert gateway_settings({"PUSHGATEWAY_URL": "  "}) is None
    bare = gateway_settings(
        {"PUSHGATEWAY_URL": "https://gw:9091/", "PUSHGATEWAY_TIMEOUT_SECONDS": "2.5"}
    )
    assert bare is not None and bare.username is None and bare.query == ""
    assert (bare.gateway, bare.shown, bare.timeout) == ("https://gw:9091/", "https://gw:9091/", 2.5)
    with pytest.raises(ConfigError, match="PUSHGATEWAY_URL"):
        gateway_settings({"PUSHGATEWAY_URL": "http://gw:9091/#frag"})


@contextmanager
def trickling_gateway() -> Iterator[int]:
    """Answers every connection with a status line and then an endless header, a byte at a time
    (`stop.wait(0.02)` between bytes): no socket read ever times out, only a whole-push deadline
    ends it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not stop.wait(0.02):
                conn.sendall(b"a")

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        server.close()


def test_a_trickle_is_given_up_counted_and_never_piles_up() -> None:
    registry = CollectorRegistry()
    with trickling_gateway() as port:
        env = {"PUSHGATEWAY_URL": f"http://127.0.0.1:{port}", "PUSHGATEWAY_TIMEOUT_SECONDS": "1"}
        pusher = Pusher("9.3.1", registry, env)
        assert pusher.push() is False
        lingering = pusher._lingering
        assert lingering is not None and lingering.is_alive()
        # The next push does not open a second stuck connection while the first lingers.
        assert pusher.push() is False
        assert pusher._lingering is lingering
        assert [t for t in threading.enumerate() if t.name == "bl931-pushgateway"] == [lingering]
    assert pusher.failures == 2 and pusher.pushes == 0
    assert registry.get_sample_value("bl931_pushgateway_failures_total") == 2.0

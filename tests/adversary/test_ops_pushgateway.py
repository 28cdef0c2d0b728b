"""Adversary: `PUSHGATEWAY_URL` (docs/operations.md "Pushgateway"): metrics pushed after each
pass; a gateway that is down, slow (the whole push bounded by `PUSHGATEWAY_TIMEOUT_SECONDS`) or
refuses never fails a pass; secrets never leak. Driven through the real `bl931tui --reconcile
--once` / `--flight-check` against sockets on 127.0.0.1 that misbehave the way a broken gateway
(or a proxy in front of one) does.

The slow-gateway tests set a tiny push deadline (0.5 s) against a gateway that never finishes
answering: they depend on no timing beyond the subprocess's generous safety net.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.workspace import LocalWorkspace, create_workspace
from tests.service.helpers import ServiceProcess, metrics_port, sample, wait_for

CLI = [sys.executable, "-m", "bl931tui"]
SECRET = "s3cretPushPW"


PUSH_DEADLINE = {"PUSHGATEWAY_TIMEOUT_SECONDS": "0.5"}


def cli(
    ws: LocalWorkspace,
    *args: str,
    gateway: str | None,
    timeout: float = 120,
    extra: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATEWAY_")}
    if gateway is not None:
        env["PUSHGATEWAY_URL"] = gateway
    env.update(extra or {})
    return subprocess.run(
        [*CLI, "--config", str(ws.config_path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ws(tmp_path: Path) -> LocalWorkspace:
    w = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0)
    w.write_scan("2026/11/ALS-1/scan_0001.h5", b"scan")
    return w


class BadGateway:
    """Accepts connections and then `hang`s (reads the request, never answers) or `trickle`s (an
    HTTP status line, then one byte of an endless header every `interval` seconds: no single
    read ever waits long, so only a deadline on the whole push ends it)."""

    def __init__(self, mode: str, interval: float = 0.05) -> None:
        self.mode, self.interval = mode, interval
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.port = int(self.server.getsockname()[1])
        self.stop = threading.Event()
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(1)
            with contextlib.suppress(OSError):
                conn.recv(65536)
            self.requests += 1
            if self.mode == "trickle":
                try:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    while not self.stop.wait(self.interval):
                        conn.sendall(b"a")
                except OSError:
                    return
            else:
                self.stop.wait(120)

    def close(self) -> None:
        self.stop.set()
        self.server.close()


@pytest.fixture
def gateway(request: pytest.FixtureRequest) -> Iterator[BadGateway]:
    bad = BadGateway(request.param)
    yield bad
    bad.close()


def test_a_refusing_gateway_never_fails_the_pass(ws: LocalWorkspace) -> None:
    cli(ws, "--reconcile", "--once", gateway=None)  # the first pass: store, markers, copies
    baseline = cli(ws, "--reconcile", "--once", gateway=None)
    pushed = cli(ws, "--reconcile", "--once", gateway=f"http://127.0.0.1:{closed_port()}")
    assert pushed.returncode == baseline.returncode, pushed.stderr
    assert "pushing metrics to the Pushgateway" in pushed.stderr
    flight = cli(ws, "--flight-check", gateway=f"http://127.0.0.1:{closed_port()}")
    assert flight.returncode == 0, flight.stderr
    assert "pushing metrics to the Pushgateway" in flight.stderr


@pytest.mark.parametrize("gateway", ["hang", "trickle"], indirect=True)
def test_a_slow_gateway_is_given_up_and_the_pass_carries_on(
    ws: LocalWorkspace, gateway: BadGateway
) -> None:
    """A gateway that never answers, or trickles an endless answer (each read gets a byte, so a
    per-read timeout never fires): the push is given up at its deadline, logged, and the pass
    ends with its usual exit code. Safety net only: 120 s."""
    cli(ws, "--reconcile", "--once", gateway=None)
    baseline = cli(ws, "--reconcile", "--once", gateway=None)
    pushed = cli(
        ws,
        "--reconcile",
        "--once",
        gateway=f"http://127.0.0.1:{gateway.port}",
        extra=PUSH_DEADLINE,
    )
    assert gateway.requests >= 1
    assert pushed.returncode == baseline.returncode, pushed.stderr
    assert "pushing metrics to the Pushgateway" in pushed.stderr
    assert "PUSHGATEWAY_TIMEOUT_SECONDS" in pushed.stderr, pushed.stderr


@pytest.mark.parametrize("gateway", ["trickle"], indirect=True)
def test_a_trickling_gateway_never_holds_the_service_and_is_counted(
    ws: LocalWorkspace, gateway: BadGateway, tmp_path: Path
) -> None:
    """The service's passes go on while a gateway trickles; each given-up push is counted in
    `bl931_pushgateway_failures_total` on the pull endpoint."""
    cli(ws, "--reconcile", "--once", gateway=None)
    service = ServiceProcess(
        ws.config_path,
        "--interval",
        "3600",
        "--metrics-port",
        "0",
        log_path=tmp_path / "svc.log",
        env={"PUSHGATEWAY_URL": f"http://127.0.0.1:{gateway.port}", **PUSH_DEADLINE},
    )
    try:
        port = metrics_port(service)
        service.wait_log("pushing metrics to the Pushgateway", timeout=120)

        def counted() -> bool:
            url = f"http://127.0.0.1:{port}/metrics"
            text = urllib.request.urlopen(url, timeout=10).read().decode()
            return (sample(text, "bl931_pushgateway_failures_total") or 0.0) >= 1.0

        wait_for(counted, timeout=120, what="the failed push counted")
        assert service.proc.poll() is None
        assert service.passes() >= 1
    finally:
        service.close()


@pytest.mark.parametrize(
    "url",
    [f"http://ops:{SECRET}@127.0.0.1:PORT", f"http://127.0.0.1:PORT/?token={SECRET}"],
    ids=["userinfo", "query"],
)
def test_a_secret_in_the_gateway_url_never_reaches_the_logs(ws: LocalWorkspace, url: str) -> None:
    gateway = url.replace("PORT", str(closed_port()))
    for args in (("--reconcile", "--once"), ("--flight-check",)):
        done = cli(ws, *args, gateway=gateway)
        assert "Pushgateway" in done.stderr, done.stderr
        assert SECRET not in done.stderr + done.stdout, args

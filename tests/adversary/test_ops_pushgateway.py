"""Adversary: `PUSHGATEWAY_URL` (docs/operations.md "Pushgateway"): metrics pushed after each
pass; a gateway that is down, slow (10 s timeout) or refuses never fails a pass; secrets never
leak. Driven through the real `bl931tui --reconcile --once` / `--flight-check` against sockets on
127.0.0.1 that misbehave the way a broken gateway (or a proxy in front of one) does.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.workspace import LocalWorkspace, create_workspace

CLI = [sys.executable, "-m", "bl931tui"]
SECRET = "s3cretPushPW"


def cli(
    ws: LocalWorkspace, *args: str, gateway: str | None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PUSHGATEWAY_URL"}
    if gateway is not None:
        env["PUSHGATEWAY_URL"] = gateway
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
    HTTP status line, then one byte of an endless header every second: no single read ever
    waits 10 s)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
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
                    while not self.stop.wait(1.0):
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


@pytest.mark.parametrize("gateway", ["hang"], indirect=True)
def test_a_hanging_gateway_is_given_up_and_the_pass_carries_on(
    ws: LocalWorkspace, gateway: BadGateway
) -> None:
    cli(ws, "--reconcile", "--once", gateway=None)
    baseline = cli(ws, "--reconcile", "--once", gateway=None)
    pushed = cli(
        ws, "--reconcile", "--once", gateway=f"http://127.0.0.1:{gateway.port}", timeout=60
    )
    assert gateway.requests >= 1
    assert pushed.returncode == baseline.returncode, pushed.stderr
    assert "pushing metrics to the Pushgateway" in pushed.stderr


@pytest.mark.xfail(
    strict=True,
    reason="the 10 s push timeout is per socket read: a gateway that trickles its answer (one "
    "byte a second) holds `--reconcile --once` (and each service pass) indefinitely",
)
@pytest.mark.parametrize("gateway", ["trickle"], indirect=True)
def test_a_trickling_gateway_is_given_up_and_the_pass_carries_on(
    ws: LocalWorkspace, gateway: BadGateway
) -> None:
    cli(ws, "--reconcile", "--once", gateway=None)
    try:
        done = cli(
            ws, "--reconcile", "--once", gateway=f"http://127.0.0.1:{gateway.port}", timeout=45
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the pass was still pushing after 45 s (the promise is a 10 s timeout)")
    assert done.returncode in (0, 2), done.stderr


@pytest.mark.xfail(
    strict=True,
    reason="PUSHGATEWAY_URL is logged verbatim on a failed push: a password in its userinfo "
    "(http://user:PASSWORD@host) or in its query appears in the journal",
)
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

"""The service's decision socket: operators' decisions travel to the one writer of the store.

A Unix stream socket beside the state store (`<state path>.sock`). Each connection carries one
request — a JSON object on one line — and gets one JSON reply line. The server asks the kernel
who connected (`SO_PEERCRED`: the peer's pid, uid and gid at `connect()`), so the caller's
identity is never something the caller says. Requests are served one at a time, in order of
arrival: two operators deciding on the same action are recorded in the order they came.

Unix socket paths are limited to about 107 bytes; a longer path is reached through the
`/proc/self/fd/N/` link of its open folder (Linux), so any state path works.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
CONNECTION_TIMEOUT = 10.0  # a client that sends nothing is dropped after this long
REPLY_TIMEOUT = 120.0  # the service may wait on the store's write lock during a pass
_SUN_PATH_MAX = 107
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True, slots=True)
class Peer:
    """The connecting process as the kernel reports it."""

    pid: int
    uid: int
    gid: int


Handler = Callable[[dict[str, Any], Peer], dict[str, Any]]


def socket_path(state_path: Path) -> Path:
    return Path(f"{state_path}.sock")


def peer_of(conn: socket.socket) -> Peer:
    """The kernel's credentials of the process at the other end of a Unix socket."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(raw)
    return Peer(pid, uid, gid)


@contextlib.contextmanager
def _addressable(path: Path) -> Iterator[str]:
    """An address for `path` that fits in `sun_path`."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


class DecisionServer:
    """Accepts decisions on the socket and hands each, with its caller, to `handler`.

    Args:
        path: where the socket goes (beside the state store).
        handler: answers a request dict for a peer with a reply dict; runs in the server thread.
        group: gid the socket is given (the readers group), so its members may connect.
    """

    def __init__(self, path: Path, handler: Handler, *, group: int | None = None) -> None:
        self.path = path
        self.handler = handler
        self.group = group
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> DecisionServer:
        self._remove_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with _addressable(self.path) as address:
                sock.bind(address)
            os.chmod(self.path, 0o660)
            if self.group is not None:
                os.chown(self.path, -1, self.group)
            sock.listen(16)
            sock.settimeout(0.2)  # how often the loop checks for a stop
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="bl931-decisions", daemon=True)
        self._thread.start()
        log.info("taking operator decisions on %s", self.path)
        return self

    def _remove_stale(self) -> None:
        """A socket left by a dead service goes (the owner lock says none runs); nothing else."""
        try:
            info = self.path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            from engine.errors import NeedsHumanError

            raise NeedsHumanError(f"{self.path} exists and is not a socket; remove it by hand")
        self.path.unlink()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            with conn:
                try:
                    self._answer(conn)
                except Exception:
                    log.exception("answering a decision request failed")

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(CONNECTION_TIMEOUT)
        peer = peer_of(conn)
        try:
            request = json.loads(_read_line(conn))
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
        except (ValueError, OSError) as exc:
            reply: dict[str, Any] = {"ok": False, "error": "bad_request", "message": str(exc)}
        else:
            reply = self.handler(request, peer)
        conn.sendall(json.dumps(reply).encode() + b"\n")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> DecisionServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            raise ValueError(f"request longer than {MAX_REQUEST_BYTES} bytes")
    return data.split(b"\n", 1)[0]


class NoService(Exception):
    """Nothing listens on the decision socket: no service runs (or it predates the socket)."""


def ask(path: Path, request: dict[str, Any], *, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
    """Send one request to the running service and return its reply.

    Raises:
        NoService: no socket there, or nobody listening on it.
        PermissionError: the socket (or its folder) may not be reached by this user.
        OSError: the service went away mid-request (the decision may or may not be recorded).
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    with sock:
        try:
            with _addressable(path) as address:
                sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NoService(str(exc)) from None
        sock.sendall(json.dumps(request).encode() + b"\n")
        line = _read_line(sock)
    if not line:
        raise OSError(f"the service closed {path} without answering")
    reply = json.loads(line)
    if not isinstance(reply, dict):
        raise OSError(f"the service answered {line[:80]!r}")
    return reply

"""The decision socket: a real Unix socket server in a thread, the real `SO_PEERCRED` check.

The test's own uid is configured in or out of `[approval] approvers`; the caller is this
process (`ask`), the real CLI in a child process (`bl931tui --approve`), and — where the tests
run as root — a child process running as another user (`nobody`), so the kernel, not the
caller, says who is asking.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.approvals import approvals_for
from engine.clock import FakeClock
from engine.config import Config
from engine.decision_socket import DecisionServer, NoService, Peer, ask, socket_path
from engine.errors import NeedsHumanError
from engine.model import ActionKind
from engine.operator_decisions import DecisionDesk
from engine.workspace import create_workspace
from tests.engine_world import open_engine

SCAN = "2026/11/scan_0001.h5"
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ME = pwd.getpwuid(os.geteuid()).pw_name
CLI = [sys.executable, "-m", "bl931tui"]


class Service:
    """A store with a delete awaiting approval, and its decision socket served from a thread."""

    def __init__(self, root: Path, approvers: list[str] | None) -> None:
        ws = create_workspace(root, dtn_keep_days=0, cfs_keep_days=1000)
        ws.write_scan(SCAN, os.urandom(4096), mtime=START.timestamp() - 3600)
        self.ws = ws
        self.clock = FakeClock(START)
        self.config: Config = ws.config()
        self.set_approvers(approvers)
        engine = open_engine(self.config, clock=self.clock)
        self.store = engine.store
        try:
            reconciler = engine.reconciler
            self.delete_id = ""
            for _ in range(4):
                report = reconciler.reconcile_once(drain=True)
                self.clock.advance(minutes=1)
                deletes = [a for a in report.plan.actions if a.kind is ActionKind.DELETE]
                if deletes:
                    self.delete_id = deletes[0].id
                    break
            assert self.delete_id, "the dtn prune was never planned"
        finally:
            engine.backends.close()
        self.peers: list[Peer] = []
        desk = DecisionDesk(self.store, lambda: self.config, self.clock)

        def handler(request: dict[str, Any], peer: Peer) -> dict[str, Any]:
            self.peers.append(peer)
            return desk(request, peer)

        self.server = DecisionServer(socket_path(self.config.state.path), handler)

    def set_approvers(self, approvers: list[str] | None) -> None:
        approval = self.config.approval.model_copy(update={"approvers": approvers})
        self.config = self.config.model_copy(update={"approval": approval})

    def decisions(self) -> dict[str, tuple[str, str]]:
        return {aid: (d[0], d[1]) for aid, d in self.store.decisions().items()}

    def close(self) -> None:
        self.server.close()
        self.store.close()


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Any]:
    made: list[Service] = []

    def make(approvers: list[str] | None, root: Path | None = None) -> Service:
        service = Service(root or tmp_path / f"ws{len(made)}", approvers)
        made.append(service)
        service.server.start()
        return service

    yield make
    for service in made:
        service.close()


def approve(service: Service, action_id: str | None = None) -> dict[str, Any]:
    request = {"op": "approve", "ids": [action_id or service.delete_id], "note": ""}
    return ask(service.server.path, request)


def test_the_kernel_names_the_caller(make_service: Any) -> None:
    service = make_service([ME])
    approve(service)
    assert service.peers == [Peer(os.getpid(), os.geteuid(), os.getegid())]


def test_an_approver_is_recorded_under_the_kernels_name(
    make_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "someone-else")
    monkeypatch.setenv("LOGNAME", "someone-else")
    service = make_service(["alice", ME])
    reply = approve(service)
    assert reply["ok"] and reply["by"] == ME and reply["via"] == "service"
    assert reply["approvals"] == {service.delete_id: [ME]}
    assert service.decisions()[service.delete_id] == ("approve", ME)
    (approval,) = approvals_for(service.store, service.delete_id)
    assert (approval.by, approval.uid, approval.via) == (ME, os.geteuid(), "service")


def test_a_caller_who_is_not_an_approver_is_refused_and_the_attempt_recorded(
    make_service: Any,
) -> None:
    service = make_service(["alice", "@bl931-ops"])
    reply = approve(service)
    assert reply == {
        "ok": False,
        "error": "not_approver",
        "message": f"{ME} (uid {os.geteuid()}) is not an approver "
        "([approval] approvers = alice, @bl931-ops)",
    }
    assert service.delete_id not in service.decisions()
    (refused,) = [e for e in service.store.events() if e["kind"] == "decision.refused"]
    assert refused["data"] == {
        "op": "approve",
        "ids": [service.delete_id],
        "uid": os.geteuid(),
        "pid": os.getpid(),
    }


def test_the_services_config_counts_and_a_reload_changes_it(make_service: Any) -> None:
    service = make_service(["alice"])
    assert not approve(service)["ok"]
    service.set_approvers(["alice", ME])  # as a SIGHUP reload would
    assert approve(service)["ok"]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"not json\n", "Expecting value"),
        (b"[1, 2]\n", "a request is a JSON object"),
        (b'{"op": "delete-everything", "ids": ["x"]}\n', "op must be one of"),
        (b'{"op": "approve", "ids": []}\n', "ids must be a non-empty list"),
        (b'{"op": "approve", "ids": ["../../etc"]}\n', "action ids are hexadecimal"),
        (b'{"op": "hold", "ids": ["a", "b"], "note": "x"}\n', "hold takes exactly one id"),
    ],
)
def test_a_malformed_request_records_nothing(make_service: Any, line: bytes, words: str) -> None:
    service = make_service([ME])
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(service.server.path))
        sock.sendall(line)
        reply = json.loads(sock.makefile("rb").readline())
    assert reply["ok"] is False and reply["error"] == "bad_request"
    assert words in reply["message"]
    assert service.decisions() == {}


def test_a_state_path_too_long_for_a_socket_address_still_works(
    make_service: Any, tmp_path: Path
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    service = make_service([ME], root=deep)
    assert len(os.fsencode(service.server.path)) > 108
    assert approve(service)["ok"]


def test_nothing_listening_is_no_service(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite.sock"
    with pytest.raises(NoService):
        ask(path, {"op": "approve", "ids": ["x"]})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # a socket left by a service that died
    with pytest.raises(NoService):
        ask(path, {"op": "approve", "ids": ["x"]})


def test_a_stale_socket_is_replaced_and_anything_else_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))
    with DecisionServer(path, lambda request, peer: {"ok": True, "uid": peer.uid}):
        assert ask(path, {})["uid"] == os.geteuid()
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
    assert not path.exists(), "the socket stays behind after the server closed"
    path.write_text("someone's file")
    with pytest.raises(NeedsHumanError, match="exists and is not a socket"):
        DecisionServer(path, lambda request, peer: {}).start()
    assert path.read_text() == "someone's file"


def cli_approve(service: Service, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--config", str(service.ws.config_path), "--approve", service.delete_id],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **env},
    )


def test_the_real_cli_is_refused_when_its_uid_is_not_an_approver(make_service: Any) -> None:
    service = make_service(["alice"])
    # The CLI reads a config (the workspace's) with no approvers at all: that changes nothing.
    done = cli_approve(service, {"USER": "alice", "LOGNAME": "alice"})
    assert done.returncode == 1
    assert f"refused: {ME} (uid {os.geteuid()}) is not an approver" in done.stderr
    assert service.decisions() == {}
    assert [p.uid for p in service.peers] == [os.geteuid()]


def test_the_real_cli_is_recorded_when_its_uid_is_an_approver(make_service: Any) -> None:
    service = make_service([ME])
    done = cli_approve(service, {"USER": "alice", "LOGNAME": "alice"})
    assert done.returncode == 0, done.stderr
    assert f"as {ME}" in done.stdout and "recorded by the running service" in done.stdout
    assert service.decisions() == {service.delete_id: ("approve", ME)}
    assert service.peers[0].pid != os.getpid()  # the CLI's own process connected


SETPRIV = shutil.which("setpriv")
AS_OTHER_USER = [SETPRIV or "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
SYSTEM_PYTHON = "/usr/bin/python3"
OTHER_UID = 65534  # nobody


def as_nobody(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Send a request from a process the kernel knows as uid 65534 (`$USER` says root)."""
    client = (
        "import json, socket, sys\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "s.connect(sys.argv[1])\n"
        "s.sendall(json.dumps(json.loads(sys.argv[2])).encode() + b'\\n')\n"
        "print(s.makefile('rb').readline().decode())\n"
    )
    done = subprocess.run(
        [*AS_OTHER_USER, SYSTEM_PYTHON, "-c", client, str(path), json.dumps(request)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"USER": "root", "LOGNAME": "root", "PATH": "/usr/bin:/bin"},
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.fixture
def shared_root() -> Iterator[Path]:
    """A folder another user may reach (pytest's own temp folders are private to root)."""
    root = Path(tempfile.mkdtemp(prefix="bl931-peer-"))
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


@pytest.mark.skipif(
    os.geteuid() != 0 or SETPRIV is None or not os.access(SYSTEM_PYTHON, os.X_OK),
    reason="needs root, setpriv and /usr/bin/python3 to run a client as another user",
)
def test_another_user_is_named_by_the_kernel_and_two_make_a_second_approval(
    make_service: Any, shared_root: Path
) -> None:
    service = make_service(["root"], root=shared_root / "ws")
    os.chmod(service.ws.root / "state", 0o755)
    os.chown(service.server.path, -1, grp.getgrgid(OTHER_UID).gr_gid)  # the readers group
    request = {"op": "approve", "ids": [service.delete_id], "note": "looks fine"}
    refused = as_nobody(service.server.path, request)
    assert refused["error"] == "not_approver"
    assert refused["message"].startswith(f"nobody (uid {OTHER_UID}) is not an approver")
    assert service.decisions() == {}

    service.set_approvers(["root", "nobody"])
    assert as_nobody(service.server.path, request)["by"] == "nobody"
    assert approve(service)["approvals"] == {service.delete_id: ["nobody", "root"]}
    assert [(a.by, a.uid) for a in approvals_for(service.store, service.delete_id)] == [
        ("nobody", OTHER_UID),
        ("root", 0),
    ]

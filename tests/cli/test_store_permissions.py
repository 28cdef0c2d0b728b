"""Only the service user writes the state store; files others could write are reported, not used.

Through the real CLI: the store a pass creates is 0640 (its group the `readers_group`), the
decision socket 0660; a store, its folder or the local catalog that someone else could write
makes `--reconcile` refuse to start (exit 1, naming path and mode) and the audit report it.
"""

from __future__ import annotations

import grp
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engine.workspace import LocalWorkspace, create_workspace
from tests.cli.test_approvers import set_approval
from tests.service.helpers import ServiceProcess, wait_for

CLI = [sys.executable, "-m", "bl931tui"]
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files another group")


def cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def ws(tmp_path: Path) -> LocalWorkspace:
    return create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0)


def test_a_new_store_is_written_by_its_owner_only(ws: LocalWorkspace) -> None:
    old = os.umask(0o002)  # a user-private-group umask: files would come out 0664
    try:
        done = cli("--reconcile", "--once", config=ws.config_path)
    finally:
        os.umask(old)
    assert done.returncode == 0, done.stderr
    assert mode(ws.state_path) == 0o640
    # Whoever can open the lock could take it and keep the service from starting.
    assert mode(Path(f"{ws.state_path}.lock")) == 0o600


@AS_ROOT
def test_the_store_and_socket_belong_to_the_readers_group(
    ws: LocalWorkspace, tmp_path: Path
) -> None:
    set_approval(ws.config_path, readers_group="nogroup")
    nogroup = grp.getgrnam("nogroup").gr_gid
    service = ServiceProcess(
        ws.config_path, "--interval", "3600", log_path=tmp_path / "service.log"
    )
    try:
        service.wait_log(r"pass done in")
        sock = Path(f"{ws.state_path}.sock")
        wait_for(sock.exists, what="the decision socket")
        for path in (ws.state_path, Path(f"{ws.state_path}-wal"), Path(f"{ws.state_path}-shm")):
            assert (mode(path), path.stat().st_gid) == (0o640, nogroup), path
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert (mode(sock), sock.stat().st_gid) == (0o660, nogroup)
    finally:
        service.close()


def test_a_world_writable_store_is_reported_not_used(ws: LocalWorkspace) -> None:
    assert cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    os.chmod(ws.state_path, 0o666)
    ws.write_scan("2026/new.h5", b"new bytes")
    done = cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 1
    assert f"{ws.state_path} is mode 0666: every user may write it" in done.stderr
    assert "needs_human" in done.stderr
    assert not (ws.cfs / "2026/new.h5").exists(), "a pass ran on a store anyone could write"
    audit = cli("--dry-run", "--json", config=ws.config_path)
    assert audit.returncode == 1
    errors = json.loads(audit.stdout)["errors"]
    assert any("mode 0666" in e["message"] and e["class"] == "needs_human" for e in errors)


def test_a_world_writable_catalog_is_reported_not_used(ws: LocalWorkspace) -> None:
    ws.write_scan("2026/a.h5", b"bytes")
    for _ in range(2):
        assert cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    catalog = ws.root / "state" / "catalog.json"
    os.chmod(catalog, 0o646)
    done = cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 1
    assert f"{catalog} is mode 0646: every user may write it" in done.stderr


@AS_ROOT
def test_a_store_folder_a_group_may_write_is_reported(ws: LocalWorkspace) -> None:
    folder = ws.state_path.parent
    os.chown(folder, -1, grp.getgrnam("nogroup").gr_gid)
    os.chmod(folder, 0o775)
    done = cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 1
    assert f"{folder} is mode 0775 with group nogroup: its members may write it" in done.stderr
    assert not ws.state_path.exists()

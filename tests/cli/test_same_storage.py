"""Two endpoints are never the same storage: config rejects what the paths show (exit 78), the
pass reports what only the mounted filesystems show (a bind mount) as a needs-human error, and
nothing is ever deleted on the strength of a "copy" that is the very file being deleted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.identity import MARKER_NAME
from engine.workspace import LocalWorkspace

SCAN = "2026/11/ALS-1/scan_0001.h5"
CFS_LOCAL = '[endpoints.cfs]\nkind = "local"\npath = "cfs"\n'
DTN_LOCAL = '[endpoints.dtn]\nkind = "local"\npath = "dtn"\n'

# A beamline with one copy only: if the cfs "copy" is the dtn file itself, the dtn prune
# deletes the scan's only bytes.
TWO_ENDPOINTS = """\
[state]
path = "state/state.sqlite"
[inventory]
endpoint = "dtn"
quiet_seconds = 0
watch = "off"
[endpoints.dtn]
kind = "local"
path = "dtn"
[endpoints.cfs]
kind = "local"
path = "cfs"
[[copy]]
from = "dtn"
to = "cfs"
[retention.dtn]
keep_days = 0
delete_requires = ["cfs"]
[approval]
required_for = ["delete"]
[catalog]
kind = "none"
"""


def with_endpoint(ws: LocalWorkspace, old: str, new: str) -> None:
    text = ws.config_path.read_text("utf-8")
    assert old in text
    ws.config_path.write_text(text.replace(old, new), "utf-8")


def assert_config_error_naming(run_cli, ws: LocalWorkspace, *keys: str) -> None:  # type: ignore[no-untyped-def]
    for mode in (["--dry-run", "--json"], ["--reconcile", "--once"]):
        done = run_cli(*mode, config=ws.config_path)
        assert done.returncode == 78, (mode, done.returncode, done.stderr)
        assert done.stdout == ""
        for key in keys:
            assert key in done.stderr, done.stderr
    assert not ws.state_path.exists(), "a rejected config still opened a state store"


@pytest.mark.parametrize(
    "cfs_path",
    ["dtn", "./dtn/", "../ws/dtn", "ABSOLUTE"],
    ids=["same", "dot-slash", "dotdot", "absolute"],
)
def test_cfs_at_the_dtn_path_is_a_config_error_naming_both_keys(
    run_cli, workspace: LocalWorkspace, cfs_path: str
) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    ws.write_scan(SCAN, b"only copy")
    path = str(ws.dtn) if cfs_path == "ABSOLUTE" else cfs_path
    with_endpoint(ws, CFS_LOCAL, f'[endpoints.cfs]\nkind = "local"\npath = "{path}"\n')
    assert_config_error_naming(run_cli, ws, "endpoints.cfs.path", "endpoints.dtn.path")
    assert (ws.dtn / SCAN).read_bytes() == b"only copy"


def test_cfs_a_symlink_to_dtn_is_a_config_error(run_cli, workspace: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    ws.write_scan(SCAN, b"only copy")
    ws.cfs.rmdir()
    ws.cfs.symlink_to(ws.dtn, target_is_directory=True)
    assert_config_error_naming(run_cli, ws, "endpoints.cfs.path", "endpoints.dtn.path")
    assert (ws.dtn / SCAN).read_bytes() == b"only copy"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (CFS_LOCAL, '[endpoints.cfs]\nkind = "local"\npath = "dtn/cfs-copies"\n'),
        (DTN_LOCAL, '[endpoints.dtn]\nkind = "local"\npath = "cfs/raw"\n'),
    ],
    ids=["cfs-inside-dtn", "dtn-inside-cfs"],
)
def test_one_root_nested_inside_another_is_a_config_error(
    run_cli, workspace: LocalWorkspace, old: str, new: str
) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    with_endpoint(ws, old, new)
    assert_config_error_naming(run_cli, ws, "endpoints.cfs.path", "endpoints.dtn.path")


def test_a_root_nested_through_a_symlinked_parent_is_a_config_error(
    run_cli, workspace: LocalWorkspace
) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    (ws.root / "elsewhere").symlink_to(ws.dtn, target_is_directory=True)
    with_endpoint(ws, CFS_LOCAL, '[endpoints.cfs]\nkind = "local"\npath = "elsewhere/copies"\n')
    assert_config_error_naming(run_cli, ws, "endpoints.cfs.path", "endpoints.dtn.path")


def test_sibling_roots_sharing_a_name_prefix_are_fine(run_cli, workspace: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    (ws.root / "dtn-copies").mkdir()
    with_endpoint(ws, CFS_LOCAL, '[endpoints.cfs]\nkind = "local"\npath = "dtn-copies"\n')
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert done.returncode == 0, done.stderr


# ---- bind mounts: only the mounted filesystems can tell ------------------------------------


def _can_bind_mount() -> bool:
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --bind / /mnt"], capture_output=True, timeout=30
    )
    return probe.returncode == 0


needs_bind_mount = pytest.mark.skipif(
    not _can_bind_mount(), reason="needs root and `unshare -m` to bind-mount in a private namespace"
)


def bound_cli(
    source: Path, mount_point: Path, config: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a private mount namespace where `source` is bind-mounted on
    `mount_point` (nothing outside the child process ever sees the mount)."""
    script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
    argv = ["unshare", "-m", "sh", "-c", script, "sh", str(source), str(mount_point)]
    argv += [sys.executable, "-m", "bl931tui", "--config", str(config), *args]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
    )


@needs_bind_mount
@pytest.mark.parametrize(
    "source",
    ["dtn", "dtn/sub", "."],
    ids=["cfs-is-dtn", "cfs-inside-dtn", "dtn-inside-cfs"],
)
def test_cfs_bind_mounted_from_dtn_is_a_runtime_error_and_nothing_is_deleted(
    tmp_path: Path, source: str
) -> None:
    root = tmp_path / "bl"
    for name in ("dtn/sub", "cfs", "state"):
        (root / name).mkdir(parents=True)
    config = root / "bl931.toml"
    config.write_text(TWO_ENDPOINTS, "utf-8")
    scans = [SCAN, f"sub/{SCAN}"]
    for scan in scans:
        (root / "dtn" / scan).parent.mkdir(parents=True, exist_ok=True)
        (root / "dtn" / scan).write_bytes(b"the only bytes")
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return bound_cli((root / source).resolve(), root / "cfs", config, *args)

    audit = cli("--dry-run", "--json")
    assert audit.returncode == 1, (audit.returncode, audit.stdout, audit.stderr)
    doc = json.loads(audit.stdout)
    errors = {e["endpoint"]: e for e in doc["errors"]}
    assert set(errors) == {"dtn", "cfs"}
    assert all(e["class"] == "needs_human" for e in errors.values())
    assert "same storage" in errors["cfs"]["message"] and "dtn" in errors["cfs"]["message"]
    assert doc["actions"] == []  # nothing is copied into, or deleted from, either

    for _ in range(3):
        done = cli("--reconcile", "--once")
        assert done.returncode == 1, done.stderr  # a pass with errors
        cli("--approve-all", "--yes")
    for scan in scans:
        assert (root / "dtn" / scan).read_bytes() == b"the only bytes"
    assert "delete.done" not in _event_kinds(root / "state" / "state.sqlite")
    # No copies grew anywhere (an endpoint identity marker may have been written at a root).
    after = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if "state" not in p.parts and p.name != MARKER_NAME
    )
    assert after == [p for p in before if "state" not in p.split("/")]


def _event_kinds(state: Path) -> list[str]:
    from engine.state import StateStore

    store = StateStore(state, readonly=True)
    return [e["kind"] for e in store.events(limit=10_000)]


def test_a_copy_that_is_the_deleted_file_itself_never_lets_the_prune_run(
    run_cli, workspace: LocalWorkspace
) -> None:  # type: ignore[no-untyped-def]
    """The roots differ, but the cfs "copy" is a hard link to the dtn file: one file, no second
    copy (a rewrite of either is a rewrite of both). The last look compares device and inode."""
    ws = workspace
    ws.write_scan(SCAN, os.urandom(2048), mtime=1_700_000_000)
    for _ in range(3):
        assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    (ws.cfs / SCAN).unlink()
    os.link(ws.dtn / SCAN, ws.cfs / SCAN)  # same bytes, same mtime: the listing cannot tell
    audit = json.loads(run_cli("--dry-run", "--json", config=ws.config_path).stdout)
    deletes = [a for a in audit["actions"] if a["kind"] == "delete"]
    assert [d["target"] for d in deletes] == ["dtn"]
    assert run_cli("--approve", deletes[0]["id"], config=ws.config_path).returncode == 0

    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0

    assert (ws.dtn / SCAN).exists(), "the dtn file went on the strength of a copy that is itself"
    from engine.state import StateStore

    events = StateStore(ws.state_path, readonly=True).events(scan=SCAN, limit=10_000)
    skipped = [e for e in events if e["kind"] == "delete.recheck_failed"]
    assert skipped and skipped[-1]["data"]["reason_code"] == "same_storage"
    assert "same file" in skipped[-1]["message"]
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    blocked = json.loads(done.stdout)["blocked"]  # held for a person:
    assert ("delete", "dtn", "needs_attention") in [
        (b["kind"], b["endpoint"], b["reason_code"]) for b in blocked
    ]

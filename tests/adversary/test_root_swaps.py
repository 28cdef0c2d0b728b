"""Adversary: an endpoint's root is swapped *under a running local task* — after every identity
check of the pass, after the executor handed the task to the local mover. A filesystem
unmounted while a copy runs leaves its bare mount point, and the copy's next files would be
written onto the disk below it (and recorded as verified copies that are not on the endpoint);
another filesystem mounted there (another endpoint's marker; for a delete, one holding the same
files, e.g. a backup) would have a delete remove *its* files, or a bare one would have the
delete find nothing and report the scan gone while it is still on the unmounted filesystem.
Also: the sweep of temporary files at start-up deletes `.bl931-*.tmp` files from every local
root, including one where another storage is mounted.

Promise (docs/safety.md, "Is it the right filesystem?"): nothing is written to, deleted from or
relied on at an endpoint that is not provably its storage, for as long as a task runs.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from engine.identity import MARKER_NAME
from engine.workspace import LocalWorkspace, create_workspace
from tests.adversary.versions_cli import approve_everything, file_contents, passes
from tests.conftest import RunCli

INJECT = Path(__file__).parent / "mount_inject"
DATA = {f"2026/11/s{i}.h5": os.urandom(2000 + i) for i in range(3)}


def with_inject(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")])
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def evidence_at(ws: LocalWorkspace, endpoint: str) -> set[str]:
    with sqlite3.connect(f"file:{ws.state_path}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT scan FROM evidence WHERE endpoint = ?", (endpoint,))
        return {r[0] for r in rows}


def event_kinds(ws: LocalWorkspace, scan: str) -> list[str]:
    with sqlite3.connect(f"file:{ws.state_path}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT kind FROM events WHERE scan = ? ORDER BY rowid", (scan,))
        return [r[0] for r in rows]


def remount(root: Path) -> None:
    """Take away whatever is at `root` now, put the endpoint's own filesystem back."""
    shutil.rmtree(root)
    os.rename(f"{root}.away", root)


def not_engine_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.name != MARKER_NAME)


@pytest.mark.parametrize("mounted", ["bare mount point", "foreign marker"])
def test_a_copy_task_stops_writing_when_its_target_is_unmounted_mid_task(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mounted: str
) -> None:
    ws = create_workspace(tmp_path / "ws")
    for rel, data in DATA.items():
        ws.write_scan(rel, data)
    passes_env = {"BL931_UNMOUNT_AFTER_PLACE": str(ws.cfs)}
    if mounted == "foreign marker":  # hpss's filesystem, mounted at cfs's path
        passes_env["BL931_SWAP_MARKER"] = str(ws.hpss / MARKER_NAME)
    with monkeypatch.context() as patch:
        with_inject(patch, **passes_env)
        done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert Path(f"{ws.cfs}.away").is_dir(), f"the unmount was not injected: {done.stderr}"
    assert not_engine_files(ws.cfs) == [], f"written onto cfs's {mounted}"
    really_there = set(file_contents(Path(f"{ws.cfs}.away")))
    assert len(really_there) == 1, really_there  # the task placed one file, then lost its root
    assert evidence_at(ws, "cfs") <= really_there, "a copy recorded at cfs that is not on cfs"

    remount(ws.cfs)
    passes(run_cli, ws, 4)
    assert file_contents(ws.cfs) == DATA
    assert file_contents(ws.hpss) == DATA
    assert evidence_at(ws, "cfs") == set(DATA)


def settled_with_dtn_delete_approved(run_cli: RunCli, ws: LocalWorkspace) -> None:
    """Every scan on cfs and hpss; the dtn prunes approved but not yet run."""
    passes(run_cli, ws, 3)
    assert file_contents(ws.cfs) == DATA and file_contents(ws.hpss) == DATA
    done = run_cli("--approve-all", "--yes", config=ws.config_path)
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("mounted", ["bare mount point", "another filesystem with the same files"])
def test_a_delete_task_removes_nothing_from_a_root_swapped_after_its_last_look(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mounted: str
) -> None:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=3650)
    for rel, data in DATA.items():
        ws.write_scan(rel, data)
    settled_with_dtn_delete_approved(run_cli, ws)
    assert file_contents(ws.dtn) == DATA

    with monkeypatch.context() as patch:
        env = {"BL931_SWAP_BEFORE_DELETE": str(ws.dtn)}
        if mounted != "bare mount point":  # a copy of dtn's tree, carrying cfs's marker
            env["BL931_SWAP_MARKER"] = str(ws.cfs / MARKER_NAME)
        with_inject(patch, **env)
        done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert "Traceback" not in done.stderr, done.stderr
    away = Path(f"{ws.dtn}.away")
    assert away.is_dir(), f"the swap was not injected: {done.stderr}"
    assert file_contents(away) == DATA, "the unmounted dtn lost files"
    if mounted != "bare mount point":
        assert file_contents(ws.dtn) == DATA, "files deleted from another filesystem"
    else:
        assert not_engine_files(ws.dtn) == []
    for scan in DATA:
        assert "delete.done" not in event_kinds(ws, scan), f"{scan} recorded deleted"

    remount(ws.dtn)
    approve_everything(run_cli, ws, 3)
    assert file_contents(ws.dtn) == {}
    assert file_contents(ws.cfs) == DATA and file_contents(ws.hpss) == DATA


@pytest.mark.parametrize("mounted", ["foreign marker", "bare mount point"])
def test_start_up_sweeps_no_temporary_files_from_a_root_that_is_not_its_storage(
    run_cli: RunCli, tmp_path: Path, mounted: str
) -> None:
    ws = create_workspace(tmp_path / "ws")
    ws.write_scan("2026/11/s0.h5", DATA["2026/11/s0.h5"])
    passes(run_cli, ws, 2)
    away = Path(f"{ws.cfs}.away")
    os.rename(ws.cfs, away)
    ws.cfs.mkdir()
    if mounted == "foreign marker":  # hpss's filesystem, mounted at cfs's path too
        shutil.copy2(ws.hpss / MARKER_NAME, ws.cfs / MARKER_NAME)
    # A copy in flight on that other storage (another process writing to it).
    in_flight = ws.cfs / "2026" / "11" / ".bl931-in-flight.tmp"
    in_flight.parent.mkdir(parents=True)
    in_flight.write_bytes(b"half a file another writer is placing")

    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stderr  # the endpoint is unknown: a person must look
    assert in_flight.exists(), f"a temporary file deleted from cfs's {mounted}"

    remount(ws.cfs)
    leftover = ws.cfs / "2026" / "11" / ".bl931-left-by-a-crash.tmp"
    leftover.write_bytes(b"x")
    passes(run_cli, ws, 1)
    assert not leftover.exists(), "the endpoint's own temporary files are swept once it is back"

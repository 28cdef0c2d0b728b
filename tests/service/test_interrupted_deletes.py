"""A crash never skips the last look: deletes left `preparing` by a killed process, through the
real CLI. The crash is placed by `crash_inject/sitecustomize.py` inside the child process, right
where a real SIGKILL would leave the task: its submission id persisted, its task id never
recorded."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.state import StateStore
from engine.workspace import LocalWorkspace, create_workspace
from tests.conftest import RunCli

INJECT = Path(__file__).parent / "crash_inject"
SCANS = [f"2026/s{i}.h5" for i in range(3)]


def workspace(tmp_path: Path) -> LocalWorkspace:
    ws = create_workspace(
        tmp_path / "ws",
        dtn_keep_days=0,
        cfs_keep_days=100_000,  # only the dtn prunes are due
        max_missing_fraction=0.5,
    )
    for scan in SCANS:
        ws.write_scan(scan, os.urandom(512), mtime=datetime(2026, 1, 1, tzinfo=UTC))
    return ws


def reconcile(run_cli: RunCli, ws: LocalWorkspace) -> None:
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def audit(run_cli: RunCli, ws: LocalWorkspace) -> dict[str, Any]:
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert done.returncode in (0, 1, 2), done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def approve_dtn_prunes(run_cli: RunCli, ws: LocalWorkspace) -> None:
    for _ in range(6):
        deletes = [a["id"] for a in audit(run_cli, ws)["actions"] if a["kind"] == "delete"]
        if len(deletes) == len(SCANS):
            done = run_cli("--approve", *deletes, config=ws.config_path)
            assert done.returncode == 0, done.stderr
            return
        reconcile(run_cli, ws)
    raise AssertionError("the dtn prunes were never planned")


def crash_during_delete(
    run_cli: RunCli, ws: LocalWorkspace, monkeypatch: pytest.MonkeyPatch, unlinks: int
) -> None:
    """One pass that dies after its delete task's worker unlinked `unlinks` files."""
    with monkeypatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")]))
        patch.setenv("BL931_CRASH_IN_DELETE_SUBMIT", str(unlinks))
        done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 137, done.stderr
    store = StateStore(ws.state_path, readonly=True)
    try:
        (task,) = [t for t in store.tasks() if t.kind == "delete"]
        assert task.status == "preparing" and task.task_id is None
    finally:
        store.close()


def directory_scan_due_for_prune(
    tmp_path: Path, run_cli: RunCli, *, frames: int
) -> tuple[LocalWorkspace, dict[str, bytes]]:
    """One directory scan copied everywhere, its dtn prune planned (no approval needed)."""
    ws = create_workspace(
        tmp_path / "ws",
        dtn_keep_days=0,
        cfs_keep_days=100_000,
        scan_unit="directory",
        depth=1,
        approval=(),
    )
    content = {f"scan_1/frame_{i}.h5": os.urandom(300) for i in range(frames)}
    for relpath, data in content.items():
        ws.write_scan(relpath, data, mtime=datetime(2026, 1, 1, tzinfo=UTC))
    for _ in range(6):
        if any(a["kind"] == "delete" for a in audit(run_cli, ws)["actions"]):
            break
        reconcile(run_cli, ws)
    return ws, content


def claimed_copies(ws: LocalWorkspace, scan: str) -> list[tuple[str, str | None]]:
    store = StateStore(ws.state_path, readonly=True)
    try:
        return [
            (copy["endpoint"], copy["level"])
            for receipt in store.receipts(scan)
            for copy in receipt["verified_copies"]
        ]
    finally:
        store.close()


def test_a_resubmitted_delete_passes_the_last_look(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path)
    approve_dtn_prunes(run_cli, ws)
    crash_during_delete(run_cli, ws, monkeypatch, unlinks=0)
    assert all((ws.dtn / scan).exists() for scan in SCANS)

    vanished = SCANS[1]
    (ws.cfs / vanished).unlink()  # the copy its prune relies on is gone before the restart
    reconcile(run_cli, ws)

    assert (ws.dtn / vanished).exists(), "the restart deleted the last copy"
    assert claimed_copies(ws, vanished) == []
    for scan in (SCANS[0], SCANS[2]):  # the others pass their last look and are pruned
        assert not (ws.dtn / scan).exists()
        assert claimed_copies(ws, scan) == [("cfs", "checksum")]
    store = StateStore(ws.state_path, readonly=True)
    try:
        why = [e["message"] for e in store.events(scan=vanished) if "recheck" in e["kind"]]
        assert any("copy_unverified" in message for message in why), why
        assert not [t for t in store.tasks() if t.status == "preparing"]
    finally:
        store.close()

    # The vanished copy is restored from the dtn, and only then is the dtn copy pruned.
    for _ in range(4):
        reconcile(run_cli, ws)
    assert (ws.cfs / vanished).exists() and not (ws.dtn / vanished).exists()
    assert claimed_copies(ws, vanished) == [("cfs", "checksum")]


def test_a_hold_placed_after_the_crash_stops_the_resubmission(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path)
    approve_dtn_prunes(run_cli, ws)
    crash_during_delete(run_cli, ws, monkeypatch, unlinks=0)
    store = StateStore(ws.state_path)
    try:
        store.place_hold(SCANS[0], "user asked to keep it", "operator", datetime.now(UTC))
    finally:
        store.close()
    reconcile(run_cli, ws)
    assert (ws.dtn / SCANS[0]).exists()
    assert claimed_copies(ws, SCANS[0]) == []
    assert not any((ws.dtn / scan).exists() for scan in SCANS[1:])


def test_a_delete_that_partly_ran_records_what_is_gone_and_rechecks_the_rest(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path)
    approve_dtn_prunes(run_cli, ws)
    crash_during_delete(run_cli, ws, monkeypatch, unlinks=1)
    gone = [scan for scan in SCANS if not (ws.dtn / scan).exists()]
    assert len(gone) == 1, "the worker should have deleted exactly one scan before the crash"
    rest = [scan for scan in SCANS if scan not in gone]
    (ws.cfs / rest[0]).unlink()  # a copy one of the remaining prunes relies on vanishes

    reconcile(run_cli, ws)

    # What was already gone is the engine's own doing: a receipt, and no missing-replica alarm.
    assert claimed_copies(ws, gone[0]) == [("cfs", "checksum")]
    store = StateStore(ws.state_path, readonly=True)
    try:
        (receipt,) = store.receipts(gone[0])
        assert "confirmed absent" in receipt["note"]
        alerts = [e for e in store.events() if e["kind"] == "alert"]
        assert not [a for a in alerts if "dtn" in a["message"]], alerts
    finally:
        store.close()
    # The rest went through the same last look as a fresh delete.
    assert (ws.dtn / rest[0]).exists(), "a prune whose copy vanished was resubmitted blindly"
    assert claimed_copies(ws, rest[0]) == []
    assert not (ws.dtn / rest[1]).exists()
    assert claimed_copies(ws, rest[1]) == [("cfs", "checksum")]


def test_a_directory_scan_cut_part_way_is_accounted_for_and_never_lost(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, frames = directory_scan_due_for_prune(tmp_path, run_cli, frames=3)
    crash_during_delete(run_cli, ws, monkeypatch, unlinks=1)
    assert len([p for p in frames if not (ws.dtn / p).exists()]) == 1

    for _ in range(4):
        reconcile(run_cli, ws)

    # Every frame is still on cfs and hpss. What the crash left at the dtn is the same version
    # less the receipted file (not a new version), so the rest is deleted after its own last
    # look.
    for endpoint in (ws.cfs, ws.hpss):
        assert {p: (endpoint / p).read_bytes() for p in frames} == frames
    assert not any((ws.dtn / p).exists() for p in frames)
    store = StateStore(ws.state_path, readonly=True)
    try:
        (receipt,) = store.receipts("scan_1")
    finally:
        store.close()
    # The resumed delete completes its submission's partial receipt in place: one receipt
    # naming every frame it removed, the one removed before the crash included.
    assert not receipt.get("partial") and sorted(receipt["removed"]) == sorted(frames)


def test_an_active_delete_killed_part_way_leaves_a_receipt_for_what_went(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task was recorded active, so the next process finds it lost: what the fresh listing
    shows gone still gets its (partial) receipt, and nothing is lost."""
    ws, frames = directory_scan_due_for_prune(tmp_path, run_cli, frames=4)
    with monkeypatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")]))
        patch.setenv("BL931_CRASH_AFTER_ACTIVE_DELETE", "2")
        done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 137, done.stderr
    gone = sorted(p for p in frames if not (ws.dtn / p).exists())
    assert len(gone) == 2
    store = StateStore(ws.state_path, readonly=True)
    try:
        (task,) = [t for t in store.tasks() if t.kind == "delete"]
        assert task.status == "active"
    finally:
        store.close()

    reconcile(run_cli, ws)
    store = StateStore(ws.state_path, readonly=True)
    try:
        receipt, *rest = store.receipts("scan_1")
    finally:
        store.close()
    assert receipt["partial"] is True and sorted(receipt["removed"]) == gone
    # What was left is the same version less the receipted files: the rest may be deleted in
    # the same pass as a fresh delete, receipted once, never naming the files already gone.
    for later in rest:
        assert not later.get("partial") and sorted(later["already_absent"]) == gone
        assert sorted(later["removed"]) == sorted(p for p in frames if p not in gone)
    for endpoint in (ws.cfs, ws.hpss):
        assert {p: (endpoint / p).read_bytes() for p in frames} == frames

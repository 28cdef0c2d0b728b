"""A delete task that fails part-way is reconciled scan by scan, through the real CLI.

Globus: the fake Transfer API ends a delete task FAILED (PERMISSION_DENIED) after it removed
the first scans, the way Transfer reports it: a task document with `fatal_error` and counters,
nothing per item. Local: the mover's unlink of one file is denied (`BL931_DENY_UNLINK`). Either
way, a fresh listing decides per scan: receipts for what is gone (partial for a scan cut
part-way), expected absences, no missing-replica alarm, and only the rest failed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.state import StateStore
from engine.workspace import LocalWorkspace, create_workspace
from tests.cli.globus_beamline import GlobusSite, audit, files_below, globus_site, reconcile
from tests.conftest import RunCli

INJECT = Path(__file__).parents[1] / "service" / "crash_inject"
SCANS = [f"scan_{i}" for i in range(5)]


def frames(scan: str) -> dict[str, bytes]:
    return {
        f"{scan}/frame_1.h5": f"{scan} frame one".encode() * 50,
        f"{scan}/sub/frame_2.h5": f"{scan} frame two".encode() * 50,
    }


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GlobusSite]:
    # Only the dtn prunes are due, and they need no approval: one task carries all five.
    with globus_site(tmp_path, monkeypatch, cfs_keep_days=100_000, approval=()) as made:
        for scan in SCANS:
            made.write_scan(frames(scan))
        yield made


def receipts(state_path: Path, scan: str) -> list[dict[str, Any]]:
    store = StateStore(state_path, readonly=True)
    try:
        return store.receipts(scan)
    finally:
        store.close()


def delete_tasks(state_path: Path) -> list[tuple[str, str | None]]:
    store = StateStore(state_path, readonly=True)
    try:
        return [(t.status, t.task_id) for t in store.tasks() if t.kind == "delete"]
    finally:
        store.close()


def dtn_deletes(state_path: Path) -> dict[str, tuple[str, str | None]]:
    """scan → (status, error class) of its delete action at the dtn."""
    store = StateStore(state_path, readonly=True)
    try:
        return {
            a.scan: (a.status, a.error_class.value if a.error_class else None)
            for a in store.actions()
            if a.kind.value == "delete" and a.target == "dtn"
        }
    finally:
        store.close()


def dtn_delete_ids(state_path: Path) -> dict[str, tuple[str, str]]:
    """Action id → (scan, status) of every dtn delete."""
    store = StateStore(state_path, readonly=True)
    try:
        return {
            a.id: (a.scan, a.status)
            for a in store.actions()
            if a.kind.value == "delete" and a.target == "dtn"
        }
    finally:
        store.close()


def no_freeze(doc: dict[str, Any]) -> None:
    """The pass planned deletes normally: no missing-fraction alert, nothing frozen."""
    assert [a for a in doc["alert_details"] if a["code"] == "missing_fraction"] == [], doc["alerts"]
    assert not [b for b in doc["blocked"] if b["reason_code"] == "missing_fraction_exceeded"]


def test_a_globus_delete_failing_part_way_leaves_receipts_and_no_freeze(
    site: GlobusSite, run_cli: RunCli
) -> None:
    # Ten delete items (two files a scan): Transfer removes five, then the task fails.
    site.fake.fail_next_task(
        "PERMISSION_DENIED",
        "Permission denied: /raw/scan_2/sub/frame_2.h5",
        after_items=5,
        kind="DELETE",
    )
    for _ in range(8):
        reconcile(run_cli, site)
        tasks = delete_tasks(site.state_path)
        if tasks and tasks[0][0] not in ("preparing", "active"):
            break
    ((status, task_id),) = delete_tasks(site.state_path)
    assert status == "failed", status
    (fake_task,) = [t for t in site.fake.tasks.values() if t.kind == "DELETE"]
    assert fake_task.status == "FAILED" and task_id == fake_task.task_id
    on_dtn = files_below(site.roots["dtn"])

    # Scans 0 and 1 went whole: each has its receipt, naming the task that removed them.
    for scan in SCANS[:2]:
        assert not set(frames(scan)) & on_dtn
        (receipt,) = receipts(site.state_path, scan)
        assert receipt["endpoint"] == "dtn" and receipt["task_id"] == task_id
        assert sorted(receipt["removed"]) == sorted(frames(scan))
        assert not receipt.get("partial")
        assert "PERMISSION_DENIED" in receipt["note"], receipt["note"]
    # Scan 2 was cut part-way: a partial receipt for exactly the file that went.
    (partial,) = receipts(site.state_path, SCANS[2])
    assert partial["partial"] is True
    assert sorted(partial["removed"]) == sorted(set(frames(SCANS[2])) - on_dtn)
    assert sorted(partial["remaining"]) == sorted(set(frames(SCANS[2])) & on_dtn)
    assert len(partial["removed"]) == 1
    # Scans 3 and 4 are untouched, unreceipted, and their deletes wait for a person.
    for scan in SCANS[3:]:
        assert set(frames(scan)) <= on_dtn
        assert receipts(site.state_path, scan) == []

    # Only the rest is failed, for a person (a permission problem will not pass by itself).
    assert dtn_deletes(site.state_path) == {
        **{scan: ("succeeded", None) for scan in SCANS[:2]},
        **{scan: ("failed", "needs_human") for scan in SCANS[2:]},
    }
    reconcile(run_cli, site)
    doc = audit(run_cli, site)
    no_freeze(doc)
    assert {
        b["reason_code"]
        for b in doc["blocked"]
        if b["scan"] in SCANS[3:] and b["kind"] == "delete" and b["endpoint"] == "dtn"
    } == {"needs_attention"}, doc["blocked"]

    # An operator retries scan 2 once the permission is fixed: the new task is given every
    # manifest file again (Transfer skips the one already gone), and its receipt names only the
    # file it removed, the other as already absent: no file is receipted twice.
    (cut,) = [a for a, (s, _) in dtn_delete_ids(site.state_path).items() if s == SCANS[2]]
    store = StateStore(site.state_path)
    try:
        store.request_retry([cut], "tester", datetime.now(UTC))
    finally:
        store.close()
    for _ in range(6):
        reconcile(run_cli, site)
        if len(receipts(site.state_path, SCANS[2])) == 2:
            break
    else:
        doc = audit(run_cli, site)
        raise AssertionError(
            [b for b in doc["blocked"] if b["scan"] == SCANS[2]],
            dtn_delete_ids(site.state_path),
        )
    first, second = receipts(site.state_path, SCANS[2])
    assert first == partial and not second.get("partial")
    assert sorted(first["removed"] + second["removed"]) == sorted(frames(SCANS[2]))
    assert second["already_absent"] == first["removed"]
    assert not set(frames(SCANS[2])) & files_below(site.roots["dtn"])

    # Later prunes are not frozen: a new scan is copied and pruned from the dtn as usual.
    site.write_scan(frames("scan_5"))
    for _ in range(6):
        reconcile(run_cli, site)
        if receipts(site.state_path, "scan_5"):
            break
    (receipt,) = receipts(site.state_path, "scan_5")
    assert sorted(receipt["removed"]) == sorted(frames("scan_5"))
    assert not set(frames("scan_5")) & files_below(site.roots["dtn"])
    assert set(frames("scan_5")) <= files_below(site.roots["cfs"])


def test_acknowledging_a_missing_fraction_alert_lifts_the_delete_freeze(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    """Replicas that really vanish (removed by hand) freeze every delete until a person
    accepts the loss with `--acknowledge ID --why`; then the prunes are planned again."""
    with globus_site(tmp_path, monkeypatch, cfs_keep_days=100_000) as site:
        for scan in SCANS:
            site.write_scan(frames(scan))
        for _ in range(6):
            if len([a for a in audit(run_cli, site)["actions"] if a["kind"] == "delete"]) == 5:
                break
            reconcile(run_cli, site)
        for scan in SCANS[:2]:  # someone removes two scans from the dtn, outside bl931
            shutil.rmtree(site.roots["dtn"] / scan)

        reconcile(run_cli, site)
        doc = audit(run_cli, site)
        (alert,) = [a for a in doc["alert_details"] if a["code"] == "missing_fraction"]
        assert alert["endpoint"] == "dtn" and alert["effect"] == "freeze_deletes"
        assert [a for a in doc["actions"] if a["kind"] == "delete"] == []

        done = run_cli(
            "--acknowledge",
            alert["id"],
            "--why",
            "scans 0 and 1 were removed by their owner",
            config=site.config_path,
        )
        assert done.returncode == 0, done.stderr
        reconcile(run_cli, site)
        doc = audit(run_cli, site)
        no_freeze(doc)
        planned = sorted(a["scan"] for a in doc["actions"] if a["kind"] == "delete")
        assert planned == SCANS[2:]

        assert run_cli("--approve-all", "--yes", config=site.config_path).returncode == 0
        for _ in range(3):
            reconcile(run_cli, site)
        for scan in SCANS[2:]:
            assert [r["endpoint"] for r in receipts(site.state_path, scan)] == ["dtn"]
            assert not set(frames(scan)) & files_below(site.roots["dtn"])


def local_site(tmp_path: Path) -> LocalWorkspace:
    ws = create_workspace(
        tmp_path / "ws",
        dtn_keep_days=0,
        cfs_keep_days=100_000,
        scan_unit="directory",
        depth=1,
        approval=(),
    )
    for scan in SCANS:
        for relpath, data in frames(scan).items():
            ws.write_scan(relpath, data, mtime=datetime(2026, 1, 1, tzinfo=UTC))
    return ws


def test_a_local_delete_denied_part_way_through_a_scan_leaves_a_partial_receipt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    ws = local_site(tmp_path)
    denied = f"{SCANS[2]}/sub/frame_2.h5"
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("BL931_DENY_UNLINK", denied)
    for _ in range(6):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
        if delete_tasks(ws.state_path):
            break

    ((status, _),) = delete_tasks(ws.state_path)
    assert status == "failed"
    for scan in SCANS[:2] + SCANS[3:]:  # the other scans of the task went, with receipts
        assert not (ws.dtn / scan).exists()
        (receipt,) = receipts(ws.state_path, scan)
        assert sorted(receipt["removed"]) == sorted(frames(scan))
    assert (ws.dtn / denied).exists() and not (ws.dtn / SCANS[2] / "frame_1.h5").exists()
    (partial,) = receipts(ws.state_path, SCANS[2])
    assert partial["partial"] is True
    assert partial["removed"] == [f"{SCANS[2]}/frame_1.h5"]
    assert partial["remaining"] == [denied]
    for endpoint in (ws.cfs, ws.hpss):  # nothing lost anywhere else
        for relpath, data in frames(SCANS[2]).items():
            assert (endpoint / relpath).read_bytes() == data

    assert dtn_deletes(ws.state_path) == {
        **{scan: ("succeeded", None) for scan in SCANS[:2] + SCANS[3:]},
        SCANS[2]: ("failed", "needs_human"),  # permission denied: a person must look
    }
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    no_freeze(json.loads(done.stdout))


def test_a_failed_delete_whose_target_cannot_be_listed_waits_and_is_settled_later(
    site: GlobusSite, run_cli: RunCli
) -> None:
    """Unknown is not absent: while the dtn collection refuses listings, the failed task is
    neither receipted nor failed; the first pass that can list settles it scan by scan."""
    site.fake.fail_next_task("PERMISSION_DENIED", "Permission denied", after_items=4, kind="DELETE")
    for _ in range(6):
        reconcile(run_cli, site)
        if [t for t in site.fake.tasks.values() if t.kind == "DELETE"]:
            break
    site.fake.unmap_identity(site.collections["dtn"])  # listings of the dtn now answer 403

    for _ in range(2):
        reconcile(run_cli, site)
    (fake_task,) = [t for t in site.fake.tasks.values() if t.kind == "DELETE"]
    assert fake_task.status == "FAILED"
    assert not {f for scan in SCANS[:2] for f in frames(scan)} & files_below(site.roots["dtn"])
    ((status, _),) = delete_tasks(site.state_path)
    assert status == "active", "a task whose scans could not be told apart was closed"
    assert set(dtn_deletes(site.state_path).values()) == {("submitted", None)}
    assert all(receipts(site.state_path, scan) == [] for scan in SCANS)

    site.fake.unmap_identity(site.collections["dtn"], unmapped=False)
    reconcile(run_cli, site)
    assert dtn_deletes(site.state_path) == {
        **{scan: ("succeeded", None) for scan in SCANS[:2]},
        **{scan: ("failed", "needs_human") for scan in SCANS[2:]},
    }
    for scan in SCANS[:2]:
        (receipt,) = receipts(site.state_path, scan)
        assert sorted(receipt["removed"]) == sorted(frames(scan))
    reconcile(run_cli, site)
    no_freeze(audit(run_cli, site))


def test_a_local_delete_whose_target_vanishes_as_it_fails_is_settled_after_the_remount(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    """The dtn filesystem goes away while the task runs: the scan cut part-way cannot be
    told apart, so `--once` finishes without it (it does not wait for it) and a later
    process, after the remount, writes its partial receipt."""
    ws = local_site(tmp_path)
    denied = f"{SCANS[2]}/sub/frame_2.h5"
    with monkeypatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")]))
        patch.setenv("BL931_DENY_UNLINK", denied)
        patch.setenv("BL931_UNMOUNT_ON_DENY", str(ws.dtn))
        for _ in range(6):
            done = run_cli("--reconcile", "--once", config=ws.config_path, timeout=60)
            assert "Traceback" not in done.stderr, done.stderr
            if delete_tasks(ws.state_path):
                break
    assert not ws.dtn.exists(), "the inject did not unmount the dtn"
    ((status, first_task),) = delete_tasks(ws.state_path)
    assert status == "active", "the task was closed although scans could not be listed"
    assert receipts(ws.state_path, SCANS[2]) == []
    assert {dtn_deletes(ws.state_path)[scan] for scan in SCANS[2:]} == {("submitted", None)}

    Path(f"{ws.dtn}.away").rename(ws.dtn)  # the filesystem is back
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert "Traceback" not in done.stderr, done.stderr
    partial, rest = receipts(ws.state_path, SCANS[2])
    assert partial["partial"] is True
    assert partial["removed"] == [f"{SCANS[2]}/frame_1.h5"] and partial["remaining"] == [denied]
    # What the cut delete left is the same version less the receipted file (not a new
    # version): this beamline needs no approval, so the rest is deleted like a fresh delete,
    # after its own last look, and receipted once.
    assert not rest.get("partial") and rest["action_id"] == partial["action_id"]
    assert rest["submission_id"] != partial["submission_id"]
    assert rest["removed"] == [denied] and rest["already_absent"] == partial["removed"]
    assert not any(f.startswith(SCANS[2]) for f in files_below(ws.dtn))
    for scan in SCANS[:2]:  # removed before the unmount: receipted from the mover's report
        (receipt,) = receipts(ws.state_path, scan)
        assert sorted(receipt["removed"]) == sorted(frames(scan))
    # The scans the worker never reached (their items failed on the missing root) were not
    # removed: the new process found them still there and pruned them after their last look.
    for scan in SCANS[3:]:
        (receipt,) = receipts(ws.state_path, scan)
        assert receipt["task_id"] != first_task and not receipt.get("partial")
        assert sorted(receipt["removed"]) == sorted(frames(scan))
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    no_freeze(json.loads(done.stdout))

"""Globus prunes delete the manifest's files, never the scan folder: the real CLI, the real
globus-sdk, and the fake Transfer API on 127.0.0.1 (each collection a temporary directory)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.state import StateStore
from tests.cli.globus_beamline import (  # noqa: F401 (ACQUIRED: for the tests that import it here)
    ACQUIRED,
    GlobusSite,
    audit,
    files_below,
    globus_site,
    reconcile,
)
from tests.conftest import RunCli
from tests.fakes.transfer_api import FakeTransferAPI

INJECT = Path(__file__).parents[1] / "service" / "crash_inject"

SCAN = "scan_0001"
MANIFEST = {
    f"{SCAN}/frame_1.h5": b"frame one" * 100,
    f"{SCAN}/sub/frame_2.h5": b"frame two" * 100,
}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GlobusSite]:
    with globus_site(tmp_path, monkeypatch, cfs_keep_days=0, approval=("delete",)) as built:
        yield built


def write_manifest(site: GlobusSite) -> None:
    site.write_scan(MANIFEST)


def delete_tasks(fake: FakeTransferAPI) -> list[dict[str, Any]]:
    return [task.body for task in fake.tasks.values() if task.kind == "DELETE"]


def test_globus_prunes_submit_the_manifest_files_and_leave_the_rest(
    site: GlobusSite, run_cli: RunCli
) -> None:
    site.write_scan(MANIFEST)
    (site.roots["dtn"] / SCAN / ".operator notes.txt").write_bytes(b"operator's own")

    user_file = site.roots["cfs"] / SCAN / "analysis_result.h5"
    for _ in range(8):
        reconcile(run_cli, site)
        run_cli("--approve-all", "--yes", config=site.config_path)
        if (site.roots["hpss"] / SCAN).exists() and not delete_tasks(site.fake)[1:]:
            # A user adds an analysis to the copied folder on CFS, before the CFS prune.
            user_file.write_bytes(b"derived, only here")
        deletes = [t for t in site.fake.tasks.values() if t.kind == "DELETE"]
        if len(deletes) == 2 and all(t.status == "SUCCEEDED" for t in deletes):
            break  # both prunes ran, and the pass that polled them recorded them

    bodies = delete_tasks(site.fake)
    assert len(bodies) == 2, bodies
    for body in bodies:
        assert not body.get("recursive"), "a prune asked Globus to delete a whole folder"
        assert sorted(item["path"] for item in body["DATA"]) == sorted(
            f"/raw/{relpath}" for relpath in MANIFEST
        )
    assert files_below(site.roots["dtn"]) == {f"{SCAN}/.operator notes.txt"}
    assert files_below(site.roots["cfs"]) == {f"{SCAN}/analysis_result.h5"}
    assert files_below(site.roots["hpss"]) == set(MANIFEST)

    done = run_cli("--receipt", SCAN, "--json", config=site.config_path)
    receipts = {r["endpoint"]: r for r in json.loads(done.stdout)}
    assert set(receipts) == {"dtn", "cfs"}
    for receipt in receipts.values():
        assert sorted(receipt["removed"]) == sorted(MANIFEST)
    # What a fresh listing through Globus shows beside the pruned scan (excluded names are
    # not listed there, and Globus cannot remove a folder only if it is empty).
    assert receipts["cfs"]["left_behind"] == [f"{SCAN}/analysis_result.h5"]

    for _ in range(2):  # pruned means pruned: nothing is planned again for the leftovers
        reconcile(run_cli, site)
        assert [a for a in audit(run_cli, site)["actions"] if a["scan"] == SCAN] == []
    assert len(delete_tasks(site.fake)) == 2
    store = StateStore(site.state_path, readonly=True)
    try:
        assert {(f.endpoint, f.paths) for f in store.foreign_files()} == {
            ("cfs", (f"{SCAN}/analysis_result.h5",))
        }
    finally:
        store.close()


def approve_dtn_prune(run_cli: RunCli, site: GlobusSite) -> None:
    for _ in range(6):
        deletes = [a["id"] for a in audit(run_cli, site)["actions"] if a["kind"] == "delete"]
        if deletes:
            done = run_cli("--approve", *deletes, config=site.config_path)
            assert done.returncode == 0, done.stderr
            return
        reconcile(run_cli, site)
    raise AssertionError("the dtn prune was never planned")


def crash_submitting_the_delete(
    run_cli: RunCli, site: GlobusSite, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    with monkeypatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")]))
        patch.setenv("BL931_CRASH_IN_GLOBUS_DELETE", when)
        done = run_cli("--reconcile", "--once", config=site.config_path)
    assert done.returncode == 137, done.stderr
    store = StateStore(site.state_path, readonly=True)
    try:
        (task,) = [t for t in store.tasks() if t.kind == "delete"]
        assert task.status == "preparing"
    finally:
        store.close()


def test_a_globus_delete_that_never_reached_transfer_passes_the_last_look_again(
    site: GlobusSite, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_manifest(site)
    approve_dtn_prune(run_cli, site)
    crash_submitting_the_delete(run_cli, site, monkeypatch, "before")
    assert delete_tasks(site.fake) == []
    for relpath in MANIFEST:  # the copy the prune relies on vanishes before the restart
        (site.roots["cfs"] / relpath).unlink()

    reconcile(run_cli, site)

    assert site.fake.calls["task_list"] >= 1, "Transfer was not asked whether the task exists"
    assert delete_tasks(site.fake) == [], "the interrupted delete was resubmitted blindly"
    store = StateStore(site.state_path, readonly=True)
    try:
        assert store.receipts(SCAN) == []
        assert [t.status for t in store.tasks() if t.kind == "delete"] == ["withdrawn"]
    finally:
        store.close()

    # CFS lost every replica it had: it is frozen until a person accepts the loss. Then the
    # lost copy is restored first; only then is the dtn copy pruned, by a new task.
    (alert,) = audit(run_cli, site)["alert_details"]
    assert alert["code"] == "missing_fraction" and alert["endpoint"] == "cfs"
    done = run_cli(
        "--acknowledge", alert["id"], "--why", "cfs files removed by hand", config=site.config_path
    )
    assert done.returncode == 0, done.stderr
    for _ in range(4):
        reconcile(run_cli, site)
    assert files_below(site.roots["cfs"]) == set(MANIFEST)
    assert not (site.roots["dtn"] / SCAN / "frame_1.h5").exists()
    done = run_cli("--receipt", SCAN, "--json", config=site.config_path)
    (receipt,) = json.loads(done.stdout)
    assert [c["endpoint"] for c in receipt["verified_copies"]] == ["cfs"]


def test_a_globus_delete_transfer_accepted_before_the_crash_is_adopted_not_resubmitted(
    site: GlobusSite, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_manifest(site)
    approve_dtn_prune(run_cli, site)
    crash_submitting_the_delete(run_cli, site, monkeypatch, "after")
    (accepted,) = [t for t in site.fake.tasks.values() if t.kind == "DELETE"]

    for _ in range(2):
        reconcile(run_cli, site)

    assert site.fake.calls["delete"] == 1, "the accepted task was submitted again"
    assert not (site.roots["dtn"] / SCAN / "frame_1.h5").exists()
    store = StateStore(site.state_path, readonly=True)
    try:
        (receipt,) = store.receipts(SCAN)
        assert receipt["task_id"] == accepted.task_id
        assert sorted(receipt["removed"]) == sorted(MANIFEST)
    finally:
        store.close()

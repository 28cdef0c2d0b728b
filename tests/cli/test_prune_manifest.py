"""A prune removes exactly the files it verified, nothing else: the real CLI on local endpoints.

Directory scans are where this matters: a scan folder can hold files the scan never included
(excluded names such as `.operator notes.txt` or `*.part`) or that a user added later
(`analysis_result.h5` on CFS). They were never copied anywhere, so a prune must leave them, say
so in its receipt, and from then on count the scan as pruned there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from engine.identity import MARKER_NAME
from engine.state import StateStore
from engine.workspace import LocalWorkspace, create_workspace
from tests.conftest import RunCli

SCAN = "scan_0001"
MANIFEST = {
    f"{SCAN}/frame_1.h5": b"frame one" * 100,
    f"{SCAN}/sub/frame_2.h5": b"frame two" * 100,
}
ACQUIRED = 1_700_000_000
INJECT = Path(__file__).parents[1] / "service" / "crash_inject"


def directory_workspace(tmp_path: Path) -> LocalWorkspace:
    ws = create_workspace(
        tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0, scan_unit="directory", depth=1
    )
    for relpath, data in MANIFEST.items():
        ws.write_scan(relpath, data, mtime=ACQUIRED)
    return ws


def audit(run_cli: RunCli, ws: LocalWorkspace) -> dict[str, Any]:
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert done.returncode in (0, 1, 2), done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def reconcile(run_cli: RunCli, ws: LocalWorkspace) -> None:
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def until_delete_awaits(run_cli: RunCli, ws: LocalWorkspace, endpoint: str) -> str:
    """Passes until the prune at `endpoint` is planned; returns its action id."""
    for _ in range(6):
        deletes = [
            a
            for a in audit(run_cli, ws)["actions"]
            if a["kind"] == "delete" and a["target"] == endpoint and a["scan"] == SCAN
        ]
        if deletes:
            return str(deletes[0]["id"])
        reconcile(run_cli, ws)
    raise AssertionError(f"the {endpoint} prune was never planned: {audit(run_cli, ws)}")


def approve(run_cli: RunCli, ws: LocalWorkspace, action_id: str) -> None:
    done = run_cli("--approve", action_id, config=ws.config_path)
    assert done.returncode == 0, done.stderr


def receipts(run_cli: RunCli, ws: LocalWorkspace) -> dict[str, dict[str, Any]]:
    done = run_cli("--receipt", SCAN, "--json", config=ws.config_path)
    assert done.returncode == 0, done.stderr
    return {r["endpoint"]: r for r in json.loads(done.stdout)}


def files_below(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if not p.is_dir() and p.name != MARKER_NAME
    }


def test_a_directory_prune_leaves_every_file_it_did_not_verify(
    tmp_path: Path, run_cli: RunCli, monkeypatch: Any
) -> None:
    ws = directory_workspace(tmp_path)
    # Excluded by the layout: never part of the scan, never copied.
    dtn_foreign = {f"{SCAN}/.operator notes.txt", f"{SCAN}/frame_3.part"}
    for relpath in dtn_foreign:
        (ws.dtn / relpath).write_bytes(b"operator's own")
    dtn_delete = until_delete_awaits(run_cli, ws, "dtn")
    assert files_below(ws.cfs) == set(MANIFEST) == files_below(ws.hpss)

    # A user writes into the folder while the dtn prune runs (after its last look).
    approve(run_cli, ws, dtn_delete)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("BL931_WRITE_DURING_DELETE", f"{ws.dtn / SCAN}::late_result.h5")
    reconcile(run_cli, ws)
    monkeypatch.delenv("BL931_WRITE_DURING_DELETE")
    dtn_foreign.add(f"{SCAN}/late_result.h5")

    assert files_below(ws.dtn) == dtn_foreign, "the prune removed files it never verified"
    assert not (ws.dtn / SCAN / "sub").exists(), "an emptied scan folder was left behind"
    dtn_receipt = receipts(run_cli, ws)["dtn"]
    assert sorted(dtn_receipt["removed"]) == sorted(MANIFEST)
    assert sorted(dtn_receipt["left_behind"]) == sorted(dtn_foreign)

    # On CFS a user adds an analysis to the copied scan folder before the CFS prune.
    cfs_foreign = {f"{SCAN}/analysis_result.h5", f"{SCAN}/.operator notes.txt"}
    for relpath in cfs_foreign:
        (ws.cfs / relpath).write_bytes(b"derived data, only here")
    cfs_delete = until_delete_awaits(run_cli, ws, "cfs")
    approve(run_cli, ws, cfs_delete)
    reconcile(run_cli, ws)

    assert files_below(ws.cfs) == cfs_foreign
    assert files_below(ws.hpss) == set(MANIFEST)
    cfs_receipt = receipts(run_cli, ws)["cfs"]
    assert sorted(cfs_receipt["removed"]) == sorted(MANIFEST)
    assert sorted(cfs_receipt["left_behind"]) == sorted(cfs_foreign)

    # The scan counts as pruned at both: no delete, copy or approval is asked for again, the
    # leftovers at the dtn are not inventoried as a new version, and each is reported once.
    for _ in range(3):
        reconcile(run_cli, ws)
        doc = audit(run_cli, ws)
        assert [a for a in doc["actions"] if a["scan"] == SCAN] == [], doc["actions"]
        assert doc["summary"]["awaiting_approval"] == 0
    assert files_below(ws.dtn) == dtn_foreign and files_below(ws.cfs) == cfs_foreign
    # Each leftover set is one standing `notify` alert naming its paths, until acknowledged.
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    doc = json.loads(done.stdout)
    assert done.returncode == 1
    alerts = {a["endpoint"]: a for a in doc["alert_details"] if a["code"] == "foreign_files"}
    assert set(alerts) == {"dtn", "cfs"} and all(a["effect"] == "notify" for a in alerts.values())
    assert "analysis_result.h5" in alerts["cfs"]["message"]
    for alert in alerts.values():
        done = run_cli(
            "--acknowledge", alert["id"], "--why", "user files; told the owner",
            config=ws.config_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert json.loads(done.stdout)["alert_details"] == [] and done.returncode == 0
    store = StateStore(ws.state_path, readonly=True)
    try:
        found = {(f.endpoint, f.scan): set(f.paths) for f in store.foreign_files()}
        assert found == {("dtn", SCAN): dtn_foreign, ("cfs", SCAN): cfs_foreign}
        reported = [e for e in store.events(scan=SCAN) if e["kind"] == "delete.foreign_files"]
        assert sorted(e["data"]["endpoint"] for e in reported) == ["cfs", "dtn"]
        assert all(e["level"] == "warning" for e in reported)
        assert [e["kind"] for e in store.events(scan=SCAN)].count("scan.inventoried") == 1
        assert len(store.receipts(SCAN)) == 2
    finally:
        store.close()


def test_a_prune_refuses_files_that_changed_after_the_last_look(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """A manifest file whose size differs from the verified one is not the verified bytes."""
    ws = directory_workspace(tmp_path)
    approve(run_cli, ws, until_delete_awaits(run_cli, ws, "dtn"))
    reconcile(run_cli, ws)
    approve(run_cli, ws, until_delete_awaits(run_cli, ws, "cfs"))
    # Someone appends to a copied file on CFS. The last look checks the copies the prune relies
    # on (hpss), so only the delete itself, comparing each file with the manifest before
    # removing anything, can notice.
    changed = ws.cfs / SCAN / "frame_1.h5"
    with changed.open("ab") as handle:
        handle.write(b"appended")
    os.utime(changed, (ACQUIRED, ACQUIRED))
    reconcile(run_cli, ws)
    assert files_below(ws.cfs) == set(MANIFEST), "bytes nobody verified were deleted"
    assert "cfs" not in receipts(run_cli, ws)

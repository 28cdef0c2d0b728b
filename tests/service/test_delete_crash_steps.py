"""A crash right after each persisted step of a delete, through the real CLI: whatever step the
process died at, the restarted service accounts for every file it removed with a receipt, never
raises a missing-replica alarm about its own deletes, finishes the rest only through the last
look, and loses nothing. The crash is placed by `crash_inject/delete_steps.py` in the child.
"""

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
STEPS = ("prepared", "some_unlinked", "all_unlinked", "submitted", "before_receipt")
# The task row each step leaves: `submitted` dies after the task id was recorded.
TASK_LEFT = {step: "active" if step == "submitted" else "preparing" for step in STEPS}
TASK_LEFT["before_receipt"] = "active"


def workspace(tmp_path: Path, unit: str) -> tuple[LocalWorkspace, dict[str, bytes]]:
    ws = create_workspace(
        tmp_path / "ws",
        dtn_keep_days=0,
        cfs_keep_days=100_000,  # only the dtn prunes are due
        approval=(),
        scan_unit=unit,
        depth=2,
        max_missing_fraction=0.1,
    )
    files: dict[str, bytes] = {}
    for n in range(3):
        names = [f"2026/scan {n}"] if unit == "file" else [f"2026/scan {n}/f{i}.h5" for i in (0, 1)]
        for name in names:
            files[name] = os.urandom(300 + n)
            ws.write_scan(name, files[name], mtime=datetime(2026, 1, 1, tzinfo=UTC))
    return ws, files


def audit(run_cli: RunCli, ws: LocalWorkspace) -> tuple[int, dict[str, Any]]:
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert done.returncode in (0, 1, 2), done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, doc


def reconcile(run_cli: RunCli, ws: LocalWorkspace) -> None:
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr, done.stderr


# Every step with directory scans (several files: a cut part-way is possible); file scans at the
# two steps whose recovery differs most (a receipt from a listing, a lost task id).
CASES = [("directory", step) for step in STEPS] + [
    ("file", "some_unlinked"),
    ("file", "submitted"),
]


@pytest.mark.parametrize(("unit", "step"), CASES)
def test_a_crash_after_any_step_of_a_delete_is_accounted_for(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch, step: str, unit: str
) -> None:
    ws, files = workspace(tmp_path, unit)
    for _ in range(6):  # copied to cfs and hpss, catalogued: the dtn prunes are planned
        if any(a["kind"] == "delete" for a in audit(run_cli, ws)[1]["actions"]):
            break
        reconcile(run_cli, ws)
    with monkeypatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")]))
        patch.setenv("BL931_CRASH_AT_DELETE", step)
        done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 137, f"no delete was interrupted at {step}: {done.stderr}"
    scans = sorted({n if unit == "file" else n.rsplit("/", 1)[0] for n in files})
    store = StateStore(ws.state_path, readonly=True)
    try:
        (task,) = [t for t in store.tasks() if t.kind == "delete"]
        assert task.status == TASK_LEFT[step]
        assert all(store.receipts(scan) == [] for scan in scans)
    finally:
        store.close()

    for _ in range(3):
        reconcile(run_cli, ws)

    # Nothing lost: every file's bytes are on cfs and hpss.
    for name, data in files.items():
        for endpoint in (ws.cfs, ws.hpss):
            assert (endpoint / name).read_bytes() == data, f"{name} at {endpoint.name}"
    left = sorted(n for n in files if (ws.dtn / n).exists())
    code, doc = audit(run_cli, ws)
    alerts = [a["code"] for a in doc["alert_details"]]
    conflicts = [b for b in doc["blocked"] if b["reason_code"] == "version_conflict"]
    # No alarm about the engine's own deletes, nothing left to do. (A directory scan cut
    # part-way leaves the same version less the receipted files, not a new version: the rest
    # is deleted after its own last look.)
    assert left == [] and conflicts == [] and alerts == [] and code == 0, doc
    store = StateStore(ws.state_path, readonly=True)
    try:
        for scan in scans:
            receipts = store.receipts(scan)
            assert {r["endpoint"] for r in receipts} <= {"dtn"}, receipts
            removed = {p for r in receipts for p in (*r["removed"], *r.get("already_absent", []))}
            own = {n for n in files if n == scan or n.startswith(scan + "/")}
            assert removed == own - set(left), receipts
            for receipt in receipts:
                (copy,) = receipt["verified_copies"]
                assert copy["level"] == "checksum"
                assert copy["checksum"] == receipt["acquisition"]["checksum"]
        assert not [t for t in store.tasks() if t.status in ("preparing", "active")]
    finally:
        store.close()

"""The real CLI on temporary local endpoints: the lifecycle, corruption, outages, crashes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from engine.identity import MARKER_NAME
from engine.state import StateStore
from engine.workspace import LocalWorkspace, create_workspace
from tests.waiting import wait_for

SCAN = "2026/11/ALS-1/scan 0001 Å.h5"
CRASH_INJECT = Path(__file__).parents[1] / "service" / "crash_inject"


def audit(run_cli, ws: LocalWorkspace) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert done.returncode in (0, 1, 2), done.stderr
    return done.returncode, json.loads(done.stdout)


def reconcile(run_cli, ws: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 0, done.stderr


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_a_scan_walks_the_whole_lifecycle(run_cli, workspace: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    ws.write_scan(SCAN, b"tender x-rays" * 1000)
    code, doc = audit(run_cli, ws)
    assert code == 2 and [(a["kind"], a["source"], a["target"]) for a in doc["actions"]] == [
        ("copy", "dtn", "cfs")
    ]
    assert not (ws.state_path.exists()), "the dry run wrote a state store"

    reconcile(run_cli, ws)  # dtn → cfs, verified
    assert md5(ws.cfs / SCAN) == md5(ws.dtn / SCAN)
    reconcile(run_cli, ws)  # cfs → hpss, registered in the catalog
    assert (ws.hpss / SCAN).exists()
    catalog = json.loads((ws.root / "state" / "catalog.json").read_text())
    assert any(SCAN in json.dumps(doc, ensure_ascii=False) for doc in catalog["datasets"].values())

    reconcile(run_cli, ws)  # catalog learns hpss; the dtn prune now waits for approval
    code, doc = audit(run_cli, ws)
    deletes = [a for a in doc["actions"] if a["kind"] == "delete"]
    assert code == 2 and [(d["target"], d["requires_approval"]) for d in deletes] == [("dtn", True)]
    assert doc["summary"]["awaiting_approval"] == 1 and doc["summary"]["delete"] == 1
    reconcile(run_cli, ws)
    assert (ws.dtn / SCAN).exists(), "an unapproved delete ran"

    approved = run_cli("--approve", deletes[0]["id"], config=ws.config_path)
    assert approved.returncode == 0, approved.stderr
    reconcile(run_cli, ws)
    assert not (ws.dtn / SCAN).exists()
    assert (ws.cfs / SCAN).exists() and (ws.hpss / SCAN).exists()

    receipt = json.loads(run_cli("--receipt", SCAN, "--json", config=ws.config_path).stdout)
    (dtn_receipt,) = receipt
    assert dtn_receipt["endpoint"] == "dtn"
    assert dtn_receipt["verified_copies"][0]["endpoint"] == "cfs"
    assert dtn_receipt["verified_copies"][0]["checksum"] == dtn_receipt["acquisition"]["checksum"]
    assert dtn_receipt["approval"]["by"]

    # The cfs prune follows (it relies on hpss), then everything is in sync.
    reconcile(run_cli, ws)
    run_cli("--approve-all", "--yes", config=ws.config_path)
    reconcile(run_cli, ws)
    reconcile(run_cli, ws)
    assert not (ws.cfs / SCAN).exists() and (ws.hpss / SCAN).exists()
    code, doc = audit(run_cli, ws)
    assert code == 0, doc
    assert doc["actions"] == [] and doc["errors"] == []


def test_corrupted_cfs_copy_is_never_trusted(run_cli, workspace: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    data = os.urandom(4096)
    source = ws.write_scan(SCAN, data, mtime=1_700_000_000)
    # A copy of the same size and mtime, different bytes, already sits on cfs.
    bad = ws.write_scan(SCAN, bytes(4096), mtime=1_700_000_000, endpoint="cfs")
    code, doc = audit(run_cli, ws)
    assert code == 2
    (copy,) = doc["actions"]
    assert (copy["kind"], copy["target"], copy["replaces"]) == ("copy", "cfs", "unverified")
    assert copy["requires_approval"], "bytes nobody verified are overwritten only when approved"
    reconcile(run_cli, ws)
    assert bad.read_bytes() == bytes(4096)
    assert run_cli("--approve", copy["id"], config=ws.config_path).returncode == 0
    reconcile(run_cli, ws)
    assert bad.read_bytes() == data  # replaced atomically, then verified

    # Bytes rot in place after verification, with size and mtime preserved: the listing cannot
    # tell; the delete's last look re-hashes the copy and refuses.
    for _ in range(2):
        reconcile(run_cli, ws)
    (ws.cfs / SCAN).write_bytes(bytes(4096))
    os.utime(ws.cfs / SCAN, (1_700_000_000, 1_700_000_000))
    run_cli("--approve-all", "--yes", config=ws.config_path)
    reconcile(run_cli, ws)
    assert source.exists(), "the dtn copy was deleted on the strength of a corrupted cfs copy"
    store = StateStore(ws.state_path, readonly=True)
    kinds = [e["kind"] for e in store.events(scan=SCAN)]
    assert "delete.recheck_failed" in kinds
    # Evidence was dropped: the next pass re-hashes the copy, finds other bytes, and plans the
    # repair as a replace (the same action an operator approved above).
    run_cli("--approve-all", "--yes", config=ws.config_path)
    reconcile(run_cli, ws)
    assert (ws.cfs / SCAN).read_bytes() == data
    assert source.exists()


def test_unlistable_cfs_blocks_every_delete_that_needs_it(
    run_cli, workspace: LocalWorkspace
) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    for i in range(3):
        ws.write_scan(f"2026/s{i}.h5", os.urandom(100))
    for _ in range(3):
        reconcile(run_cli, ws)
    code, doc = audit(run_cli, ws)
    assert doc["summary"]["delete"] == 3
    shutil.move(ws.cfs, ws.root / "cfs-unmounted")  # the mount point vanishes
    code, doc = audit(run_cli, ws)
    assert code == 1
    assert [e["endpoint"] for e in doc["errors"]] == ["cfs"]
    assert "missing" in doc["errors"][0]["message"]
    assert not any(a["kind"] == "delete" for a in doc["actions"])
    blocked = {(b["scan"], b["endpoint"], b["reason_code"]) for b in doc["blocked"]}
    for i in range(3):
        assert (f"2026/s{i}.h5", "dtn", "endpoint_unknown") in blocked
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 1
    assert all((ws.dtn / f"2026/s{i}.h5").exists() for i in range(3))


def test_kill_9_mid_copy_leaves_no_partial_files_and_no_duplicates(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    ws = create_workspace(tmp_path / "ws")
    block = os.urandom(1 << 20)
    for i in range(6):
        ws.write_scan(f"2026/big{i}.h5", block * 48 + bytes([i]))  # ~48 MB each
    argv = [
        sys.executable,
        "-m",
        "bl931tui",
        "--config",
        str(ws.config_path),
        "--reconcile",
        "--once",
    ]
    # The first copy hangs after its first chunk (tests/service/crash_inject), so the kill below
    # lands mid-copy however fast or loaded the machine is; the wait is only for it to start.
    env = {
        **os.environ,
        "BL931_HANG_MID_COPY": "1",
        "PYTHONPATH": os.pathsep.join([str(CRASH_INJECT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

    def copying() -> bool:
        return (ws.cfs / "2026").is_dir() and any((ws.cfs / "2026").glob(".bl931-*"))

    # Until the copy is caught in progress, or the process ends without one.
    wait_for(lambda: copying() or proc.poll() is not None, timeout=120, what="a copy to start")
    mid_copy = copying()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert mid_copy, "the copy was never caught in progress"
    assert any((ws.cfs / "2026").glob(".bl931-*"))  # the crash left a temporary file behind
    for _ in range(3):
        reconcile(run_cli, ws)
    leftovers = [p for p in ws.root.rglob(".bl931-*") if p.name != MARKER_NAME]
    assert leftovers == []
    for i in range(6):
        assert md5(ws.cfs / f"2026/big{i}.h5") == md5(ws.dtn / f"2026/big{i}.h5")
        assert md5(ws.hpss / f"2026/big{i}.h5") == md5(ws.dtn / f"2026/big{i}.h5")
    assert sorted(p.name for p in (ws.cfs / "2026").iterdir()) == [f"big{i}.h5" for i in range(6)]
    store = StateStore(ws.state_path, readonly=True)
    assert store.integrity_check() == "ok"
    succeeded = [a for a in store.actions(["succeeded"]) if a.kind.value == "copy"]
    assert len(succeeded) == 12  # each scan copied once to cfs and once to hpss
    code, doc = audit(run_cli, ws)
    assert code == 0, doc  # converged: copied, archived, catalogued
    assert doc["summary"]["copy"] == 0 and doc["in_flight"] == []


def test_dry_run_human_output_and_exit_codes(run_cli, workspace: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    empty = run_cli("--dry-run", config=ws.config_path)
    assert empty.returncode == 0 and "No changes" in empty.stdout
    ws.write_scan("2026/line\nbreak.h5", b"x")
    drift = run_cli("--dry-run", config=ws.config_path)
    assert drift.returncode == 2
    assert "+ copy" in drift.stdout and "2026/line\\nbreak.h5" in drift.stdout
    assert drift.stdout.rstrip().splitlines()[-1].startswith("Plan: 1 to copy")
    later = run_cli(
        "--dry-run", "--json", "--as-of", "2030-01-01T00:00:00+00:00", config=ws.config_path
    )
    assert json.loads(later.stdout)["as_of"] == "2030-01-01T00:00:00+00:00"
    bad = run_cli("--dry-run", "--as-of", "yesterday", config=ws.config_path)
    assert bad.returncode == 64 and "ISO 8601" in bad.stderr
    assert run_cli("--once", config=ws.config_path).returncode == 64
    assert run_cli("--approve", "feedface", config=ws.config_path).returncode == 64

"""Evidence is never reused for changed bytes: a scan rewritten with its size and mtime restored
(`cp -p`, `rsync -t`) is re-hashed by the walk, and an approved prune never deletes it; a copy
about to be deleted is re-hashed by the last look and must still hold the acquisition's bytes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from engine.state import StateStore
from engine.workspace import LocalWorkspace

SCAN = "2026/11/ALS-1/scan 0001.h5"
MTIME_NS = 1_700_000_000_123_456_789


def reconcile(run_cli, ws: LocalWorkspace, expect: int = 0) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == expect, done.stderr


def audit(run_cli, ws: LocalWorkspace) -> dict:  # type: ignore[no-untyped-def]
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert done.returncode in (0, 1, 2), done.stderr
    return json.loads(done.stdout)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def rewrite_in_place(path: Path, data: bytes) -> None:
    """`cp -p` onto an existing file: same inode, new bytes, the old mtime put back."""
    before = os.stat(path)
    with path.open("r+b") as stream:
        stream.write(data)
        stream.truncate()
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def replace_by_rename(path: Path, data: bytes) -> None:
    """`rsync -t`: new bytes in a temporary file, its mtime set, renamed over the old one."""
    before = os.stat(path)
    temp = path.with_name(f".{path.name}.rsync")
    temp.write_bytes(data)
    os.utime(temp, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(temp, path)


def approved_dtn_prune(run_cli, ws: LocalWorkspace, original: bytes) -> str:  # type: ignore[no-untyped-def]
    """Copy, archive and register one scan, then approve its dtn prune; returns the action id."""
    source = ws.write_scan(SCAN, original)
    os.utime(source, ns=(MTIME_NS, MTIME_NS))
    for _ in range(3):
        reconcile(run_cli, ws)
    deletes = [a for a in audit(run_cli, ws)["actions"] if a["kind"] == "delete"]
    assert [(d["target"], d["requires_approval"]) for d in deletes] == [("dtn", True)]
    approved = run_cli("--approve", deletes[0]["id"], config=ws.config_path)
    assert approved.returncode == 0, approved.stderr
    return str(deletes[0]["id"])


@pytest.mark.parametrize("rewrite", [rewrite_in_place, replace_by_rename], ids=["cp-p", "rsync-t"])
def test_a_rewrite_with_size_and_mtime_restored_is_rehashed_and_never_pruned(
    run_cli, workspace: LocalWorkspace, rewrite
) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    original, changed = os.urandom(8192), os.urandom(8192)
    approved_dtn_prune(run_cli, ws, original)

    rewrite(ws.dtn / SCAN, changed)
    assert os.stat(ws.dtn / SCAN).st_mtime_ns == MTIME_NS  # the listing cannot tell
    reconcile(run_cli, ws)

    assert (ws.dtn / SCAN).read_bytes() == changed, "bytes that exist nowhere else were deleted"
    store = StateStore(ws.state_path, readonly=True)
    scan = store.get_scan(SCAN)
    assert scan is not None and scan.checksum == md5(changed) and scan.version == 2
    assert "delete.done" not in [e["kind"] for e in store.events(scan=SCAN, limit=10_000)]
    # The approval was for version 1's prune; version 2's prune has another id and is not approved.
    doc = audit(run_cli, ws)
    assert not any(a["kind"] == "delete" and a.get("approved") for a in doc["actions"])


def test_a_cfs_copy_rotted_before_its_prune_is_not_deleted(
    run_cli, workspace: LocalWorkspace
) -> None:  # type: ignore[no-untyped-def]
    """The copy being deleted must still hold the bytes its copies were verified against."""
    ws = workspace
    original = os.urandom(4096)
    approved_dtn_prune(run_cli, ws, original)
    reconcile(run_cli, ws)  # the approved dtn prune runs
    assert not (ws.dtn / SCAN).exists()
    reconcile(run_cli, ws)
    deletes = [a for a in audit(run_cli, ws)["actions"] if a["kind"] == "delete"]
    assert [d["target"] for d in deletes] == ["cfs"]
    assert run_cli("--approve", deletes[0]["id"], config=ws.config_path).returncode == 0

    rewrite_in_place(ws.cfs / SCAN, bytes(4096))  # rot: same size, same mtime
    reconcile(run_cli, ws)

    assert (ws.cfs / SCAN).exists(), "a copy that no longer matches was deleted as if it did"
    store = StateStore(ws.state_path, readonly=True)
    skipped = [
        e for e in store.events(scan=SCAN, limit=10_000) if e["kind"] == "delete.recheck_failed"
    ]
    assert skipped and skipped[-1]["data"]["reason_code"] == "changed_since_inventory"
    assert "cfs" in skipped[-1]["message"]
    # It will not go away by itself: held for a person (`needs_attention`) until an operator
    # retries it, and not tried again meanwhile.
    blocked = [(b["kind"], b["endpoint"], b["reason_code"]) for b in audit(run_cli, ws)["blocked"]]
    assert ("delete", "cfs", "needs_attention") in blocked
    run_cli("--reconcile", "--once", config=ws.config_path)
    assert (ws.cfs / SCAN).exists()

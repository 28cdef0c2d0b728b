"""A verified copy is never overwritten: a changed scan is a new version, and replacing a verified
copy by it is a gated, receipted action — through the real CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from engine.state import StateStore
from engine.workspace import LocalWorkspace, create_workspace

SCAN = "2026/11/s0.h5"


@pytest.fixture
def ws(tmp_path: Path) -> LocalWorkspace:
    return create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=1000)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def audit(run_cli, ws: LocalWorkspace) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert done.returncode in (0, 1, 2), done.stderr
    return done.returncode, json.loads(done.stdout)


def passes(run_cli, ws: LocalWorkspace, n: int) -> None:  # type: ignore[no-untyped-def]
    for _ in range(n):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert done.returncode in (0, 1), done.stderr


def archived(run_cli, ws: LocalWorkspace, data: bytes) -> str:  # type: ignore[no-untyped-def]
    """The scan copied to cfs and hpss, verified; the dtn prune awaits approval."""
    ws.write_scan(SCAN, data)
    passes(run_cli, ws, 3)
    original = md5(ws.dtn / SCAN)
    assert md5(ws.cfs / SCAN) == original == md5(ws.hpss / SCAN)
    return original


def test_a_rewritten_scan_never_overwrites_its_verified_copies(run_cli, ws: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    original = archived(run_cli, ws, os.urandom(4096))
    ws.write_scan(SCAN, b"reprocessed by accident" * 10)  # rewritten in place on the DTN
    passes(run_cli, ws, 3)
    assert md5(ws.cfs / SCAN) == original, "the verified cfs copy was overwritten"
    assert md5(ws.hpss / SCAN) == original, "the tape copy was overwritten"

    code, doc = audit(run_cli, ws)
    (replace,) = [a for a in doc["actions"] if a["kind"] == "copy"]
    assert replace["target"] == "cfs" and replace["requires_approval"] is True
    assert replace["replaces"] == original and "replaces" in replace["reason"]
    # Tape takes the new version beside the older one, from cfs once cfs holds it.
    tape = [b for b in doc["blocked"] if b["endpoint"] == "hpss" and b["kind"] == "copy"]
    assert [b["reason_code"] for b in tape] == ["waiting_for_source"]
    assert code == 2  # the replace awaits approval

    assert run_cli("--approve", replace["id"], config=ws.config_path).returncode == 0
    passes(run_cli, ws, 2)
    new = md5(ws.dtn / SCAN)
    assert md5(ws.cfs / SCAN) == new != original
    assert md5(ws.hpss / SCAN) == original, "write-once tape keeps the older version"
    (versioned,) = [p for p in ws.hpss.joinpath(SCAN).parent.iterdir() if p.name != "s0.h5"]
    assert versioned.name.startswith("s0.h5.v2-") and md5(versioned) == new
    store = StateStore(ws.state_path, readonly=True)
    try:
        (receipt,) = [e["data"] for e in store.events(scan=SCAN) if e["kind"] == "copy.replaced"]
    finally:
        store.close()
    assert receipt["old_checksum"] == original and receipt["new_checksum"] == new
    assert receipt["approval_by"] and receipt["target"] == "cfs"


def test_a_scan_truncated_to_zero_raises_an_alert_and_waits(run_cli, ws: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    original = archived(run_cli, ws, os.urandom(2048))
    (ws.dtn / SCAN).write_bytes(b"")
    passes(run_cli, ws, 3)
    assert md5(ws.cfs / SCAN) == original
    code, doc = audit(run_cli, ws)
    assert code == 1
    (alert,) = [a for a in doc["alert_details"] if a["code"] == "version_suspect"]
    assert alert["scan"] == SCAN and alert["effect"] == "notify" and "0 bytes" in alert["message"]
    (replace,) = [a for a in doc["actions"] if a["kind"] == "copy"]
    assert replace["requires_approval"] and not replace["approved"]
    # The DTN prune of the empty version never relies on the older bytes.
    assert not any(a["kind"] == "delete" for a in doc["actions"])


def test_a_pruned_name_reappearing_with_other_bytes_waits_for_a_person(  # type: ignore[no-untyped-def]
    run_cli, ws: LocalWorkspace
) -> None:
    original = archived(run_cli, ws, os.urandom(2048))
    _, doc = audit(run_cli, ws)
    (prune,) = [a for a in doc["actions"] if a["kind"] == "delete"]
    assert run_cli("--approve", prune["id"], config=ws.config_path).returncode == 0
    passes(run_cli, ws, 1)
    assert not (ws.dtn / SCAN).exists()

    ws.write_scan(SCAN, os.urandom(1024))  # the name is reused for another measurement
    passes(run_cli, ws, 3)
    assert md5(ws.cfs / SCAN) == original and md5(ws.hpss / SCAN) == original
    code, doc = audit(run_cli, ws)
    assert code == 1
    assert any(
        a["code"] == "version_suspect" and "reappeared" in a["message"]
        for a in doc["alert_details"]
    )
    assert all(a["requires_approval"] for a in doc["actions"] if a["kind"] == "copy")


def test_a_replace_waits_while_the_older_version_is_nowhere_else(  # type: ignore[no-untyped-def]
    run_cli, tmp_path: Path
) -> None:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000, cfs_keep_days=1000)
    ws.write_scan(SCAN, os.urandom(512))
    passes(run_cli, ws, 1)  # on cfs only
    original = md5(ws.cfs / SCAN)
    hpss = ws.hpss / SCAN
    assert not hpss.exists()
    ws.write_scan(SCAN, os.urandom(700))
    passes(run_cli, ws, 3)
    assert md5(ws.cfs / SCAN) == original
    code, doc = audit(run_cli, ws)
    assert code == 1  # the only copy of the older version waits for a person
    blocked = [b for b in doc["blocked"] if b["endpoint"] == "cfs" and b["kind"] == "copy"]
    assert [b["reason_code"] for b in blocked] == ["version_conflict"]
    assert not any(a["kind"] == "copy" and a["target"] == "cfs" for a in doc["actions"])


def test_bytes_without_evidence_are_never_overwritten_on_tape(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The last copy of v1 sits on tape and its evidence is void (its mtime was touched); the
    name is reused on the DTN: the new version must never be written over those bytes."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0)
    ws.write_scan(SCAN, os.urandom(1024))
    passes(run_cli, ws, 3)
    for _ in range(3):  # approve the dtn prune, then the cfs prune
        run_cli("--approve-all", "--yes", config=ws.config_path)
        passes(run_cli, ws, 1)
    assert not (ws.dtn / SCAN).exists() and not (ws.cfs / SCAN).exists()
    original = md5(ws.hpss / SCAN)
    os.utime(ws.hpss / SCAN)  # evidence no longer matches the listing
    ws.write_scan(SCAN, b"another measurement under the same name" * 7)
    passes(run_cli, ws, 1)
    code, doc = audit(run_cli, ws)
    assert code == 1
    assert any(
        a["code"] == "version_suspect" and "reappeared" in a["message"]
        for a in doc["alert_details"]
    )
    assert [a["requires_approval"] for a in doc["actions"] if a["kind"] == "copy"] == [True]

    for _ in range(4):  # an operator approves everything the new version asks for
        run_cli("--approve-all", "--yes", config=ws.config_path)
        passes(run_cli, ws, 1)
    assert md5(ws.hpss / SCAN) == original, "the only copy of v1 was overwritten on tape"
    # The new version went beside those bytes, under a versioned name (write-once tape).
    (versioned,) = [p for p in ws.hpss.joinpath(SCAN).parent.iterdir() if p.name != "s0.h5"]
    assert versioned.name.startswith("s0.h5.v2-")
    assert versioned.read_bytes() == b"another measurement under the same name" * 7
    code, doc = audit(run_cli, ws)
    assert not [b for b in doc["blocked"] if b["reason_code"] == "version_conflict"], doc


def test_a_copy_never_overwrites_a_users_file_without_approval(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A file a user put at the scan's path on CFS before the copy arrives is not ours."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000, cfs_keep_days=1000)
    (ws.cfs / SCAN).parent.mkdir(parents=True)
    (ws.cfs / SCAN).write_bytes(b"a user's own analysis, only here")
    ws.write_scan(SCAN, os.urandom(256))
    passes(run_cli, ws, 2)
    assert (ws.cfs / SCAN).read_bytes() == b"a user's own analysis, only here"
    code, doc = audit(run_cli, ws)
    (copy,) = [a for a in doc["actions"] if a["kind"] == "copy" and a["target"] == "cfs"]
    assert copy["requires_approval"] and copy["replaces"] == "unverified"
    assert code == 2


def test_a_replace_never_relies_on_a_rotted_tape_copy_of_the_older_version(  # type: ignore[no-untyped-def]
    run_cli, ws: LocalWorkspace
) -> None:
    """v1 on cfs and hpss; the DTN is rewritten (v2) and the replace of v1 at cfs approved; the
    hpss copy of v1 rots in place (same size and mtime: its listing and evidence still look
    fine). The replace's last look must re-hash hpss and refuse: cfs then holds the last intact
    v1. (Before the replace had a last look, v2 was copied over it.)"""
    original = archived(run_cli, ws, os.urandom(4096))
    ws.write_scan(SCAN, b"reprocessed by accident" * 10)
    passes(run_cli, ws, 1)
    _, doc = audit(run_cli, ws)
    (replace,) = [a for a in doc["actions"] if a["kind"] == "copy" and a["target"] == "cfs"]
    assert replace["replaces"] == original
    assert run_cli("--approve", replace["id"], config=ws.config_path).returncode == 0
    tape = ws.hpss / SCAN
    before = tape.stat()
    tape.write_bytes(bytes(b ^ 0x5A for b in tape.read_bytes()))  # rot: same size
    os.utime(tape, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same mtime
    passes(run_cli, ws, 2)
    assert md5(ws.cfs / SCAN) == original, "the last intact copy of v1 was overwritten"
    store = StateStore(ws.state_path, readonly=True)
    try:
        refused = [
            e["data"]["reason_code"]
            for e in store.events(scan=SCAN)
            if e["kind"] == "copy.recheck_failed"
        ]
        replaced = [e for e in store.events(scan=SCAN) if e["kind"] == "copy.replaced"]
    finally:
        store.close()
    assert refused[:1] == ["copy_mismatch"] and not replaced
    code, doc = audit(run_cli, ws)
    assert code == 1
    held = [b for b in doc["blocked"] if b["endpoint"] == "cfs" and b["kind"] == "copy"]
    assert [b["reason_code"] for b in held] == ["version_conflict"]


def test_a_new_version_is_archived_to_tape_beside_the_older_one(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """v1 on cfs and on tape (`tape = true`); the DTN is rewritten (v2) and the replace at cfs
    approved. Tape must get v2 as a distinct object under a versioned name beside v1, which is
    never touched; each version keeps its own evidence; the prune of v2 from the DTN relies on
    the versioned object and its receipt names it. (Before, v2 was blocked at tape as
    `version_conflict` and never archived.)"""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0)
    original = archived(run_cli, ws, os.urandom(4096))
    ws.write_scan(SCAN, b"second measurement" * 20)
    passes(run_cli, ws, 1)
    _, doc = audit(run_cli, ws)
    assert not [b for b in doc["blocked"] if b["reason_code"] == "version_conflict"]
    (replace,) = [a for a in doc["actions"] if a["kind"] == "copy" and a["target"] == "cfs"]
    assert run_cli("--approve", replace["id"], config=ws.config_path).returncode == 0
    passes(run_cli, ws, 1)  # the replace at cfs
    _, doc = audit(run_cli, ws)
    (archive,) = [a for a in doc["actions"] if a["kind"] == "copy" and a["target"] == "hpss"]
    store = StateStore(ws.state_path, readonly=True)
    try:
        scan = store.get_scan(SCAN)
    finally:
        store.close()
    assert scan is not None and scan.version == 2
    name = f"{SCAN}.v2-{scan.checksum[:8]}"
    assert archive["target_name"] == name and not archive["requires_approval"]
    assert "versioned name" in archive["reason"] and "replaces" not in archive
    passes(run_cli, ws, 2)

    new = md5(ws.dtn / SCAN)
    assert md5(ws.cfs / SCAN) == new
    assert md5(ws.hpss / SCAN) == original, "write-once tape keeps the older version"
    assert md5(ws.hpss / name) == new, "the new version is archived beside it"
    store = StateStore(ws.state_path, readonly=True)
    try:
        evidence = store.load_evidence()["hpss"]
    finally:
        store.close()
    assert evidence[SCAN].value == original and evidence[name].value == new

    _, doc = audit(run_cli, ws)
    assert not [b for b in doc["blocked"] if b["reason_code"] == "version_conflict"]
    assert not [a for a in doc["actions"] if a["kind"] == "copy"]
    for target in ("dtn", "cfs"):  # the prunes of v2: the cfs one relies on the tape copy
        _, doc = audit(run_cli, ws)
        (prune,) = [a for a in doc["actions"] if a["kind"] == "delete" and a["target"] == target]
        assert run_cli("--approve", prune["id"], config=ws.config_path).returncode == 0
        passes(run_cli, ws, 1)
    assert not (ws.dtn / SCAN).exists() and not (ws.cfs / SCAN).exists()
    store = StateStore(ws.state_path, readonly=True)
    try:
        (receipt,) = [r for r in store.receipts(SCAN) if r["endpoint"] == "cfs"]
    finally:
        store.close()
    assert receipt["acquisition"]["checksum"] == new
    (tape,) = [c for c in receipt["verified_copies"] if c["endpoint"] == "hpss"]
    assert tape["name"] == name and tape["checksum"] == new and tape["level"] == "checksum"
    assert md5(ws.hpss / SCAN) == original and md5(ws.hpss / name) == new
    passes(run_cli, ws, 1)  # the catalog's locations follow
    code, doc = audit(run_cli, ws)
    assert code == 0, doc
    catalog = (ws.root / "state" / "catalog.json").read_text()
    assert name in catalog, "the catalog names the versioned tape object"

"""A version a receipt says a copy holds is never overwritten as "unverified".

v1 on cfs and tape; the DTN rewritten (v2); the approved replace v1 -> v2 at cfs ran and the
process died before its outcome was recorded (the crash placed by `versions_inject`). The
restart settles it from a fresh listing (`copy.replaced`, v1 -> v2). Promised
(docs/safety.md, "Crashes and interruptions"):

1. the settling re-hashes cfs and, its bytes being v2, records v2 there as a verified copy
   (`how = "rehash_after_interrupted_replace"`): when the DTN becomes v3, replacing v2 at cfs
   is a `version_conflict` (v2 is verified nowhere else), never an "unverified" replace;
2. defence in depth: a store whose receipt names v2 at cfs but holds no evidence of it (as a
   bl931 from before layer 1 left it) still never lets v3 over v2, even with an operator
   approving everything; and the guard does not stop a replace over bytes that are no longer
   v2 (a user rewrote them at cfs).
Everything is driven through the real CLI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.receipted_versions import REHASH_HOW
from engine.state import StateStore
from engine.workspace import LocalWorkspace
from tests.adversary.test_versions_crash import V1, V2, V3, crashed_replace
from tests.adversary.versions_cli import (
    SCAN,
    approve_everything,
    audit,
    events,
    file_contents,
    holders,
    md5,
    passes,
)
from tests.conftest import RunCli


def _cfs_evidence(ws: LocalWorkspace) -> tuple[str | None, str] | None:
    store = StateStore(ws.state_path, readonly=True)
    try:
        evidence = store.load_evidence().get("cfs", {}).get(SCAN)
        return None if evidence is None else (evidence.value, evidence.how)
    finally:
        store.close()


def _forget_cfs_evidence(ws: LocalWorkspace) -> None:
    """The state an older bl931 left: the receipt, no evidence of v2 at cfs."""
    store = StateStore(ws.state_path)
    try:
        store.drop_evidence(SCAN, "cfs")
    finally:
        store.close()


def test_settling_rehashes_the_target_and_protects_the_submitted_version(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _ = crashed_replace(run_cli, tmp_path, monkeypatch, "copied")
    ws.write_scan(SCAN, V3)  # before the restart: tape never gets v2
    passes(run_cli, ws, 1)
    (receipt,) = events(ws, SCAN, "copy.replaced")
    assert receipt["new_checksum"] == md5(V2)
    assert _cfs_evidence(ws) == (md5(V2), REHASH_HOW)
    (rehashed,) = events(ws, SCAN, "copy.rehashed")
    assert rehashed["checksum"] == md5(V2) and rehashed["target"] == "cfs"
    passes(run_cli, ws, 2)
    assert holders(ws, V2) == [f"cfs:{SCAN}"]
    code, doc = audit(run_cli, ws)
    blocked = [b for b in doc["blocked"] if b["endpoint"] == "cfs" and b["kind"] == "copy"]
    assert [b["reason_code"] for b in blocked] == ["version_conflict"], doc["blocked"]
    assert not any(a["kind"] == "copy" and a["target"] == "cfs" for a in doc["actions"])
    assert code == 1


def test_a_receipt_without_evidence_still_keeps_the_only_copy_of_its_version(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _ = crashed_replace(run_cli, tmp_path, monkeypatch, "copied")
    ws.write_scan(SCAN, V3)  # before the restart: tape never gets v2
    passes(run_cli, ws, 1)
    assert events(ws, SCAN, "copy.replaced")
    _forget_cfs_evidence(ws)
    passes(run_cli, ws, 1)
    _, doc = audit(run_cli, ws)
    (offered,) = [a for a in doc["actions"] if a["kind"] == "copy" and a["target"] == "cfs"]
    assert offered["replaces"] == "unverified"  # the plan alone cannot tell
    approve_everything(run_cli, ws, 4)
    assert file_contents(ws.cfs)[SCAN] == V2, "v3 was written over the only copy of v2"
    assert holders(ws, V1) and holders(ws, V3) and holders(ws, V2) == [f"cfs:{SCAN}"]
    refused = [
        e for e in events(ws, SCAN, "copy.recheck_failed") if e["reason_code"] == "version_conflict"
    ]
    assert refused, "the replace was not refused by its last look"
    # The last look re-hashed cfs: v2 is a verified copy again, and the plan blocks it itself.
    assert _cfs_evidence(ws) == (md5(V2), REHASH_HOW)
    code, doc = audit(run_cli, ws)
    blocked = [b for b in doc["blocked"] if b["endpoint"] == "cfs" and b["kind"] == "copy"]
    assert [b["reason_code"] for b in blocked] == ["version_conflict"]
    assert code == 1


def test_the_guard_lets_a_replace_over_bytes_that_are_no_longer_that_version(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _ = crashed_replace(run_cli, tmp_path, monkeypatch, "copied")
    ws.write_scan(SCAN, V3)  # before the restart: tape never gets v2
    passes(run_cli, ws, 1)
    assert events(ws, SCAN, "copy.replaced")
    _forget_cfs_evidence(ws)
    user = os.urandom(333)  # someone rewrote the cfs copy: v2 is not there any more
    (ws.cfs / SCAN).write_bytes(user)
    passes(run_cli, ws, 1)
    approve_everything(run_cli, ws, 4)
    assert file_contents(ws.cfs)[SCAN] == V3
    assert not [
        e for e in events(ws, SCAN, "copy.recheck_failed") if e["reason_code"] == "version_conflict"
    ]

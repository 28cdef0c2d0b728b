"""Adversary: names and approvals. A user scan whose name is exactly the versioned name bl931
would give the next version on tape (`<scan path>.v<version>-<8 hex of checksum>`), in both
orders; and an approval given for v2's replace while the DTN is already rewritten to v3.
Promises: tape is never written over, no version's last copy is lost, an approval is bound to
the version (checksum) it was given for.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.workspace import create_workspace
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


def test_a_user_scan_already_holding_the_versioned_name_on_tape_is_never_overwritten(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """The user's own file `s0.h5.v2-<md5(v2)[:8]>` reaches tape first; then s0.h5 becomes v2,
    whose versioned tape name is that very path. Neither the user's file nor any version may be
    lost, and nothing on tape may change its bytes."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000, cfs_keep_days=1000)
    v1, v2, user = os.urandom(1500), b"v2 bytes " * 100, b"a user's own data " * 40
    ws.write_scan(SCAN, v1)
    collide = f"{SCAN}.v2-{md5(v2)[:8]}"
    ws.write_scan(collide, user)
    passes(run_cli, ws, 3)
    assert file_contents(ws.hpss) == {SCAN: v1, collide: user}

    ws.write_scan(SCAN, v2)
    approve_everything(run_cli, ws, 5)
    tape = file_contents(ws.hpss)
    assert tape[SCAN] == v1 and tape[collide] == user, "tape was written over"
    for data in (v1, v2, user):
        assert holders(ws, data), "a version or the user's file was lost"
    # The versioned copy could not take its name: v2 is not archived on tape, and the copy waits
    # for a person (the mover refused to write over bytes it never verified) — never counted as
    # archived by the user's bytes.
    assert not any(w.startswith("hpss:") for w in holders(ws, v2))
    code, doc = audit(run_cli, ws)
    held = [b for b in doc["blocked"] if b["endpoint"] == "hpss" and b["kind"] == "copy"]
    assert [b["reason_code"] for b in held] == ["needs_attention"], held
    assert code == 1


def test_a_user_scan_taking_the_versioned_name_after_v2_was_archived(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """v2 is archived on tape under `s0.h5.v2-<8 hex>`; then a user writes a *scan* of that very
    name on the DTN with other bytes. Its copy to tape must not overwrite v2's object."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000, cfs_keep_days=1000)
    v1, v2, user = os.urandom(1500), b"v2 bytes " * 100, b"a user's own data " * 40
    ws.write_scan(SCAN, v1)
    passes(run_cli, ws, 3)
    ws.write_scan(SCAN, v2)
    approve_everything(run_cli, ws, 4)
    versioned = f"{SCAN}.v2-{md5(v2)[:8]}"
    assert file_contents(ws.hpss) == {SCAN: v1, versioned: v2}

    ws.write_scan(versioned, user)  # a new scan whose name is v2's tape object
    approve_everything(run_cli, ws, 5)
    tape = file_contents(ws.hpss)
    assert tape[SCAN] == v1 and tape[versioned] == v2, "tape was written over"
    for data in (v1, v2, user):
        assert holders(ws, data), "a version or the user's scan was lost"


def test_an_approval_for_v2s_replace_is_not_used_for_v3(run_cli: RunCli, tmp_path: Path) -> None:
    """The operator approves the replace of v1 by v2 at cfs; before it runs the DTN is rewritten
    again (v3). The approval must not let v3 over v1: cfs keeps v1 until v3's own replace is
    approved."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000, cfs_keep_days=1000)
    v1, v2, v3 = os.urandom(1500), b"v2 " * 300, b"v3 " * 400
    ws.write_scan(SCAN, v1)
    passes(run_cli, ws, 3)
    ws.write_scan(SCAN, v2)
    passes(run_cli, ws, 1)
    _, doc = audit(run_cli, ws)
    (replace,) = [a for a in doc["actions"] if a["kind"] == "copy" and a["target"] == "cfs"]
    assert replace["replaces"] == md5(v1)
    assert run_cli("--approve", replace["id"], config=ws.config_path).returncode == 0

    ws.write_scan(SCAN, v3)
    passes(run_cli, ws, 2)
    assert file_contents(ws.cfs)[SCAN] == v1, "v2's approval let v3 replace v1"
    assert not events(ws, SCAN, "copy.replaced")
    code, doc = audit(run_cli, ws)
    (again,) = [a for a in doc["actions"] if a["kind"] == "copy" and a["target"] == "cfs"]
    assert again["id"] != replace["id"] and again["requires_approval"]
    assert not again["approved"] and code == 2

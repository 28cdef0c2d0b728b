"""Adversary: a replace (v2 over v1 at cfs, approved) cut by a crash at each persisted step,
then, before the restart, something changes: the tape copy of v1 rots, the replace is rejected,
or the DTN is rewritten again (v3). Promises (docs/safety.md, "Crashes and interruptions"): an
interrupted replace is settled from a fresh listing and receipted for the version it was
submitted for (both checksums); it is resubmitted only if still planned, approved, past the
replace's last look and admitted by the decisions read again; no version's last copy is lost.
The crash is placed by `versions_inject/sitecustomize.py` in the child; the rest is the CLI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.state import StateStore
from engine.workspace import LocalWorkspace, create_workspace
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

INJECT = Path(__file__).parent / "versions_inject"
V1, V2, V3 = os.urandom(2500), b"version two " * 90, b"version three " * 120


def crashed_replace(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> tuple[LocalWorkspace, str]:
    """v1 on cfs and tape, the DTN rewritten (v2), the replace at cfs approved and cut at
    `step`. Returns the workspace and the replace's action id."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000, cfs_keep_days=1000)
    ws.write_scan(SCAN, V1)
    passes(run_cli, ws, 3)
    assert file_contents(ws.hpss) == {SCAN: V1} and file_contents(ws.cfs) == {SCAN: V1}
    ws.write_scan(SCAN, V2)
    passes(run_cli, ws, 1)
    _, doc = audit(run_cli, ws)
    (replace,) = [a for a in doc["actions"] if a["kind"] == "copy" and a["target"] == "cfs"]
    assert replace["replaces"] == md5(V1)
    assert run_cli("--approve", replace["id"], config=ws.config_path).returncode == 0
    with monkeypatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")]))
        patch.setenv("BL931_CRASH_AT_REPLACE", step)
        done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 137, f"no replace was interrupted at {step}: {done.stderr}"
    expected = V1 if step == "prepared" else V2
    assert file_contents(ws.cfs)[SCAN] == expected
    return ws, replace["id"]


def unsettled(ws: LocalWorkspace) -> list[str]:
    store = StateStore(ws.state_path, readonly=True)
    try:
        return [t.status for t in store.tasks() if t.status in ("preparing", "active")]
    finally:
        store.close()


@pytest.mark.parametrize("step", ["prepared", "copied", "submitted"])
def test_a_replace_cut_at_any_step_finishes_once_with_one_receipt(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    ws, _ = crashed_replace(run_cli, tmp_path, monkeypatch, step)
    passes(run_cli, ws, 3)
    assert file_contents(ws.cfs)[SCAN] == V2
    assert file_contents(ws.hpss)[SCAN] == V1, "tape's v1 was written over"
    (receipt,) = events(ws, SCAN, "copy.replaced")
    assert receipt["old_checksum"] == md5(V1) and receipt["new_checksum"] == md5(V2)
    assert receipt["target"] == "cfs"
    assert not unsettled(ws)
    assert holders(ws, V2) and holders(ws, V1)


def test_a_crashed_replace_is_not_resubmitted_over_v1_when_tapes_v1_rotted(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _ = crashed_replace(run_cli, tmp_path, monkeypatch, "prepared")
    tape = ws.hpss / SCAN
    before = tape.stat()
    tape.write_bytes(bytes(b ^ 0x33 for b in tape.read_bytes()))  # rot: same size, same mtime
    os.utime(tape, ns=(before.st_atime_ns, before.st_mtime_ns))
    passes(run_cli, ws, 3)
    assert file_contents(ws.cfs)[SCAN] == V1, "the last intact v1 was overwritten on resubmit"
    assert not events(ws, SCAN, "copy.replaced")
    assert not unsettled(ws)


def test_a_crashed_replace_rejected_before_the_restart_never_runs(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, action = crashed_replace(run_cli, tmp_path, monkeypatch, "prepared")
    assert run_cli("--reject", action, config=ws.config_path).returncode == 0
    passes(run_cli, ws, 3)
    assert file_contents(ws.cfs)[SCAN] == V1, "a rejected replace ran after the restart"
    assert not events(ws, SCAN, "copy.replaced")
    assert not unsettled(ws)


def test_a_crashed_replace_of_v2_never_writes_v3_after_the_dtn_changed_again(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _ = crashed_replace(run_cli, tmp_path, monkeypatch, "prepared")
    ws.write_scan(SCAN, V3)
    passes(run_cli, ws, 3)
    assert file_contents(ws.cfs)[SCAN] == V1, "v2's approval put other bytes over v1"
    assert not events(ws, SCAN, "copy.replaced")
    assert not unsettled(ws)
    code, doc = audit(run_cli, ws)
    (again,) = [a for a in doc["actions"] if a["kind"] == "copy" and a["target"] == "cfs"]
    assert again["replaces"] == md5(V1) and not again["approved"] and code == 2


@pytest.mark.parametrize("step", ["copied", "submitted"])
def test_a_replace_that_ran_before_the_crash_keeps_v2_after_v3_arrived(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """v2 was written over v1 at cfs, then the process died; the DTN became v3 before the
    restart. The receipt names v1 -> v2 (the version submitted), and v2 — now only at cfs —
    is never lost, even with an operator approving everything."""
    ws, _ = crashed_replace(run_cli, tmp_path, monkeypatch, step)
    ws.write_scan(SCAN, V3)
    passes(run_cli, ws, 2)
    (receipt,) = events(ws, SCAN, "copy.replaced")
    assert receipt["old_checksum"] == md5(V1) and receipt["new_checksum"] == md5(V2)
    assert not unsettled(ws)
    assert file_contents(ws.cfs)[SCAN] == V2 and holders(ws, V2) == [f"cfs:{SCAN}"]
    _, doc = audit(run_cli, ws)
    offered = [a for a in doc["actions"] if a["kind"] == "copy" and a["target"] == "cfs"]
    assert all(a["replaces"] != "unverified" for a in offered), offered
    approve_everything(run_cli, ws, 5)
    assert holders(ws, V1) and holders(ws, V3)
    assert holders(ws, V2), "the only copy of v2 (cfs) was overwritten by v3"
    assert file_contents(ws.hpss)[SCAN] == V1


def test_a_rewrite_while_the_replace_is_in_flight_never_lands_unapproved_bytes(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replace of v1 by v2 at cfs is approved; right as it is handed to the mover, the DTN
    file is rewritten (v3). cfs must end with v1 or v2 (the approved version), never v3; v1
    stays intact somewhere; any receipt names v1 -> v2 only."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000, cfs_keep_days=1000)
    ws.write_scan(SCAN, V1)
    passes(run_cli, ws, 3)
    ws.write_scan(SCAN, V2)
    passes(run_cli, ws, 1)
    _, doc = audit(run_cli, ws)
    (replace,) = [a for a in doc["actions"] if a["kind"] == "copy" and a["target"] == "cfs"]
    assert run_cli("--approve", replace["id"], config=ws.config_path).returncode == 0
    with monkeypatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")]))
        patch.setenv("BL931_REWRITE_DURING_REPLACE", str(ws.dtn / SCAN))
        done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode in (0, 1), done.stderr
    v3 = (ws.dtn / SCAN).read_bytes()
    assert v3 not in (V1, V2), "the hook did not rewrite the DTN file"
    passes(run_cli, ws, 3)
    assert file_contents(ws.cfs)[SCAN] in (V1, V2), "unapproved bytes landed at cfs"
    assert holders(ws, V1), "v1 lost"
    for receipt in events(ws, SCAN, "copy.replaced"):
        assert receipt["new_checksum"] == md5(V2), receipt
    assert not unsettled(ws)

"""Adversary: a replace (v2 over v1 at cfs, approved) cut by a SIGKILL at each persisted step;
before the restart, its target cfs, or hpss (the tape endpoint holding the v1 the replace relies
on), is unmounted (a bare mount point) or swapped (another filesystem holding a copy of the same
tree, carrying another endpoint's marker).

Promise (docs/safety.md, "Crashes and interruptions", "Is it the right filesystem?"): an
interrupted replace is settled only from a listing of a target whose identity holds, and resumed
only after a last look that proves every endpoint involved; nothing is written onto the bare
mount point or the other filesystem, no receipt or copy is recorded from their listing, and the
replace converges (one receipt, v2 at cfs, v1 on tape) once the filesystem is back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adversary.test_tape_swaps import census, remount, unmount
from tests.adversary.test_versions_crash import V1, V2, crashed_replace, unsettled
from tests.adversary.versions_cli import SCAN, events, file_contents, holders, md5
from tests.conftest import RunCli


@pytest.mark.parametrize("how", ["bare mount point", "another filesystem"])
@pytest.mark.parametrize("swapped", ["cfs", "hpss"])
@pytest.mark.parametrize("step", ["prepared", "copied", "submitted"])
def test_an_interrupted_replace_waits_for_its_endpoints_to_be_proven(
    run_cli: RunCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    swapped: str,
    how: str,
) -> None:
    ws, _ = crashed_replace(run_cli, tmp_path, monkeypatch, step)
    root = ws.cfs if swapped == "cfs" else ws.hpss
    cfs_then = file_contents(ws.cfs)[SCAN]
    away = unmount(root, how, ws.dtn)
    before, kept = census(root), census(away)

    for _ in range(2):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode == 1, done.stderr  # an endpoint is unknown: a person must look
    assert census(root) == before, f"written onto {swapped}'s {how}"
    assert census(away) == kept, f"{swapped}'s own filesystem changed while it was away"
    if swapped == "hpss":
        assert file_contents(ws.cfs)[SCAN] == cfs_then, "replaced relying on an unproven tape"
    if step == "prepared" or swapped == "cfs":
        assert not events(ws, SCAN, "copy.replaced"), "receipted from an unproven listing"

    remount(root, away)
    for _ in range(3):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert "Traceback" not in done.stderr, done.stderr
    assert file_contents(ws.cfs)[SCAN] == V2
    assert file_contents(ws.hpss)[SCAN] == V1, "tape's v1 was written over"
    (receipt,) = events(ws, SCAN, "copy.replaced")
    assert receipt["old_checksum"] == md5(V1) and receipt["new_checksum"] == md5(V2)
    assert not unsettled(ws)
    assert holders(ws, V2) and holders(ws, V1)

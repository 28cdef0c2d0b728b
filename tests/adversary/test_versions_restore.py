"""Adversary: restore after versions. v1 on tape at the scan's path, v2 on tape under its
versioned name, the DTN pruned (approved); then the cfs copy is lost by hand. The copy that
brings cfs back must bring the *current* version (v2, read from the versioned tape object),
never silently the older v1 from the scan's own tape path; tape is never written over.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.workspace import create_workspace
from tests.adversary.versions_cli import (
    SCAN,
    approve_everything,
    audit,
    file_contents,
    md5,
    passes,
)
from tests.conftest import RunCli


def test_a_lost_cfs_copy_comes_back_as_the_current_version_from_its_versioned_tape_object(
    run_cli: RunCli, tmp_path: Path
) -> None:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=1000)
    v1, v2 = os.urandom(1800), b"the current version " * 60
    ws.write_scan(SCAN, v1)
    passes(run_cli, ws, 3)
    ws.write_scan(SCAN, v2)
    approve_everything(run_cli, ws, 5)  # replace at cfs, v2 beside v1 on tape, dtn pruned
    versioned = f"{SCAN}.v2-{md5(v2)[:8]}"
    assert file_contents(ws.hpss) == {SCAN: v1, versioned: v2}
    assert not (ws.dtn / SCAN).exists() and file_contents(ws.cfs) == {SCAN: v2}

    (ws.cfs / SCAN).unlink()  # lost by hand
    passes(run_cli, ws, 1)
    _, doc = audit(run_cli, ws)
    (lost,) = [a for a in doc["alert_details"] if a["code"] == "missing_fraction"]
    done = run_cli(
        "--acknowledge", lost["id"], "--why", "lost by hand; restore it", config=ws.config_path
    )
    assert done.returncode == 0, done.stderr
    passes(run_cli, ws, 1)
    _, doc = audit(run_cli, ws)
    restores = [a for a in doc["actions"] if a["kind"] == "copy" and a["target"] == "cfs"]
    for action in restores:
        assert action.get("source_name") in (None, versioned), action
    approve_everything(run_cli, ws, 4)
    assert file_contents(ws.hpss) == {SCAN: v1, versioned: v2}, "tape was written over"
    cfs = file_contents(ws.cfs).get(SCAN)
    assert cfs != v1, "cfs was restored with the older version v1"
    assert cfs == v2, "cfs was not restored"
    assert [a.get("source_name") for a in restores] == [versioned], restores
    assert [a["source"] for a in restores] == ["hpss"], restores
    code, _ = audit(run_cli, ws)
    assert code == 0

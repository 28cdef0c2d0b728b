"""Adversary: a delete cut by a SIGKILL at one of its persisted steps is resumed by the next
process, which starts by settling it (before it observes anything). Meanwhile its target was
swapped (another filesystem holding the same files, carrying another endpoint's marker) or the
endpoint its last look relies on was unmounted (a bare mount point). Promise (docs/safety.md,
"Crashes and interruptions"): the interrupted delete is confirmed only from a listing of a
target whose identity holds, and resumed only after the same last look as a fresh delete;
nothing is deleted from the other filesystem, nothing is recorded deleted that is not, and it
converges once the filesystem is back.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from engine.identity import MARKER_NAME
from engine.workspace import create_workspace
from tests.adversary.test_root_swaps import DATA, event_kinds, not_engine_files, remount
from tests.adversary.versions_cli import approve_everything, file_contents, passes
from tests.conftest import RunCli

CRASH = Path(__file__).parents[1] / "service" / "crash_inject"


@pytest.mark.parametrize("step", ["prepared", "some_unlinked"])
@pytest.mark.parametrize("swapped", ["target dtn", "relied-on cfs"])
def test_an_interrupted_delete_resumes_only_on_proven_storage(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str, swapped: str
) -> None:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=3650)
    for rel, data in DATA.items():
        ws.write_scan(rel, data)
    passes(run_cli, ws, 3)
    assert file_contents(ws.cfs) == DATA and file_contents(ws.hpss) == DATA
    done = run_cli("--approve-all", "--yes", config=ws.config_path)
    assert "Traceback" not in done.stderr, done.stderr
    with monkeypatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(CRASH), os.environ.get("PYTHONPATH", "")]))
        patch.setenv("BL931_CRASH_AT_DELETE", step)
        done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 137, f"the delete was not cut at {step}: {done.stderr}"
    left_on_dtn = file_contents(ws.dtn)
    assert 0 < len(left_on_dtn) <= len(DATA)

    root = ws.dtn if swapped == "target dtn" else ws.cfs
    kept = file_contents(root)
    os.rename(root, f"{root}.away")
    if swapped == "target dtn":  # a copy of dtn's tree on another filesystem (cfs's marker)
        shutil.copytree(f"{root}.away", root)
        shutil.copy2(ws.cfs / MARKER_NAME, root / MARKER_NAME)
    else:
        root.mkdir()

    for _ in range(2):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode == 1, done.stderr  # an endpoint is unknown: a person must look
    assert file_contents(Path(f"{root}.away")) == kept, "the unmounted filesystem lost files"
    if swapped == "target dtn":
        assert file_contents(root) == kept, "files deleted from another filesystem"
    else:
        assert not_engine_files(root) == [], "written onto cfs's bare mount point"
        assert file_contents(ws.dtn) == left_on_dtn, "deleted relying on an unmounted copy"
    for scan in left_on_dtn:
        assert "delete.done" not in event_kinds(ws, scan), f"{scan} recorded deleted"

    remount(root)
    approve_everything(run_cli, ws, 3)
    assert file_contents(ws.dtn) == {}
    assert file_contents(ws.cfs) == DATA and file_contents(ws.hpss) == DATA

"""Adversary: a copy whose submission was persisted but never handed to its mover (the process
was killed in between) is sent again by the next pass. If its target was unmounted meanwhile (a
bare mount point, or another filesystem carrying a foreign identity marker), sending it would
write the scan onto the disk below the mount point and record a copy that is not on the
endpoint. Promise (docs/safety.md, "Endpoint identity"): nothing is written to an endpoint that
is not provably its storage; the submission waits, with the same id, until it is.

Found by the chaos harness (seed 931: a SIGKILL cut a pass after it persisted a copy to hpss,
the next pass ran with hpss unmounted and wrote `2026/` onto the bare mount point).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from engine.identity import MARKER_NAME
from engine.state import StateStore
from engine.workspace import LocalWorkspace, create_workspace
from tests.adversary.versions_cli import file_contents, passes
from tests.conftest import RunCli

INJECT = Path(__file__).parent / "submit_inject"
SCAN = "2026/11/s0.h5"
DATA = os.urandom(3000)


def preparing(ws: LocalWorkspace) -> list[tuple[str, str | None]]:
    store = StateStore(ws.state_path, readonly=True)
    try:
        return [(t.kind, t.target) for t in store.tasks(["preparing"])]
    finally:
        store.close()


def cut_copy_to_cfs(run_cli: RunCli, ws: LocalWorkspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ws.write_scan(SCAN, DATA)
    with monkeypatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")]))
        patch.setenv("BL931_CRASH_AT_COPY_TO", "cfs")
        done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 137, f"the copy to cfs was not cut: {done.stderr}"
    assert preparing(ws) == [("copy", "cfs")]
    assert (ws.cfs / MARKER_NAME).exists(), "the first pass should have written cfs's marker"


@pytest.mark.parametrize("mounted", ["bare mount point", "foreign marker"])
def test_an_interrupted_copy_is_not_sent_onto_an_unmounted_target(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mounted: str
) -> None:
    ws = create_workspace(tmp_path / "ws")
    cut_copy_to_cfs(run_cli, ws, monkeypatch)
    away = tmp_path / "cfs-unmounted"
    os.rename(ws.cfs, away)
    ws.cfs.mkdir()
    if mounted == "foreign marker":  # another filesystem, carrying hpss's marker
        shutil.copy2(ws.hpss / MARKER_NAME, ws.cfs / MARKER_NAME)

    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert "Traceback" not in done.stderr, done.stderr
    left = sorted(p.name for p in ws.cfs.iterdir() if p.name != MARKER_NAME)
    assert left == [], f"written onto cfs's {mounted}: {left}"
    assert preparing(ws) == [("copy", "cfs")], "the submission should wait for its target"

    for p in ws.cfs.iterdir():
        p.unlink()
    ws.cfs.rmdir()
    os.rename(away, ws.cfs)
    passes(run_cli, ws, 3)
    assert file_contents(ws.cfs) == {SCAN: DATA}
    assert file_contents(ws.hpss) == {SCAN: DATA}
    assert preparing(ws) == []

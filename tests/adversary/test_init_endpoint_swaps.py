"""Adversary: `bl931tui --init-endpoint cfs` run while cfs's filesystem is not mounted — over its
bare mount point, or over another filesystem holding another endpoint's data (with that
endpoint's marker, or without one) — and what the following passes then do, with an operator who
approves everything.

Promise (docs/safety.md, "Is it the right filesystem?"): `--init-endpoint` refuses a root that
carries another endpoint's marker; a marker written over a bare mount point makes nothing there
count: the copies bl931 verified on the real cfs are not found on it (never "pruned", never
relied on), nothing is copied onto it while they are missing, no delete relies on it, and once
the real filesystem is back (and the operator adopts its marker again) everything converges.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from engine.identity import MARKER_NAME
from engine.workspace import create_workspace
from tests.adversary.test_root_swaps import DATA, event_kinds
from tests.adversary.test_tape_swaps import census, remount, unmount
from tests.adversary.versions_cli import approve_everything, file_contents, passes
from tests.conftest import RunCli


def settled(run_cli: RunCli, tmp_path: Path):  # type: ignore[no-untyped-def]
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=3650)
    for rel, data in DATA.items():
        ws.write_scan(rel, data)
    passes(run_cli, ws, 3)
    assert file_contents(ws.cfs) == DATA and file_contents(ws.hpss) == DATA
    return ws


def test_init_endpoint_refuses_a_root_holding_another_endpoints_data_and_marker(
    run_cli: RunCli, tmp_path: Path
) -> None:
    ws = settled(run_cli, tmp_path)
    away = Path(f"{ws.cfs}.away")
    os.rename(ws.cfs, away)
    shutil.copytree(ws.dtn, ws.cfs)  # dtn's filesystem (its marker too) mounted at cfs's path
    done = run_cli("--init-endpoint", "cfs", config=ws.config_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert "dtn" in done.stdout + done.stderr
    assert (ws.cfs / MARKER_NAME).read_bytes() == (ws.dtn / MARKER_NAME).read_bytes()


@pytest.mark.parametrize("how", ["bare mount point", "another filesystem"])
def test_init_endpoint_over_an_unmounted_root_makes_nothing_there_count(
    run_cli: RunCli, tmp_path: Path, how: str
) -> None:
    ws = settled(run_cli, tmp_path)
    away = unmount(ws.cfs, how, ws.hpss)
    if how == "another filesystem":  # another endpoint's data, its marker taken off by hand
        (ws.cfs / MARKER_NAME).unlink()
    done = run_cli("--init-endpoint", "cfs", config=ws.config_path)
    assert "Traceback" not in done.stderr, done.stderr
    before = census(ws.cfs)
    for _ in range(2):
        approve_everything(run_cli, ws, 1)
    assert census(ws.cfs) == before, f"written onto or deleted from cfs's {how}"
    if how == "bare mount point":
        assert file_contents(ws.dtn) == DATA, "dtn pruned relying on a bare mount point"
    for scan in DATA:
        assert "delete.done" not in event_kinds(ws, scan) or how != "bare mount point"

    remount(ws.cfs, away)
    done = run_cli("--init-endpoint", "cfs", config=ws.config_path)  # adopt the real marker
    assert done.returncode == 0, done.stderr
    approve_everything(run_cli, ws, 3)
    assert file_contents(ws.cfs) == DATA and file_contents(ws.hpss) == DATA
    assert file_contents(ws.dtn) == {}

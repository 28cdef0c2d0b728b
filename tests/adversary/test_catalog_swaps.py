"""Adversary: the local catalog's locations of a scan, after its copy endpoint cfs is unmounted (a
bare mount point) or swapped for another filesystem holding the same files (carrying another
endpoint's marker) — on its own, and right after a SIGKILL that cut the pass which wrote the
catalog before the state store recorded it (so the next pass plans the catalog action again).

Promise (docs/safety.md, "Is it the right filesystem?"): no catalog location is changed from the
listing of an endpoint that is not provably its storage — neither added from the other
filesystem's files nor dropped because the endpoint cannot be listed — and the catalog converges
once the filesystem is back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.workspace import LocalWorkspace, create_workspace
from tests.adversary.test_root_swaps import event_kinds
from tests.adversary.test_tape_swaps import census, remount, unmount
from tests.adversary.versions_cli import SCAN, passes
from tests.conftest import RunCli

INJECT = Path(__file__).parent / "catalog_inject"
DATA = os.urandom(3000)


def locations(ws: LocalWorkspace) -> dict[str, list[str]]:
    """scan -> the endpoints the catalog file lists for it (read straight from the file)."""
    doc = json.loads((ws.state_path.parent / "catalog.json").read_text("utf-8"))
    out = {}
    for dataset in doc["datasets"].values():
        scan = dataset["description"].removeprefix("Beamline 9.3.1 scan ")
        where = dataset["scientificMetadata"]["locations"]
        out[scan] = sorted(loc["endpoint"] for loc in where)
    return out


@pytest.mark.parametrize("crash", ["no crash", "catalog written, not recorded"])
@pytest.mark.parametrize("how", ["bare mount point", "another filesystem"])
def test_catalog_locations_never_follow_an_unproven_endpoint(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, crash: str
) -> None:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000, cfs_keep_days=1000)
    ws.write_scan(SCAN, DATA)
    passes(run_cli, ws, 1)
    if crash == "no crash":
        passes(run_cli, ws, 2)
        listed = ["cfs", "dtn", "hpss"]
    else:  # the pass that writes cfs into the catalog dies right after writing the file
        with monkeypatch.context() as patch:
            patch.setenv(
                "PYTHONPATH", os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")])
            )
            patch.setenv("BL931_CRASH_AFTER_CATALOG_WRITE", "1")
            done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert done.returncode == 137, done.stderr
        listed = locations(ws)[SCAN]
        assert "cfs" in listed, listed
        assert not event_kinds(ws, SCAN).count("catalog.register"), "setup: it was recorded"

    assert locations(ws) == {SCAN: listed}

    away = unmount(ws.cfs, how, ws.dtn)
    before = census(ws.cfs)
    for _ in range(2):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode == 1, done.stderr
    assert census(ws.cfs) == before, f"written onto cfs's {how}"
    assert locations(ws) == {SCAN: listed}, "catalog locations changed from an unproven cfs"

    remount(ws.cfs, away)
    passes(run_cli, ws, 3)
    assert locations(ws) == {SCAN: ["cfs", "dtn", "hpss"]}
    # A registration written but not recorded before the crash is adopted from the catalog at
    # the next pass into the registrations bl931 keeps (tests/adversary/test_catalog_adoption.py).
    assert event_kinds(ws, SCAN).count("catalog.register") == (crash == "no crash")
    assert event_kinds(ws, SCAN).count("catalog.adopted") == (crash != "no crash")

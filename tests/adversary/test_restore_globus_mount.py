"""Adversary: a recall from tape into a Globus endpoint with a local `path` (NERSC CFS as a
collection, also mounted here), whose mount is bare when the recall runs. A Globus endpoint
carries no identity marker, so its mount is not proven by one: were the recall placed through
the bare mount point, the scan would be written onto the disk below it and recorded as a
verified copy on the collection, which never got it.

Promise (docs/safety.md, "Is it the right filesystem?", "The last look"): nothing is written
below a bare mount point and no copy is recorded that is not on the endpoint; the recall runs
once the mount shows the collection again.

The world: dtn and cfs are collections of the fake Transfer API (`tests/fakes/transfer_api.py`),
each also mounted here (cfs through a symlink, which "unmounting" replaces with an empty
directory); hpss is a `kind = "tape"` endpoint on the local runner (docs/hpss.md).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.cli.globus_beamline import files_below
from tests.conftest import RunCli
from tests.fakes.transfer_api import FakeTransferAPI

SCAN = "scan_0001"
MANIFEST = {f"{SCAN}/frame_1.h5": b"frame one" * 100, f"{SCAN}/frame_2.h5": b"frame 2" * 90}

CONFIG = """\
[beamline]
name = "9.3.1"

[state]
path = "{state}"

[inventory]
endpoint = "dtn"
scan = "directory"
depth = 1
quiet_seconds = 0
checksum = "md5"
watch = "off"

[endpoints.dtn]
kind = "globus"
collection = "{dtn}"
root = "/raw"
path = "{dtn_path}"

[endpoints.cfs]
kind = "globus"
collection = "{cfs}"
root = "/raw"
path = "{cfs_path}"

[endpoints.hpss]
kind = "tape"
runner = "local"
path = "{hpss_path}"
bundle_by = "cycle"
close_after_days = 0

[[copy]]
from = "dtn"
to = "cfs"

[[copy]]
from = "cfs"
to = "hpss"

[retention.cfs]
keep_days = 0
delete_requires = ["hpss"]
verify = "checksum"

[approval]
required_for = ["delete"]

[catalog]
kind = "none"
"""


def run(run_cli: RunCli, config: Path, *args: str) -> None:
    done = run_cli(*args, config=config)
    assert "Traceback" not in done.stderr, done.stderr


def cycle(run_cli: RunCli, config: Path, n: int) -> None:
    for _ in range(n):
        run(run_cli, config, "--reconcile", "--once")
        run(run_cli, config, "--approve-all", "--yes")


def test_a_recall_into_a_globus_endpoint_is_never_placed_through_its_bare_mount(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeTransferAPI() as fake:
        ids = {name: fake.add_collection(tmp_path / name) for name in ("dtn", "cfs")}
        roots = {name: tmp_path / name / "raw" for name in ids}
        for root in roots.values():
            root.mkdir(parents=True)
        mount = tmp_path / "mnt" / "cfs"
        mount.parent.mkdir()
        mount.symlink_to(roots["cfs"], target_is_directory=True)
        (tmp_path / "hpss").mkdir()
        state = tmp_path / "state" / "state.sqlite"
        state.parent.mkdir()
        config = tmp_path / "bl931.toml"
        config.write_text(
            CONFIG.format(
                state=state,
                dtn_path=roots["dtn"],
                cfs_path=mount,
                hpss_path=tmp_path / "hpss",
                **ids,
            ),
            "utf-8",
        )
        for name, value in fake.environ.items():
            monkeypatch.setenv(name, value)
        for rel, data in MANIFEST.items():
            (roots["dtn"] / rel).parent.mkdir(parents=True, exist_ok=True)
            (roots["dtn"] / rel).write_bytes(data)

        cycle(run_cli, config, 6)
        assert list((tmp_path / "hpss").rglob("*.tar")), "setup: nothing was bundled"
        assert files_below(roots["cfs"]) == set(), "setup: the approved cfs prune did not run"

        run(run_cli, config, "--restore", SCAN, "--to", "cfs")
        run(run_cli, config, "--reconcile", "--once")
        run(run_cli, config, "--approve-all", "--yes")
        mount.unlink()
        mount.mkdir()  # the bare mount point
        for _ in range(2):
            run(run_cli, config, "--reconcile", "--once")
        left = sorted(p.relative_to(mount).as_posix() for p in mount.rglob("*"))
        assert left == [], f"the recall was placed below cfs's bare mount point: {left}"
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
            recalled = conn.execute(
                "SELECT how FROM evidence WHERE endpoint = 'cfs' AND scan = ?", (SCAN,)
            ).fetchall()
        assert recalled == [], "a copy recorded on cfs that the collection never got"

        mount.rmdir()
        mount.symlink_to(roots["cfs"], target_is_directory=True)
        cycle(run_cli, config, 3)
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
            waiting = conn.execute("SELECT scan, target FROM tape_restores").fetchall()
            recalled = conn.execute(
                "SELECT how FROM evidence WHERE endpoint = 'cfs' AND scan = ?", (SCAN,)
            ).fetchall()
        assert waiting == [], "the recall never ran once the mount was back"
        # Placed on the collection (and, the retention being 0 days, maybe approved away again).
        assert recalled == [("recall",)] or files_below(roots["cfs"]) == set(), recalled

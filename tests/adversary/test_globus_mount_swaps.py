"""Adversary: a Globus endpoint with a local `path` (the dtn collection, mounted here, where the
inventory walks it) whose local mount is unmounted: the mount point is left bare while Globus
still lists the collection. Promise (docs/safety.md, "The last look", "Is it the right
filesystem?"): nothing concludes from the bare mount point — no copy recorded intact or not
intact, no evidence dropped, no scan taken for gone, no delete licensed — and the prune waits
until the mount shows the collection again, then runs.

The mount is a symlink to the fake collection's directory (`tests/fakes/transfer_api.py`);
unmounting replaces it with an empty directory, or with a copy of the collection's files made
with new mtimes (another filesystem). A clone with the same mtimes is a documented gap.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.globus_beamline import GlobusSite, files_below, globus_site, reconcile
from tests.conftest import RunCli

SCAN = "scan_0001"
MANIFEST = {f"{SCAN}/frame_1.h5": b"frame one" * 100, f"{SCAN}/sub/frame_2.h5": b"frame 2" * 90}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GlobusSite]:
    with globus_site(tmp_path, monkeypatch, cfs_keep_days=1000) as built:
        mount = tmp_path / "mnt" / "dtn"
        mount.parent.mkdir()
        mount.symlink_to(built.roots["dtn"], target_is_directory=True)
        text = built.config_path.read_text("utf-8")
        built.config_path.write_text(
            text.replace(f'path = "{built.roots["dtn"]}"', f'path = "{mount}"'), "utf-8"
        )
        yield built


def rows(site: GlobusSite, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{site.state_path}?mode=ro", uri=True) as conn:
        return sorted(conn.execute(query).fetchall())


def deletes(site: GlobusSite) -> list[object]:
    return [t for t in site.fake.tasks.values() if t.kind == "DELETE"]


@pytest.mark.parametrize("mounted", ["bare mount point", "another filesystem"])
def test_an_unmounted_local_path_of_a_globus_inventory_endpoint_concludes_nothing(
    site: GlobusSite, run_cli: RunCli, tmp_path: Path, mounted: str
) -> None:
    site.write_scan(MANIFEST)
    for _ in range(4):
        reconcile(run_cli, site)
    assert files_below(site.roots["cfs"]) == set(MANIFEST)
    assert files_below(site.roots["hpss"]) == set(MANIFEST)
    evidence = rows(site, "SELECT endpoint, scan, level, value FROM evidence")
    scans = rows(site, "SELECT id, checksum FROM scans")
    assert not deletes(site)

    mount = tmp_path / "mnt" / "dtn"
    mount.unlink()
    if mounted == "bare mount point":
        mount.mkdir()
    else:  # another filesystem holding a copy of the same files (`cp -r`: new mtimes)
        shutil.copytree(site.roots["dtn"], mount, copy_function=shutil.copy)
    seen = files_below(mount)
    for _ in range(2):
        run_cli("--approve-all", "--yes", config=site.config_path)
        done = run_cli("--reconcile", "--once", config=site.config_path)
        assert "Traceback" not in done.stderr, done.stderr
    assert files_below(mount) == seen, f"written to or deleted from the {mounted}"
    assert files_below(site.roots["dtn"]) == set(MANIFEST), "dtn pruned while its mount was bare"
    assert not deletes(site), "a delete was submitted relying on a bare mount point"
    assert rows(site, "SELECT endpoint, scan, level, value FROM evidence") == evidence
    assert rows(site, "SELECT id, checksum FROM scans") == scans
    kinds = {k for (k,) in rows(site, "SELECT DISTINCT kind FROM events")}
    assert "delete.done" not in kinds and "copy.replaced" not in kinds, kinds

    shutil.rmtree(mount)
    mount.symlink_to(site.roots["dtn"], target_is_directory=True)
    for _ in range(4):
        run_cli("--approve-all", "--yes", config=site.config_path)
        reconcile(run_cli, site)
    assert files_below(site.roots["dtn"]) == set(), "the prune never ran once the mount was back"
    assert files_below(site.roots["hpss"]) == set(MANIFEST)

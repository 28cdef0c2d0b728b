"""A Globus endpoint that is also mounted here is re-hashed through the mount at the last look.

CFS is a Globus collection with a local `path` (so inventory, watcher and checksums work
locally). Its copy is verified by the transfer; then its bytes rot with size and mtime
unchanged, so every listing — through Globus or the mount — still matches the evidence. The
DTN prune relying on it must re-hash the CFS copy through the mount right before it is
submitted, refuse, and only run once the CFS copy is repaired. A mount that does not show
what the collection lists (unmounted, or another filesystem) cannot vouch for anything.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.globus_site import (
    SCAN,
    Site,
    audit,
    deletes,
    dtn_prunes,
    flip_one_byte,
    intact,
    make_site,
    reconcile,
    until_dtn_prune_planned,
)
from tests.conftest import RunCli
from tests.fakes.transfer_api import FakeTransferAPI


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTransferAPI]:
    with FakeTransferAPI() as api:
        for name, value in api.environ.items():  # the child CLI talks to the fake
            monkeypatch.setenv(name, value)
        yield api


def recheck_codes(site: Site) -> list[str]:
    conn = sqlite3.connect(site.state_path)
    try:
        rows = conn.execute(
            "SELECT json_extract(data, '$.reason_code') FROM events "
            "WHERE kind = 'delete.recheck_failed' ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    return [code for (code,) in rows]


def approve_dtn_prune(run_cli: RunCli, site: Site) -> None:
    doc = until_dtn_prune_planned(run_cli, site)
    ids = [a["id"] for a in dtn_prunes(doc)]
    assert run_cli("--approve", *ids, config=site.config_path).returncode == 0


def test_rotten_bytes_on_a_mounted_globus_cfs_are_caught_at_the_last_look(
    run_cli: RunCli, tmp_path: Path, fake: FakeTransferAPI
) -> None:
    site = make_site(tmp_path, fake, cfs_mount=tmp_path / "cfs" / "raw")
    approve_dtn_prune(run_cli, site)
    flip_one_byte(site.cfs / SCAN / "frame_1.h5")  # after the transfer verified it

    reconcile(run_cli, site)

    assert deletes(fake) == [], "the DTN prune was submitted over a rotten CFS copy"
    assert intact(site.dtn)
    assert recheck_codes(site) == ["copy_mismatch"]
    _, doc = audit(run_cli, site)
    (repair,) = [a for a in doc["actions"] if a["kind"] == "copy"]
    assert repair["requires_approval"], "overwriting the CFS copy is a replace (gated)"
    assert dtn_prunes(doc) == []

    for _ in range(4):  # the operator approves the repair; then the prune runs
        run_cli("--approve-all", "--yes", config=site.config_path)
        reconcile(run_cli, site)
        if not (site.dtn / SCAN / "frame_1.h5").exists():
            assert intact(site.cfs), "pruned while the CFS copy is rotten"
    assert intact(site.cfs) and len(deletes(fake)) == 1
    assert not (site.dtn / SCAN / "frame_1.h5").exists()


def test_a_mount_that_does_not_show_the_collection_vouches_for_nothing(
    run_cli: RunCli, tmp_path: Path, fake: FakeTransferAPI
) -> None:
    mount = tmp_path / "mnt" / "cfs"
    mount.parent.mkdir()
    site = make_site(tmp_path, fake, cfs_mount=mount)
    mount.symlink_to(site.cfs, target_is_directory=True)
    approve_dtn_prune(run_cli, site)

    mount.unlink()  # unmounted: the mount point is left, empty
    mount.mkdir()
    reconcile(run_cli, site)
    assert deletes(fake) == [] and intact(site.dtn)
    assert recheck_codes(site) == ["endpoint_unknown"]

    # Another filesystem's copy of the scan is mounted there: its files are not the ones the
    # collection lists (other mtimes), so its hashes say nothing about the CFS copy.
    for name in ("frame_1.h5", "frame_2.h5"):
        (mount / SCAN).mkdir(exist_ok=True)
        (mount / SCAN / name).write_bytes((site.cfs / SCAN / name).read_bytes())
    reconcile(run_cli, site)
    assert deletes(fake) == [] and intact(site.dtn)
    assert recheck_codes(site) == ["endpoint_unknown", "endpoint_unknown"]
    _, doc = audit(run_cli, site)
    assert len(dtn_prunes(doc)) == 1, "the transfer evidence itself still stands"

    # Mounted again: the last look re-hashes and the prune runs.
    for child in (mount / SCAN).iterdir():
        child.unlink()
    (mount / SCAN).rmdir()
    mount.rmdir()
    mount.symlink_to(site.cfs, target_is_directory=True)
    reconcile(run_cli, site)
    assert len(deletes(fake)) == 1

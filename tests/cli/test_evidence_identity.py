"""Evidence belongs to a storage identity, not to an endpoint's name — through the real CLI.

The adversary migrates CFS to other storage (another Globus collection, another disk) with
`cp -p`, which keeps every path, size and mtime, so the old verification evidence still matches
the new listing — and one byte is corrupted on the way. bl931 must not prune the DTN on the
strength of evidence taken on the old storage: the copies at the new storage count as present
until their bytes are checked again (a checksum-sync transfer from a verified holder, or a
re-hash where the storage is mounted here), and only then is the DTN pruned. A deliberate
migration the operator vouches for is adopted explicitly (`--adopt-endpoint`), and recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.workspace import LocalWorkspace, create_workspace
from tests.cli.globus_site import (
    SCAN,
    Site,
    add_collection,
    audit,
    copy_tree_preserving,
    deletes,
    dtn_prunes,
    flip_one_byte,
    intact,
    make_site,
    reconcile,
    transfers,
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


@pytest.fixture
def site(tmp_path: Path, fake: FakeTransferAPI) -> Site:
    return make_site(tmp_path, fake)


def migrate_cfs(site: Site, *, corrupt: bool) -> Path:
    """Copy CFS to a new collection with `cp -p` (one byte flipped if `corrupt`) and repoint
    the config there. Returns the new storage's directory."""
    new = add_collection(site, "cfs2")
    copy_tree_preserving(site.cfs, new)
    if corrupt:
        flip_one_byte(new / SCAN / "frame_2.h5")
    site.repoint_cfs("cfs2")
    return new


def settle(run_cli: RunCli, site: Site, passes: int, check: object = None) -> None:
    for _ in range(passes):
        reconcile(run_cli, site)
        if callable(check):
            check()
        run_cli("--approve-all", "--yes", config=site.config_path)


def test_a_migrated_cfs_is_reverified_before_the_dtn_prune_relies_on_it(
    run_cli: RunCli, site: Site, fake: FakeTransferAPI
) -> None:
    old_identity = f"globus:{site.collections['cfs']}:/raw"
    until_dtn_prune_planned(run_cli, site)
    new = migrate_cfs(site, corrupt=True)

    code, doc = audit(run_cli, site)
    assert dtn_prunes(doc) == [], "the plan relies on evidence taken on the old storage"
    (blocked,) = [b for b in doc["blocked"] if b["kind"] == "delete" and b["endpoint"] == "dtn"]
    assert blocked["reason_code"] == "copy_unverified"
    assert "present" in blocked["reason"]
    (reverify,) = [a for a in doc["actions"] if a["kind"] == "copy"]
    assert (reverify["source"], reverify["target"]) == ("dtn", "cfs")
    assert not reverify["requires_approval"], "re-verifying from the DTN needs nobody"
    (alert,) = [a for a in doc["alert_details"] if a["code"] == "storage_changed"]
    assert alert["endpoint"] == "cfs" and alert["effect"] == "notify"
    assert old_identity in alert["message"] and "--adopt-endpoint cfs" in alert["message"]
    assert code == 1

    def the_dtn_is_pruned_only_over_good_bytes() -> None:
        if not (site.dtn / SCAN / "frame_1.h5").exists():
            assert intact(new), "the DTN was pruned while the only CFS copy is corrupt"

    settle(run_cli, site, 5, the_dtn_is_pruned_only_over_good_bytes)

    assert intact(new), "the checksum-sync transfer did not repair the corrupted file"
    assert not (site.dtn / SCAN).exists() or not any((site.dtn / SCAN).iterdir())
    assert len(deletes(fake)) == 1
    repair = transfers(fake)[-1]
    assert repair.body["sync_level"] in (3, "checksum") and repair.body["verify_checksum"]
    assert (repair.files_transferred, repair.files_skipped) == (1, 1), (
        "only the corrupted file moves; the intact one is compared by checksum and skipped"
    )
    code, doc = audit(run_cli, site)
    assert not any(a["code"] == "storage_changed" for a in doc["alert_details"])
    assert code == 0, doc


def test_an_intact_migration_is_reverified_without_moving_data(
    run_cli: RunCli, site: Site, fake: FakeTransferAPI
) -> None:
    until_dtn_prune_planned(run_cli, site)
    new = migrate_cfs(site, corrupt=False)
    before = len(transfers(fake))

    settle(run_cli, site, 4)

    (reverify,) = transfers(fake)[before:]
    assert reverify.bytes_transferred == 0 and reverify.files_skipped == 2
    assert intact(new) and len(deletes(fake)) == 1
    store = sqlite3.connect(site.state_path)
    try:
        (identity,) = store.execute(
            "SELECT identity FROM evidence WHERE endpoint = 'cfs' AND scan = ?", (SCAN,)
        ).fetchone()
    finally:
        store.close()
    assert identity == f"globus:{site.collections['cfs2']}:/raw"


def test_a_migration_that_lost_the_mtimes_is_reverified_once(
    run_cli: RunCli, site: Site, fake: FakeTransferAPI
) -> None:
    until_dtn_prune_planned(run_cli, site)
    new = add_collection(site, "cfs2")
    shutil.copytree(site.cfs, new, copy_function=shutil.copyfile, dirs_exist_ok=True)  # new mtimes
    site.repoint_cfs("cfs2")
    before = len(transfers(fake))
    settle(run_cli, site, 4)
    assert len(transfers(fake)) - before == 1, "the copy is re-verified again at every pass"
    assert len(deletes(fake)) == 1


def test_a_new_root_on_the_same_collection_is_another_storage(
    run_cli: RunCli, site: Site, fake: FakeTransferAPI
) -> None:
    until_dtn_prune_planned(run_cli, site)
    moved = site.dir_of("cfs", "/moved")
    copy_tree_preserving(site.cfs, moved)
    flip_one_byte(moved / SCAN / "frame_1.h5")
    site.repoint_cfs("cfs", "/moved")

    _, doc = audit(run_cli, site)
    assert dtn_prunes(doc) == []
    settle(run_cli, site, 5)
    assert intact(moved)


def test_adopting_a_deliberate_migration_rekeys_the_evidence_and_is_recorded(
    run_cli: RunCli, site: Site, fake: FakeTransferAPI
) -> None:
    old_identity = f"globus:{site.collections['cfs']}:/raw"
    until_dtn_prune_planned(run_cli, site)
    migrate_cfs(site, corrupt=False)
    new_identity = f"globus:{site.collections['cfs2']}:/raw"

    usage = [
        ("--adopt-endpoint", "cfs"),
        ("--from-identity", old_identity),
        ("--adopt-endpoint", "nosuch", "--from-identity", old_identity),
        ("--dry-run", "--from-identity", old_identity),
    ]
    for argv in usage:
        done = run_cli(*argv, config=site.config_path)
        assert done.returncode == 64, (argv, done.stderr)
    done = run_cli(
        "--adopt-endpoint", "cfs", "--from-identity", "globus:nothing-here:/raw",
        config=site.config_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert old_identity in done.stderr, "the refusal names the identities evidence is kept under"

    done = run_cli(
        "--adopt-endpoint", "cfs", "--from-identity", old_identity, config=site.config_path
    )
    assert done.returncode == 0, done.stderr
    assert new_identity in done.stdout and "the evidence of 1 copies" in done.stdout

    code, doc = audit(run_cli, site)
    assert code == 2 and len(dtn_prunes(doc)) == 1, "the adopted evidence counts at once"
    assert not [a for a in doc["actions"] if a["kind"] == "copy"]
    assert doc["alert_details"] == []
    store = sqlite3.connect(site.state_path)
    try:
        rows = store.execute(
            "SELECT message, data FROM events WHERE kind = 'endpoint.adopted'"
        ).fetchall()
    finally:
        store.close()
    (message, data), *_ = rows
    assert old_identity in data and new_identity in data and os.environ.get("USER", "") in message
    done = run_cli(
        "--adopt-endpoint", "cfs", "--from-identity", old_identity, config=site.config_path
    )
    assert done.returncode == 1, "nothing is left to adopt under the old identity"


def test_a_copy_in_flight_when_cfs_is_repointed_proves_nothing_about_the_new_storage(
    run_cli: RunCli, site: Site, fake: FakeTransferAPI
) -> None:
    reconcile(run_cli, site)  # inventories the scan and submits the copy dtn -> cfs
    (copy,) = transfers(fake)
    fake.finish(copy.task_id)  # Transfer completes it into the old collection
    new = migrate_cfs(site, corrupt=True)

    reconcile(run_cli, site)  # records the task's success: evidence about the old storage
    _, doc = audit(run_cli, site)
    assert dtn_prunes(doc) == [], "a copy into the old collection verified the new one"
    settle(run_cli, site, 4)
    assert intact(new)


# ---- local endpoints: the marker travels with `cp -a`, the storage does not ----------------


@pytest.fixture
def ws(tmp_path: Path) -> LocalWorkspace:
    return create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=1000)


def test_a_local_cfs_copied_to_another_disk_is_rehashed_before_it_is_relied_on(
    run_cli: RunCli, ws: LocalWorkspace
) -> None:
    ws.write_scan("2026/a.h5", os.urandom(4096))
    for _ in range(3):
        assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    # Migrated with `cp -a`: the identity marker is copied along; one byte is corrupted.
    new = ws.root / "cfs-new"
    shutil.copytree(ws.cfs, new, copy_function=shutil.copy2)
    flip_one_byte(new / "2026/a.h5")
    text = ws.config_path.read_text()
    ws.config_path.write_text(text.replace('path = "cfs"', 'path = "cfs-new"'))

    done = run_cli("--dry-run", "--json", config=ws.config_path)
    doc = json.loads(done.stdout)
    assert not [a for a in doc["actions"] if a["kind"] == "delete" and a["target"] == "dtn"], (
        "the plan relies on the old disk's evidence"
    )
    (repair,) = [a for a in doc["actions"] if a["kind"] == "copy" and a["target"] == "cfs"]
    assert repair["requires_approval"], "overwriting bytes never verified is a gated replace"
    dtn_file = ws.dtn / "2026/a.h5"
    good = dtn_file.read_bytes()
    for _ in range(4):
        run_cli("--approve-all", "--yes", config=ws.config_path)
        run_cli("--reconcile", "--once", config=ws.config_path)
        if not dtn_file.exists():
            assert (new / "2026/a.h5").read_bytes() == good
    assert not dtn_file.exists() and (new / "2026/a.h5").read_bytes() == good


def test_evidence_from_before_storage_identities_still_counts_after_the_upgrade(
    run_cli: RunCli, ws: LocalWorkspace
) -> None:
    ws.write_scan("2026/a.h5", os.urandom(4096))
    for _ in range(3):
        assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    # As a store upgraded from a version without identities: evidence rows carry none.
    with sqlite3.connect(ws.state_path) as conn:
        conn.execute("UPDATE evidence SET identity = NULL")
        conn.execute("DELETE FROM endpoint_storage")

    for _ in range(2):
        done = run_cli("--dry-run", "--json", config=ws.config_path)
        doc = json.loads(done.stdout)
        assert [a["target"] for a in doc["actions"] if a["kind"] == "delete"] == ["dtn"]
        assert doc["alert_details"] == [] and done.returncode == 2
        assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    with sqlite3.connect(ws.state_path) as conn:
        identities = {row[0] for row in conn.execute("SELECT identity FROM evidence")}
    assert None not in identities and len(identities) == 2  # cfs and hpss


def test_a_copy_changed_after_its_reverification_is_not_keyed_to_the_changed_listing(
    run_cli: RunCli, site: Site, fake: FakeTransferAPI
) -> None:
    """The re-verification's evidence takes the destination's listing only while it is the one
    observed before the task: a file rewritten after Transfer compared it (new mtime, bytes
    changed) leaves the evidence keyed to the source's listing, so the copy is verified again
    (and repaired) before the DTN prune relies on it."""
    until_dtn_prune_planned(run_cli, site)
    new = add_collection(site, "cfs2")
    shutil.copytree(site.cfs, new, copy_function=shutil.copyfile, dirs_exist_ok=True)  # new mtimes
    site.repoint_cfs("cfs2")
    before = len(transfers(fake))
    reconcile(run_cli, site)  # plans and submits the re-verification
    (reverify,) = transfers(fake)[before:]
    fake.finish(reverify.task_id)  # Transfer compared both files: they match, both skipped
    assert reverify.files_skipped == 2
    victim = new / SCAN / "frame_2.h5"
    flip_one_byte(victim)
    os.utime(victim, (victim.stat().st_atime, victim.stat().st_mtime + 60))

    def the_dtn_is_pruned_only_over_good_bytes() -> None:
        if not (site.dtn / SCAN / "frame_1.h5").exists():
            assert intact(new), "the DTN was pruned while the only CFS copy is corrupt"

    settle(run_cli, site, 5, the_dtn_is_pruned_only_over_good_bytes)
    assert intact(new), "the changed file was never verified again"
    assert len(transfers(fake)) - before > 1, "the changed copy was not verified again"
    # Once the copy stands still it is verified for good: no transfer at every pass.
    settled = len(transfers(fake))
    settle(run_cli, site, 2)
    assert len(transfers(fake)) == settled
    assert len(deletes(fake)) == 1

"""An approval given, then the world changes under it, through the real CLI (local beamline):
the catalog goes missing, the endpoint the delete relies on is repointed to other storage, or
a file is added to the directory scan. The approval must not license a delete the operator did
not see, and a pass that could not delete must not spend it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from engine.workspace import LocalWorkspace, create_workspace
from tests.cli.globus_site import flip_one_byte
from tests.cli.test_approvals import (
    ACQUIRED,
    DATA,
    SCAN,
    as_operator,
    audit,
    beamline,
    decide,
    receipts,
    reconcile,
    until_prune_awaits,
)
from tests.conftest import RunCli


def test_decisions_a_missing_catalog_blocks_the_approved_prune_without_spending_it(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = beamline(tmp_path)
    prune = until_prune_awaits(run_cli, ws)
    as_operator(monkeypatch, "alice")
    decide(run_cli, ws, "--approve", prune["id"])
    catalog = ws.root / "state" / "catalog.json"
    aside = ws.root / "catalog.json.unmounted"
    catalog.rename(aside)  # the catalog's volume is gone

    for _ in range(2):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert "Traceback" not in done.stderr, done.stderr
        assert (ws.dtn / SCAN).exists(), "deleted while the catalog was unknown"
    code, doc = audit(run_cli, ws)
    assert code != 0, doc["summary"]
    assert [e for e in doc["errors"] if e["endpoint"] == "catalog"], doc["errors"]
    assert not catalog.exists(), "an empty catalog was written over the missing one"

    aside.rename(catalog)  # mounted again: alice's approval, never spent, runs now
    reconcile(run_cli, ws)
    assert not (ws.dtn / SCAN).exists()
    (receipt,) = receipts(run_cli, ws)
    assert receipt["approval"]["by"] == "alice"


def test_decisions_an_approved_prune_after_cfs_is_repointed_to_a_bad_copy(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice approves the dtn prune (relying on cfs, verified by checksum). Then cfs is
    migrated with `cp -p` to another folder, one byte corrupted on the way, and
    `[endpoints.cfs]` repointed there. The approval must not delete the only good copy on the
    strength of the old storage's evidence."""
    ws = beamline(tmp_path)
    prune = until_prune_awaits(run_cli, ws)
    as_operator(monkeypatch, "alice")
    decide(run_cli, ws, "--approve", prune["id"])

    new_cfs = ws.root / "cfs2"
    shutil.copytree(ws.cfs, new_cfs, copy_function=shutil.copy2)
    flip_one_byte(new_cfs / SCAN)
    text = ws.config_path.read_text("utf-8")
    ws.config_path.write_text(
        text.replace(
            '[endpoints.cfs]\nkind = "local"\npath = "cfs"',
            '[endpoints.cfs]\nkind = "local"\npath = "cfs2"',
        ),
        "utf-8",
    )
    assert 'path = "cfs2"' in ws.config_path.read_text("utf-8")

    for _ in range(3):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert "Traceback" not in done.stderr, done.stderr
        dtn_ok = (ws.dtn / SCAN).exists() and (ws.dtn / SCAN).read_bytes() == DATA
        cfs_ok = (new_cfs / SCAN).exists() and (new_cfs / SCAN).read_bytes() == DATA
        assert dtn_ok or cfs_ok, "the dtn copy was deleted relying on a corrupted cfs copy"


def directory_beamline(tmp_path: Path) -> LocalWorkspace:
    ws = create_workspace(
        tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=100_000, scan_unit="directory"
    )
    for n in (1, 2):
        path = ws.dtn / "scan_0001" / f"frame_{n}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(DATA + bytes([n]))
        os.utime(path, (ACQUIRED.timestamp(), ACQUIRED.timestamp()))
    return ws


def test_decisions_a_frame_added_to_an_approved_directory_scan(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice approves the dtn prune of a two-frame directory scan; a third frame is written
    into it before the pass. The new frame (a new version, copied nowhere) is never deleted on
    alice's approval, and no prune of the new version runs without a new approval."""
    ws = directory_beamline(tmp_path)
    prune: dict[str, Any] | None = None
    for _ in range(6):
        _, doc = audit(run_cli, ws)
        found = [a for a in doc["actions"] if a["kind"] == "delete" and a["target"] == "dtn"]
        if found:
            prune = found[0]
            break
        reconcile(run_cli, ws)
    assert prune is not None and prune["scan"] == "scan_0001", "the dtn prune was never planned"
    as_operator(monkeypatch, "alice")
    decide(run_cli, ws, "--approve", prune["id"])

    late = ws.dtn / "scan_0001" / "frame_3.h5"
    late.write_bytes(b"a frame written late")
    for _ in range(3):
        reconcile(run_cli, ws)
        assert late.exists(), "a frame alice never saw was deleted on her approval"
    for name in ("frame_1.h5", "frame_2.h5"):
        assert (ws.dtn / "scan_0001" / name).exists(), f"{name} of the new version was deleted"
    done = run_cli("--receipt", "scan_0001", "--json", config=ws.config_path)
    assert json.loads(done.stdout or "[]") == []


def test_decisions_an_approval_given_before_a_globus_cfs_is_repointed(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Globus DTN and CFS (fake Transfer API). alice approves the DTN prune while CFS is the
    old collection; CFS is then migrated with `cp -p` to a new collection, one byte flipped,
    and repointed. No pass may prune the DTN while the only CFS copy is corrupt; the receipt
    of a prune that does run names alice and evidence from the new storage."""
    from tests.cli.globus_site import SCAN as DIR_SCAN
    from tests.cli.globus_site import (
        add_collection,
        copy_tree_preserving,
        intact,
        make_site,
        until_dtn_prune_planned,
    )
    from tests.cli.globus_site import dtn_prunes as globus_dtn_prunes
    from tests.cli.globus_site import reconcile as globus_reconcile
    from tests.fakes.transfer_api import FakeTransferAPI

    with FakeTransferAPI() as fake:
        for name, value in fake.environ.items():
            monkeypatch.setenv(name, value)
        site = make_site(tmp_path, fake)
        (prune,) = globus_dtn_prunes(until_dtn_prune_planned(run_cli, site))
        as_operator(monkeypatch, "alice")
        done = run_cli("--approve", prune["id"], config=site.config_path)
        assert done.returncode == 0, done.stderr

        new = add_collection(site, "cfs2")
        copy_tree_preserving(site.cfs, new)
        flip_one_byte(new / DIR_SCAN / "frame_2.h5")
        site.repoint_cfs("cfs2")
        for _ in range(5):
            globus_reconcile(run_cli, site)
            for task in fake.tasks.values():
                if task.status == "ACTIVE":
                    fake.finish(task.task_id)
            if not (site.dtn / DIR_SCAN / "frame_1.h5").exists():
                assert intact(new), "the DTN was pruned while the only CFS copy is corrupt"
        # Pinned: once the new storage is re-verified (the checksum sync repaired the flipped
        # byte), alice's approval, never spent, runs the prune.
        assert not any((site.dtn / DIR_SCAN).rglob("*.h5")), "the approved prune never ran"
        done = run_cli("--receipt", DIR_SCAN, "--json", config=site.config_path)
        (receipt,) = json.loads(done.stdout)
        assert receipt["approval"]["by"] == "alice"
        storages = {c["storage"] for c in receipt["verified_copies"]}
        assert storages == {f"globus:{site.collections['cfs']}:/raw"}, receipt

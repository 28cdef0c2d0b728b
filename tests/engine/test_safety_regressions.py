"""Sequences the safety property (`test_safety_property.py`) found, replayed step by step so that
each stays fixed (or, while it is not, is pinned as a strict xfail with its reproduction).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.engine.safety_checks import Knowledge, check_all
from tests.engine.safety_crash import Crash, crash_in_delete
from tests.engine.safety_world import World


def checked_passes(world: World, knowledge: Knowledge, count: int) -> None:
    for _ in range(count):
        world.run_pass()
        check_all(world, knowledge)


def archived_with_cfs_prune_crashed(tmp_path: Path, point: str) -> tuple[World, Knowledge]:
    """A file scan on cfs and hpss, pruned from the dtn; the cfs prune dies at `point`."""
    world = World(tmp_path / "ws", directory=False, gated=False)
    knowledge = Knowledge()
    world.write("s0.h5", [b"verified bytes"])
    for _ in range(4):
        checked_passes(world, knowledge, 1)
        if not world.content_at("dtn", "s0.h5"):
            break
    assert world.content_at("cfs", "s0.h5") and world.content_at("hpss", "s0.h5")
    with pytest.raises(Crash), crash_in_delete(world, point):
        world.run_pass()
    (task,) = [t for t in world.store.tasks() if t.kind == "delete" and t.target == "cfs"]
    assert task.status == ("active" if point == "submitted" else "preparing")
    return world, knowledge


def test_a_lost_delete_seen_through_an_alias_is_receipted_once_its_target_is_back(
    tmp_path: Path,
) -> None:
    """The cfs prune ran, but the process died before its receipt. At the restart, cfs's root
    is a symlink to hpss's: the fresh listing there shows the scan (hpss's copy). Before the
    fix, the delete was then closed as `lost` without a receipt, and once cfs was back its
    absence looked like data vanishing (a missing_fraction alert freezing every delete)."""
    world, knowledge = archived_with_cfs_prune_crashed(tmp_path, "submitted")
    try:
        assert not world.content_at("cfs", "s0.h5")
        world.unmount("cfs", alias="hpss")
        world.restart()
        checked_passes(world, knowledge, 1)
        world.remount("cfs")
        checked_passes(world, knowledge, 2)
        check_all(world, knowledge, settled=True)
        assert [r["endpoint"] for r in world.store.receipts("s0.h5")] == ["dtn", "cfs"]
        assert world.reconciler.dry_run(world.clock.now()).alerts == ()
    finally:
        world.close()


def test_an_interrupted_delete_is_never_confirmed_by_an_unmounted_target(tmp_path: Path) -> None:
    """The cfs prune died before the mover ran. At the restart cfs is unmounted (an empty
    mount point): before the fix, its listing "confirmed" the delete, and a receipt said the
    scan was removed while its bytes were on the unmounted filesystem."""
    world, knowledge = archived_with_cfs_prune_crashed(tmp_path, "prepared")
    try:
        world.unmount("cfs")
        world.restart()
        checked_passes(world, knowledge, 2)
        assert [r["endpoint"] for r in world.store.receipts("s0.h5")] == ["dtn"]
        assert world.remount("cfs") == []
        checked_passes(world, knowledge, 2)
        check_all(world, knowledge, settled=True)
        assert world.content_at("hpss", "s0.h5")
    finally:
        world.close()


def test_a_leftover_file_never_hides_a_verified_older_version(tmp_path: Path) -> None:
    """A directory scan changes file sets twice. The replace of v1 by v2 at cfs leaves v1's
    `frame_1.h5` beside v2 (a replace removes nothing); v2 (`frame_0`, `extra_1`) is verified
    only at cfs (tape keeps v1). When v3 (`extra_1` rewritten, `frame_0` gone) comes, the cfs
    listing matches v2's fingerprint neither whole nor filtered to v3's files, so v2 was not
    seen as an older version: a plain copy overwrote its only verified copy, unapproved and
    without a receipt. (Fixed: a copy whose listing changed since an older version was
    verified into it counts as possibly holding it.)"""
    world = World(tmp_path / "ws", directory=True, gated=False)
    knowledge = Knowledge()
    try:
        world.write("scan_0", [b"\x00", b"\x00"])
        checked_passes(world, knowledge, 2)  # v1 on cfs and hpss
        world.remove_file("scan_0")
        world.add_file("scan_0", b"v2 extra")
        checked_passes(world, knowledge, 1)  # v2 replaces v1 at cfs; hpss keeps v1
        world.remove_file("scan_0")  # frame_0.h5, the last by name
        world.write_file("scan_0/extra_1.h5", b"v3: other bytes, other size")
        world.learn_dtn()
        checked_passes(world, knowledge, 3)
        check_all(world, knowledge, settled=True)
    finally:
        world.close()


def test_a_leftover_with_a_name_of_the_new_version_never_hides_an_older_one(
    tmp_path: Path,
) -> None:
    """v1 (`frame_0`, `frame_1`) is on cfs and hpss; v2 (`frame_0` only, other bytes) replaces
    it at cfs with approval, leaving v1's `frame_1` beside it; v2 is verified only at cfs (tape
    keeps v1). Then the name is written with v1's bytes again (v3 = v1): the cfs listing has as
    many files as v3 and none beside v3's names, but not v2's fingerprint, so v2 was not seen
    at cfs and a plain copy overwrote its only verified copy, unapproved and unreceipted."""
    world = World(tmp_path / "ws", directory=True, gated=False, cfs_keep_days=1)
    knowledge = Knowledge()
    try:
        world.write("scan_0", [b"\x00", b"\x00"])
        checked_passes(world, knowledge, 3)  # v1 on cfs and hpss; pruned from the dtn
        world.write("scan_0", [b"\x00\x00"])  # the name reappears: v2 waits for approval
        world.approve_all()
        checked_passes(world, knowledge, 1)  # v2 replaces v1 at cfs; frame_1 stays beside it
        for _ in range(2):
            world.run_pass(drain=False)  # the dtn prune of v2 runs, unrecorded
            world.restart()
            check_all(world, knowledge)
        world.write("scan_0", [b"\x00", b"\x00"])  # v3: v1's bytes again
        checked_passes(world, knowledge, 3)
        world.approve_all()
        checked_passes(world, knowledge, 2)
        check_all(world, knowledge, settled=True)
    finally:
        world.close()


@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "by-rename"])
def test_a_rewrite_keeping_size_and_mtime_is_a_new_version(tmp_path: Path, in_place: bool) -> None:
    """A file rewritten with its size and mtime put back (`cp -p`, `rsync -t`) is new bytes:
    before the fix the inventory kept the old checksum, the dtn copy was pruned on the strength
    of the cfs copy of the *old* bytes, and the new bytes were gone, never copied anywhere."""
    world = World(tmp_path / "ws", directory=False, gated=False)
    knowledge = Knowledge()
    try:
        world.write("s0.h5", [b"first measurement"])
        checked_passes(world, knowledge, 1)  # verified on cfs
        world.rewrite("s0.h5", b"second", index=0, in_place=in_place, keep=True)
        new = world.content_at("dtn", "s0.h5")
        checked_passes(world, knowledge, 4)
        scan = world.store.get_scan("s0.h5")
        assert scan is not None and scan.checksum == hashlib.md5(new["s0.h5"]).hexdigest()
        assert any(world.holds(e, "s0.h5", new) for e in ("dtn", "cfs", "hpss"))
    finally:
        world.close()


def test_a_replace_cut_by_a_crash_is_receipted_even_if_the_scan_changes_again(
    tmp_path: Path,
) -> None:
    """v1 is on cfs and hpss; v2 (a frame emptied) replaces v1 at cfs, but the process dies
    before the copy's outcome is recorded (the bytes are already placed). Before the retry the
    scan changes again (a frame removed; v3 holds 0 bytes, so its copy waits for a person): the
    v2 copy is never retried, yet a fresh listing of cfs shows v1 overwritten there, so a
    `copy.replaced` receipt must name v1 at cfs (settled from the listing). (Before, only the
    intent recorded before the mover ran said so.)"""
    world = World(tmp_path / "ws", directory=True, gated=False, dtn_keep_days=1)
    knowledge = Knowledge()
    try:
        world.write("scan 1", [b"\x00", b"\x00"])
        checked_passes(world, knowledge, 2)  # v1 verified on cfs and hpss
        world.truncate("scan 1", every=False, keep_mtime=False)
        world.run_pass(drain=False)  # the replace is submitted, its outcome never recorded
        world.restart()
        check_all(world, knowledge)
        world.remove_file("scan 1")
        world.restart()
        checked_passes(world, knowledge, 4)  # v3 (0 bytes) waits for a person; nothing else
        check_all(world, knowledge, settled=True)
        (receipt,) = [
            e["data"] for e in world.store.events(scan="scan 1") if e["kind"] == "copy.replaced"
        ]
        assert receipt["target"] == "cfs" and receipt["settled_from_listing"] is True
    finally:
        world.close()


def test_a_replace_never_relies_on_a_rotted_copy_of_the_older_version(tmp_path: Path) -> None:
    """v1 is on cfs and hpss; the dtn is rewritten (v2); the hpss copy of v1 rots in place
    (same size and mtime). The replace of v1 at cfs must not count hpss as holding v1 (its
    listing is unchanged): its last look re-hashes the hpss copy and refuses. (Before the
    replace had a last look, it overwrote the last intact copy of v1.)"""
    world = World(tmp_path / "ws", directory=False, gated=False, dtn_keep_days=1)
    knowledge = Knowledge()
    try:
        world.write("s0.h5", [b"version one, verified twice"])
        checked_passes(world, knowledge, 2)  # v1 on cfs and hpss; the dtn is retained
        world.rewrite("s0.h5", b"version two", index=0, in_place=False, keep=False)
        ((scan, checksum),) = [k for k, where in world.verified.items() if "hpss" in where]
        world.rot(scan, checksum, "hpss", at=3)
        checked_passes(world, knowledge, 2)
        refused = [
            e["data"]["reason_code"]
            for e in world.store.events(scan=scan)
            if e["kind"] == "copy.recheck_failed"
        ]
        assert refused and refused[0] == "copy_mismatch", refused
    finally:
        world.close()


def test_an_interrupted_delete_is_receipted_for_the_version_it_deleted(tmp_path: Path) -> None:
    """v1 is on cfs and hpss, pruned from the dtn; the cfs prune of v1 dies after removing the
    file, and cfs is unmounted at the restart, so the interrupted delete waits (unknown is not
    absent). Meanwhile the name is written again at the dtn (v2, other bytes) and inventoried.
    When cfs is back, the delete is settled: its receipt must name v1 (the checksum and
    manifest the task carried, kept with it), not the scan's record, now v2. (Before the task
    kept its version, the receipt named v2 and no receipt named the v1 copy that was removed.)"""
    world, knowledge = archived_with_cfs_prune_crashed(tmp_path, "all_unlinked")
    try:
        world.unmount("cfs")
        world.restart()
        world.write("s0.h5", [b"another measurement under the same name"])
        checked_passes(world, knowledge, 1)
        world.remount("cfs")
        checked_passes(world, knowledge, 2)
    finally:
        world.close()


@pytest.mark.parametrize("directory", [False, True], ids=["file", "directory"])
def test_a_reject_after_an_approved_delete_was_cut_by_a_crash(
    tmp_path: Path, directory: bool
) -> None:
    """An operator approves the dtn prune; the pass dies inside it after the mover unlinked the
    first file (the task is still `preparing`, no `delete.submitted`); then a second operator
    rejects the delete. The reject cannot put back bytes removed under an approval that was in
    force when the task was persisted; what it must do: the rest is never resubmitted (a
    directory scan keeps its second file), and the receipt of what went names the approval
    that licensed it — not "unapproved" because the reject came later. (The property found
    this with `--hypothesis-seed=1`: its checker demanded the delete be approved *now*.)"""
    world = World(tmp_path / "ws", directory=directory, gated=True)
    knowledge = Knowledge()
    scan = "scan_0" if directory else "s0.h5"
    try:
        world.write(scan, [b"\x00", b"\x01"] if directory else [b"\x00"])
        checked_passes(world, knowledge, 2)  # on cfs and hpss; the dtn prune awaits approval
        (approved,) = world.approve_all()
        with pytest.raises(Crash), crash_in_delete(world, "some_unlinked"):
            world.run_pass()
        world.restart()
        (task,) = [t for t in world.store.tasks() if t.kind == "delete"]
        assert task.status == "preparing" and task.action_ids == (approved,)
        check_all(world, knowledge)
        world.operators.decide(world, "reject", 0)
        assert world.store.decisions()[approved][0] == "reject"
        check_all(world, knowledge)  # the delete in flight was licensed when it was persisted
        for _ in range(4):  # as the property's teardown: approvals of anything new, passes
            world.approve_all()
            checked_passes(world, knowledge, 1)
        check_all(world, knowledge, settled=True)
        assert world.operators.violations == []
        carried = [t for t in world.store.tasks() if approved in t.action_ids]
        assert [t.submission_id for t in carried] == [task.submission_id], "resubmitted"
        assert not any(
            e["kind"] == "delete.submitted" for e in world.store.events(action_id=approved)
        ), "the rejected delete was resubmitted"
        (receipt,) = [r for r in world.store.receipts(scan) if r["endpoint"] == "dtn"]
        assert receipt["action_id"] == approved
        assert receipt["approval"]["decision"] == "approve"
        assert receipt["approval"]["by"] == "operator"
        assert receipt["approval"]["submission_id"] == task.submission_id
        assert [a["by"] for a in receipt["approvers"]] == ["operator"]
        (task,) = carried
        if directory:  # the rest was withdrawn, not resubmitted: its second file is still there
            assert receipt["partial"] is True and receipt["removed"] == ["scan_0/frame_0.h5"]
            assert receipt["remaining"] == ["scan_0/frame_1.h5"]
            assert world.content_at("dtn", scan) == {"scan_0/frame_1.h5": b"\x01"}
            assert task.status == "withdrawn"
            refused = [
                (e["data"] or {}).get("reason_code")
                for e in world.store.events(action_id=approved)
                if e["kind"] == "delete.recheck_failed"
            ]
            assert "not_resubmitted" in refused, refused
        else:
            assert not receipt.get("partial") and receipt["removed"] == ["s0.h5"]
            assert task.status == "succeeded"
        # The reject stands: nothing of the scan is planned for deletion at the dtn again.
        plan = world.reconciler.dry_run(world.clock.now())
        assert approved not in {a.id for a in plan.actions}
    finally:
        world.close()

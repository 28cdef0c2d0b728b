"""What only the mounted filesystems show: roots that are one storage through a bind mount.

`stat` and the mount table are simulated here, so these run anywhere; the CLI tests in
tests/cli/test_same_storage.py make real bind mounts where the sandbox allows it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.model import ErrorClass
from engine.storage.same_storage import overlaps, shared_storage

ROOT_FS = "24 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"


def fake_stat(inodes: dict[str, tuple[int, int]]):  # type: ignore[no-untyped-def]
    """A stat that knows only `inodes` (path → (device, inode)); any other path is missing."""

    def stat(path: str) -> os.stat_result:
        if path not in inodes:
            raise FileNotFoundError(path)
        device, inode = inodes[path]
        return os.stat_result((0o40755, inode, device, 2, 0, 0, 4096, 0, 0, 0))

    return stat


TREE = {"/": (1, 2), "/data": (1, 10), "/data/dtn": (1, 11), "/mnt": (1, 20), "/mnt/cfs": (1, 21)}


def test_separate_roots_are_fine() -> None:
    roots = {"dtn": Path("/data/dtn"), "cfs": Path("/mnt/cfs")}
    assert shared_storage(roots, stat=fake_stat(TREE), mountinfo=ROOT_FS) == {}


def test_the_same_device_and_inode_is_the_same_storage_for_both_endpoints() -> None:
    bound = {**TREE, "/mnt/cfs": TREE["/data/dtn"]}  # mount --bind /data/dtn /mnt/cfs
    found = shared_storage(
        {"dtn": Path("/data/dtn"), "cfs": Path("/mnt/cfs")}, stat=fake_stat(bound), mountinfo=""
    )
    assert set(found) == {"dtn", "cfs"}
    assert all(e.error_class is ErrorClass.NEEDS_HUMAN for e in found.values())
    assert "same storage as dtn's root /data/dtn" in found["cfs"].reason
    assert "equal device and inode" in found["cfs"].reason


def test_a_root_inside_another_through_a_bind_mount_is_found_among_its_ancestors() -> None:
    # mount --bind /mnt /data/dtn/copies: cfs (/mnt/cfs) now also lives inside the dtn tree,
    # seen from dtn's side as /data/dtn/copies/cfs; and the other way round.
    tree = {**TREE, "/data/dtn/copies": TREE["/mnt"], "/data/dtn/copies/cfs": TREE["/mnt/cfs"]}
    found = shared_storage(
        {"dtn": Path("/data/dtn/copies/cfs"), "cfs": Path("/mnt")},
        stat=fake_stat(tree),
        mountinfo="",
    )
    assert set(found) == {"dtn", "cfs"}
    assert "inside the other" in found["dtn"].reason


def test_a_subfolder_bind_mounted_elsewhere_is_found_in_the_mount_table() -> None:
    # mount --bind /data/dtn/sub /mnt/cfs: neither stat nor the ancestors can tell.
    mountinfo = ROOT_FS + "63 24 254:0 /data/dtn/sub /mnt/cfs rw,relatime - ext4 /dev/vda rw\n"
    found = shared_storage(
        {"dtn": Path("/data/dtn"), "cfs": Path("/mnt/cfs")},
        stat=fake_stat(TREE),
        mountinfo=mountinfo,
    )
    assert set(found) == {"dtn", "cfs"}
    assert "254:0" in found["cfs"].reason and "/data/dtn/sub" in found["cfs"].reason


def test_the_same_path_on_different_filesystems_is_not_shared() -> None:
    mountinfo = ROOT_FS + "63 24 8:17 / /mnt rw - xfs /dev/sdb1 rw\n"
    inodes = {**TREE, "/mnt/cfs": (5, 11)}  # same inode number, other device
    found = shared_storage(
        {"dtn": Path("/data/dtn"), "cfs": Path("/mnt/cfs")},
        stat=fake_stat(inodes),
        mountinfo=mountinfo,
    )
    assert found == {}


def test_mount_points_with_spaces_are_unescaped() -> None:
    mountinfo = ROOT_FS + r"63 24 254:0 /data/dtn /mnt/cfs\040copy rw - ext4 /dev/vda rw" + "\n"
    tree = {**TREE, "/mnt/cfs copy": (1, 30)}
    found = shared_storage(
        {"dtn": Path("/data/dtn"), "cfs": Path("/mnt/cfs copy")},
        stat=fake_stat(tree),
        mountinfo=mountinfo,
    )
    assert set(found) == {"dtn", "cfs"}


def test_a_missing_root_is_left_to_its_own_listing() -> None:
    roots = {"dtn": Path("/data/dtn"), "cfs": Path("/gone/cfs")}
    assert shared_storage(roots, stat=fake_stat(TREE), mountinfo=ROOT_FS) == {}


def test_real_separate_folders_are_not_shared(tmp_path: Path) -> None:
    for name in ("dtn", "cfs", "dtn-2"):
        (tmp_path / name).mkdir()
    roots = {name: tmp_path / name for name in ("dtn", "cfs", "dtn-2")}
    assert shared_storage(roots) == {}


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("/a/b", "/a/b", "same"),
        ("/a/b/c", "/a/b", "inside"),
        ("/a/b", "/a/b/c", "contains"),
        ("/a/bc", "/a/b", None),
        ("/x", "/", "inside"),
    ],
)
def test_overlaps(first: str, second: str, expected: str | None) -> None:
    assert overlaps(first, second) == expected

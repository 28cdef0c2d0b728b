"""`RootPaths` (engine/storage/root_paths.py) resolves the root once, yet refuses exactly what
`safe_path` refuses: every tree below is checked against `safe_path` on the same paths, also
after the root is re-pointed between two calls (the cached resolution must not be trusted)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import UnsafePath
from engine.storage.local import LocalStorage
from engine.storage.localfs import safe_path
from engine.storage.root_paths import RootPaths

PATHS = [
    "2025/x.h5",
    "2026/x.h5",  # through 2026 -> 2025 (inside)
    "out/secret.h5",  # through out -> outside
    "link.h5",  # a file symlink
    "loop/x.h5",  # a symlink to itself
    "missing/deeper/x.h5",
    "2025/x.h5/under_a_file",
    "2025",
    "../x",
    "/etc/passwd",
    "a//b",
    "",
]


def _verdict(check: object, root: Path, relpath: str) -> object:
    try:
        return ("ok", check(root, relpath))  # type: ignore[operator]
    except UnsafePath:
        return "refused"


def _tree(root: Path, outside: Path) -> None:
    (root / "2025").mkdir(parents=True)
    (root / "2025" / "x.h5").write_bytes(b"scan")
    outside.mkdir(exist_ok=True)
    (outside / "secret.h5").write_bytes(b"precious")
    (root / "2026").symlink_to(root / "2025", target_is_directory=True)
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "link.h5").symlink_to(root / "2025" / "x.h5")
    (root / "loop").symlink_to(root / "loop")


@pytest.mark.parametrize("relpath", PATHS)
@pytest.mark.parametrize("via_link", [False, True], ids=["plain-root", "symlinked-root"])
def test_root_paths_agree_with_safe_path(tmp_path: Path, relpath: str, via_link: bool) -> None:
    real = tmp_path / "dtn"
    _tree(real, tmp_path / "outside")
    root = real
    if via_link:
        root = tmp_path / "mount"
        root.symlink_to(real, target_is_directory=True)
    paths = RootPaths(root)
    fast = _verdict(lambda r, p: paths.path(p), root, relpath)
    if relpath == "loop/x.h5":
        # `realpath` gives up on a symlink loop and hands the path back unchanged, so
        # `safe_path` lets it through (any open then fails with ELOOP); `RootPaths` refuses
        # every symlink below the root, as the promise says.
        assert fast == "refused"
    else:
        assert fast == _verdict(safe_path, root, relpath)
    # A second call uses the cached resolution: still the same verdict.
    assert _verdict(lambda r, p: paths.path(p), root, relpath) == fast


def test_a_re_pointed_root_is_resolved_again(tmp_path: Path) -> None:
    """The root is a symlink to a clean tree; after one call it is re-pointed at a tree where
    the same path passes a symlink to outside: the cached resolution must not let it through."""
    clean, dirty = tmp_path / "clean", tmp_path / "dirty"
    (clean / "2026").mkdir(parents=True)
    (clean / "2026" / "x.h5").write_bytes(b"scan")
    dirty.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.h5").write_bytes(b"precious")
    (dirty / "2026").symlink_to(tmp_path / "outside", target_is_directory=True)
    mount = tmp_path / "mount"
    mount.symlink_to(clean, target_is_directory=True)
    storage = LocalStorage("dtn", mount)
    assert storage.resolve("2026/x.h5") == mount / "2026" / "x.h5"
    tmp = tmp_path / "mount.new"
    tmp.symlink_to(dirty, target_is_directory=True)
    os.replace(tmp, mount)
    with pytest.raises(UnsafePath, match="outside the endpoint root"):
        storage.resolve("2026/x.h5")
    with pytest.raises(UnsafePath):
        safe_path(mount, "2026/x.h5")


def test_a_folder_swapped_for_a_symlink_after_the_first_call_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "dtn"
    (root / "2026").mkdir(parents=True)
    (root / "2026" / "x.h5").write_bytes(b"scan")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.h5").write_bytes(b"precious")
    paths = RootPaths(root)
    assert paths.path("2026/x.h5") == root / "2026" / "x.h5"
    os.rename(root / "2026", root / "2026.old")
    (root / "2026").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(UnsafePath, match="outside the endpoint root"):
        paths.path("2026/x.h5")

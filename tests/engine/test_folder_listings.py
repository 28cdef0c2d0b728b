"""A local endpoint's listing of one-file scans is a view over the folders of one walk
(engine/incremental/folder_listings.py, issue 15's memory target): it lists exactly what a
plain listing lists, finds every scan and nothing else, and stays what that walk found."""

from __future__ import annotations

import os
from pathlib import Path

from engine.incremental.dirs import DirectoryCache
from engine.incremental.folder_listings import FolderListings
from engine.layout import ScanLayout
from engine.storage.local import LocalStorage

FILES = ScanLayout(exclude=("**/.*",))
NAMES = (
    "top.h5",
    "2026/a/s1.h5",
    "2026/a/s10.h5",
    "2026/a/s2.h5",
    "2026/a/b/s1.h5",
    "2026/b/z.h5",
    "2026/b/.hidden.h5",
    "2026/a b/s 1.h5",
    "2026/ä/ß.h5",
)


def _tree(root: Path, names: tuple[str, ...] = NAMES) -> None:
    for rel in names:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rel.encode())
    for folder, _dirs, _files in os.walk(root):
        os.utime(folder, (1_700_000_000, 1_700_000_000))


def test_lists_what_a_plain_listing_lists(tmp_path: Path) -> None:
    _tree(tmp_path)
    storage = LocalStorage("cfs", tmp_path)
    plain = storage.list_scans(FILES)
    cached = DirectoryCache(settle_seconds=0.0).list_scans(storage, FILES)
    assert isinstance(cached, FolderListings)
    assert dict(cached) == dict(plain) and len(cached) == len(plain) == 8
    assert dict(cached.items()) == dict(plain) and sorted(cached.values(), key=repr) == sorted(
        plain.values(), key=repr
    )
    for scan_id in plain:
        assert scan_id in cached and cached[scan_id] == plain[scan_id]
    for absent in ("2026/b/.hidden.h5", "2026/a", "2026/a/s3.h5", "s1.h5", "", "2026/a/b"):
        assert absent not in cached and cached.get(absent) is None
    assert 42 not in cached  # not a scan id at all


def test_a_view_stays_what_its_walk_found(tmp_path: Path) -> None:
    _tree(tmp_path)
    storage = LocalStorage("cfs", tmp_path)
    cache = DirectoryCache(settle_seconds=0.0)
    first = cache.list_scans(storage, FILES)
    before = dict(first)
    (tmp_path / "2026/a/s1.h5").unlink()
    (tmp_path / "2026/a/new.h5").write_bytes(b"new")
    second = cache.list_scans(storage, FILES)
    assert dict(first) == before  # the first view still lists the first walk
    assert "2026/a/new.h5" in second and "2026/a/s1.h5" not in second
    assert "2026/a/new.h5" not in first and "2026/a/s1.h5" in first
    cache.clear()  # the periodic full walk
    third = cache.list_scans(storage, FILES)
    assert dict(third) == dict(second) and dict(first) == before
    # A folder read again hands back the very listing objects it had (the verdicts keep them).
    assert all(third[s] is second[s] for s in second)

"""`DirectoryCache.changes` (engine/incremental/dirs.py), what a delta pass reads instead of the
whole listing: after any sequence of files and folders added and removed, the changes it
reports, applied to the listing before, must give exactly what a plain uncached listing of the
tree gives — every scan that is new or different among `listed`, every scan no longer there in
`gone`. Folder mtimes are set to a fresh value at each step, so that a change can never share
a timestamp tick with the read before it (what `settle_seconds` guards against in service)."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.incremental.dirs import DirectoryCache
from engine.layout import ScanLayout
from engine.storage.base import ScanListing
from engine.storage.local import LocalStorage

FILES = ScanLayout(exclude=("**/.*", "**/*.tmp", "**/*.part"))
FOLDERS = ["2026/a", "2026/b", "2026/b/deep", "2027/c"]
NAMES = ["s1.h5", "s2.h5", "s3.h5"]

ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove", "rewrite", "drop_folder"]),
        st.sampled_from(FOLDERS),
        st.sampled_from(NAMES),
    ),
    min_size=1,
    max_size=4,
)


def _age(root: Path, tick: itertools.count) -> None:  # type: ignore[type-arg]
    stamp = 1_700_000_000 + next(tick)
    for folder, _dirs, _files in os.walk(root):
        os.utime(folder, (stamp, stamp))


def _apply(root: Path, op: tuple[str, str, str], serial: int) -> None:
    kind, folder, name = op
    path = root / folder / name
    if kind == "add":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * serial)
        os.utime(path, (1_600_000_000, 1_600_000_000))
    elif kind == "remove" and path.exists():
        path.unlink()
    elif kind == "rewrite" and path.exists():  # a new inode under the same name
        temp = path.with_name(f".{name}.part")
        temp.write_bytes(b"y" * (serial + 1))
        os.utime(temp, (1_600_000_000, 1_600_000_000))
        temp.replace(path)
    elif kind == "drop_folder" and (root / folder).exists():
        shutil.rmtree(root / folder)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(ops, min_size=1, max_size=4))
def test_changes_applied_to_the_listing_before_give_the_listing_now(
    tmp_path_factory: object, steps: list[list[tuple[str, str, str]]]
) -> None:
    root = tmp_path_factory.mktemp("dtn")  # type: ignore[attr-defined]
    tick = itertools.count()
    serial = itertools.count(1)
    for folder in FOLDERS:
        _apply(root, ("add", folder, "s1.h5"), next(serial))
    _age(root, tick)
    plain = LocalStorage("dtn", root)
    cached = LocalStorage("dtn", root)
    cache = cached.directory_cache = DirectoryCache(settle_seconds=0)
    assert cache.changes(cached, FILES) is None  # nothing listed before: list everything
    before: dict[str, ScanListing] = cached.list_scans(FILES)
    assert before == plain.list_scans(FILES)
    for batch in steps:
        for op in batch:
            _apply(root, op, next(serial))
        _age(root, tick)
        now = plain.list_scans(FILES)
        changes = cache.changes(cached, FILES)
        assert changes is not None and changes.everything is None
        assert changes.gone == before.keys() - now.keys()
        assert all(now[scan] == listing for scan, listing in changes.listed.items())
        different = {s for s, listing in now.items() if before.get(s) != listing}
        assert different <= changes.listed.keys()
        applied = {s: entry for s, entry in before.items() if s not in changes.gone}
        applied.update(changes.listed)
        assert applied == now
        before = now

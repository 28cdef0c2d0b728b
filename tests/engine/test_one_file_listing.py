"""A one-file scan's listing is its `FileStat` (engine/listing.py, issue 15's memory target):
one object per replica at each endpoint instead of a listing, a 1-tuple and the file, while
every producer (plain listing, folder cache, foreign-file filter) still lists the same scan the
same way, and the verdicts a service pass keeps hold the listing itself, not a tuple made for
them."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.incremental.dirs import DirectoryCache
from engine.layout import ScanLayout
from engine.listing import FilesListing, listing_of
from engine.model import FileStat
from engine.observe.observation import Observation
from engine.storage.local import LocalStorage
from tests.engine.test_incremental_view import OLD, SCANS, Beamline, copied_line

FILES = ScanLayout(exclude=("**/.*",))
FOLDERS = ScanLayout(unit="directory", exclude=("**/.*",))


def test_a_file_named_as_its_scan_is_its_own_listing() -> None:
    f = FileStat("2026/11/scan_1.h5", 80, 1.5, 7, 9)
    listing = listing_of(f.path, (f,))
    assert listing is f
    assert (listing.scan, listing.files, listing.size) == (f.path, (f,), 80)
    assert listing.signature == FilesListing(f.path, (f,)).signature
    # Anything else keeps its id and files: a folder scan of one file, or of several.
    inside = FileStat("2026/11/scan_2/a.h5", 10, 1.0)
    other = FileStat("2026/11/scan_2/b.h5", 20, 1.0)
    one = listing_of("2026/11/scan_2", (inside,))
    assert isinstance(one, FilesListing) and one.files == (inside,) and one.size == 10
    two = listing_of("2026/11/scan_2", [inside, other])
    assert two.files == (inside, other) and two.size == 30 and two.scan == "2026/11/scan_2"


def _tree(root: Path) -> None:
    for rel in ("2026/a/s1.h5", "2026/a/s2.h5", "2026/b/s3.h5", "2026/c/scan/x.h5"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rel.encode())
    for folder, _dirs, _files in os.walk(root):
        os.utime(folder, (1_700_000_000, 1_700_000_000))


def test_every_producer_lists_a_scan_the_same_way(tmp_path: Path) -> None:
    _tree(tmp_path)
    storage = LocalStorage("dtn", tmp_path)
    cache = DirectoryCache(settle_seconds=0.0)
    for layout in (FILES, FOLDERS):
        plain = storage.list_scans(layout)
        cached = DirectoryCache(settle_seconds=0.0).list_scans(storage, layout)
        assert plain == cached and plain
        for scan_id, listing in plain.items():
            assert listing.scan == scan_id
            # A one-file scan is listed as its file by both.
            assert isinstance(listing, FileStat) is (layout is FILES), (layout.unit, scan_id)
            assert type(cached[scan_id]) is type(listing)
    # A folder read again hands back the very objects whose stat did not change.
    first = cache.list_scans(storage, FILES)
    cache.clear()
    again = cache.list_scans(storage, FILES)
    assert all(again[s] is first[s] for s in first)


@pytest.fixture
def settled(tmp_path: Path) -> Iterator[Beamline]:
    """A settled service (long retention: nothing to do) right after a periodic full walk, the
    pass whose observation it keeps until the next one."""
    line = copied_line(tmp_path, dtn_keep_days=1000)
    try:
        line.view.last_full = None  # the periodic full walk: every folder read again
        line.pass_()
        assert line.reconciler.modes.quiet.settled is not None, line.reconciler.modes.quiet.why_not
        yield line
    finally:
        line.store.close()
        line.backends.close()


def _kept(line: Beamline) -> Observation:
    settled = line.reconciler.modes.quiet.settled  # what the service keeps between passes
    assert settled is not None
    return settled.seen


def test_a_service_pass_keeps_one_object_per_listed_replica(settled: Beamline) -> None:
    seen = _kept(settled)
    for endpoint in ("dtn", "cfs", "hpss"):
        cache = settled.view.caches[endpoint]
        kept = {x.scan: x for f in cache._folders.values() for x in f.scans or ()}
        for scan in SCANS:
            held = seen.listings[endpoint][scan]
            assert isinstance(held, FileStat) and held.path == scan
            # One object per replica: the folder cache's, the observation's and the one the
            # verdict was made from are the same, and no tuple is made to hold it.
            assert kept[scan] is held
            assert seen.assessed[endpoint][scan].listing is held
            assert not any(isinstance(r, tuple) and len(r) == 1 for r in gc.get_referrers(held))


def test_a_steady_full_pass_keeps_one_dict_over_every_scan_per_fact(settled: Beamline) -> None:
    """The stored scans, the inventory walk's result and memo, and the catalog locations the
    findings last wrote: each one dict over every scan, shared, not a copy per holder (each
    ~4 MB at 100k scans). A scan recorded later goes into a new dict: what an earlier pass
    holds never changes under it."""
    seen = _kept(settled)
    observer = settled.reconciler.observer
    assert seen.scans is observer.stored_scans()
    assert seen.inventory is not None and seen.inventory.scans is seen.scans
    memo = settled.view.walk_memo
    assert memo.scans is seen.scans and memo.listings is seen.listings["dtn"]
    findings = settled.reconciler.planner.findings
    assert findings._catalog_sets is seen.catalog.locations
    # A new scan: a new dict for the observer; the settled pass's stays as it was.
    before = dict(seen.scans)
    settled.ws.write_scan("2026/11/scan_new.h5", b"new", mtime=OLD)
    settled.view.last_full = None
    settled.pass_()
    assert "2026/11/scan_new.h5" in observer.stored_scans()
    assert seen.scans == before

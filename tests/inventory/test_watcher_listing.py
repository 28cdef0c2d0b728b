"""Inventory by listing (an inventory endpoint not mounted here): the two-snapshot rule."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.errors import Bl931Error, EndpointUnavailable
from engine.inventory.listing import LISTING_ALGORITHM, ListingInventory
from engine.layout import ScanLayout
from engine.storage.local import LocalStorage

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LAYOUT = ScanLayout(exclude=("**/.*", "**/*.tmp"))


class Listed(LocalStorage):
    """A listing-only view of a folder (as a Globus collection is), counting its calls."""

    def __init__(self, root: Path) -> None:
        super().__init__("dtn", root)
        self.stats = 0

    def stat_scan(self, layout: ScanLayout, scan: str):  # type: ignore[no-untyped-def]
        self.stats += 1
        return super().stat_scan(layout, scan)


def put(root: Path, name: str, data: bytes, age: float) -> None:
    path = root / name
    path.write_bytes(data)
    stamp = NOW.timestamp() - age
    os.utime(path, (stamp, stamp))


@pytest.fixture
def dtn(tmp_path: Path) -> Listed:
    (tmp_path / "dtn").mkdir()
    return Listed(tmp_path / "dtn")


def test_quiet_scan_is_listed_twice_then_complete(dtn: Listed) -> None:
    put(dtn.root, "a.h5", b"aaa", age=600)
    put(dtn.root, "busy.h5", b"b", age=2)
    inv = ListingInventory()
    result = inv.inventory(dtn, LAYOUT, quiet_seconds=30, now=NOW, known={})
    assert set(result.scans) == {"a.h5"} and result.incomplete == ("busy.h5",)
    assert dtn.stats == 1  # first sight: listed once more right away (works for --once)
    scan = result.scans["a.h5"]
    assert scan.checksum_algorithm == LISTING_ALGORITHM and scan.version == 1
    # The next pass uses the previous listing as its first snapshot: no extra call.
    again = inv.inventory(dtn, LAYOUT, quiet_seconds=30, now=NOW, known=result.scans)
    assert again.scans["a.h5"] is scan and dtn.stats == 1


def test_scan_that_changed_between_listings_waits(dtn: Listed) -> None:
    put(dtn.root, "a.h5", b"aaa", age=600)
    inv = ListingInventory()
    inv.inventory(dtn, LAYOUT, quiet_seconds=30, now=NOW - timedelta(seconds=60), known={})
    put(dtn.root, "a.h5", b"aaaa", age=600)  # rewritten with an old mtime (cp -p, rsync -t)
    result = inv.inventory(dtn, LAYOUT, quiet_seconds=30, now=NOW, known={})
    assert result.scans == {} and result.incomplete == ("a.h5",)
    result = inv.inventory(dtn, LAYOUT, quiet_seconds=30, now=NOW, known={})
    assert set(result.scans) == {"a.h5"}


def test_rewrite_makes_a_new_version(dtn: Listed) -> None:
    put(dtn.root, "a.h5", b"one", age=600)
    inv = ListingInventory()
    v1 = inv.inventory(dtn, LAYOUT, quiet_seconds=30, now=NOW, known={}).scans["a.h5"]
    put(dtn.root, "a.h5", b"one and two", age=300)
    inv.inventory(dtn, LAYOUT, quiet_seconds=30, now=NOW, known={"a.h5": v1})
    v2 = inv.inventory(dtn, LAYOUT, quiet_seconds=30, now=NOW, known={"a.h5": v1}).scans["a.h5"]
    assert (v2.version, v2.checksum != v1.checksum) == (2, True)


def test_failed_listing_is_unavailable_never_empty(dtn: Listed) -> None:
    class Failing(Listed):
        def list_scans(self, layout, wanted=None):  # type: ignore[no-untyped-def]
            raise Bl931Error("login expired")

    with pytest.raises(EndpointUnavailable):
        ListingInventory().inventory(Failing(dtn.root), LAYOUT, quiet_seconds=30, now=NOW, known={})


def test_directory_scans_are_reported_not_guessed(dtn: Listed) -> None:
    result = ListingInventory().inventory(
        dtn, ScanLayout(unit="directory"), quiet_seconds=30, now=NOW, known={}
    )
    assert result.scans == {} and "local `path`" in result.problems[0]

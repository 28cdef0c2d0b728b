"""Foreign files leave listings: a pruned scan is absent where only leftovers remain."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.foreign import foreign_paths, without_foreign
from engine.listing import listing_of
from engine.model import FileStat, Scan, ScanFile
from engine.state import ForeignFiles
from engine.storage.base import ScanListing

WHEN = datetime(2026, 11, 25, tzinfo=UTC)


def listing(scan: str, *paths: str) -> ScanListing:
    return listing_of(scan, tuple(FileStat(p, 1, 0.0) for p in paths))


def test_records_of_one_scan_at_one_endpoint_add_up() -> None:
    records = [
        ForeignFiles("s", "cfs", ("s/a",), "d1", WHEN),
        ForeignFiles("s", "cfs", ("s/b",), "d2", WHEN),
        ForeignFiles("s", "dtn", ("s/c",), "d3", WHEN),
    ]
    assert foreign_paths(records) == {
        "cfs": {"s": frozenset({"s/a", "s/b"})},
        "dtn": {"s": frozenset({"s/c"})},
    }


def test_a_scan_with_only_leftovers_is_absent_and_others_are_untouched() -> None:
    listings = {"s": listing("s", "s/analysis.h5"), "t": listing("t", "t/x.h5")}
    out = without_foreign(listings, {"s": frozenset({"s/analysis.h5"})})
    assert out == {"t": listings["t"]}


def test_a_later_version_written_to_a_recorded_path_counts_again() -> None:
    scan = Scan("s", (ScanFile("s/analysis.h5", 1, 0.0, "x"),), WHEN, "md5", "x", 2, True)
    listings = {"s": listing("s", "s/analysis.h5", "s/notes.txt")}
    foreign = {"s": frozenset({"s/analysis.h5", "s/notes.txt"})}
    assert without_foreign(listings, foreign, {"s": scan})["s"].files == (
        FileStat("s/analysis.h5", 1, 0.0),
    )
    assert "s" not in without_foreign(listings, foreign)  # the walk: exactly the recorded paths


def test_no_records_cost_nothing() -> None:
    listings = {"s": listing("s", "s/a")}
    assert without_foreign(listings, None) is listings

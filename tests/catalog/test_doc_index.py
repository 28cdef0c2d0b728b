"""The local catalog's index keeps every entry exactly, packed or not (issue 15, memory)."""

from __future__ import annotations

import sys

from hypothesis import given
from hypothesis import strategies as st

from engine.catalog.doc_index import DocEntry, DocIndex

ENDPOINTS = st.frozensets(st.sampled_from(["dtn", "cfs", "hpss", "tape2"]))
ENTRY = st.tuples(
    st.integers(0, 1 << 50),  # start: beyond any real file too
    st.integers(0, (1 << 33) + 5),  # length: documents of 4 GiB and more are kept unpacked
    ENDPOINTS,
)


@given(st.dictionaries(st.text(min_size=1, max_size=20), ENTRY, max_size=40))
def test_every_entry_reads_back_as_added(entries: dict[str, tuple[int, int, frozenset[str]]]):
    index = DocIndex()
    for scan_id, (start, length, endpoints) in entries.items():
        index.add(scan_id, start, start + length, endpoints)
    expected = {
        scan_id: DocEntry(start, start + length, endpoints)
        for scan_id, (start, length, endpoints) in entries.items()
    }
    assert dict(index) == expected
    assert len(index) == len(expected)
    assert all(scan_id in index for scan_id in expected)
    assert "never-added" not in index or "never-added" in expected


def test_an_entry_added_again_replaces_the_first():
    index = DocIndex()
    index.add("a.h5", 10, 20, frozenset({"cfs"}))
    index.add("a.h5", 30, 45, frozenset({"cfs", "hpss"}))
    assert index["a.h5"] == DocEntry(30, 45, frozenset({"cfs", "hpss"}))
    assert list(index) == ["a.h5"]


def test_many_endpoint_sets_are_kept_whole():
    index = DocIndex()
    for n in range(70_000):  # more distinct sets than the packing numbers
        index.add(f"s{n}", n, n + 1, frozenset({f"e{n}"}))
    assert index["s69999"] == DocEntry(69999, 70000, frozenset({"e69999"}))
    assert index["s3"] == DocEntry(3, 4, frozenset({"e3"}))


def test_ids_read_from_a_file_are_shared_with_the_scans():
    read_from_file = "".join(["2026/11/P0001/", "scan_000001.h5"])  # a new str object
    index = DocIndex()
    index.add(read_from_file, 0, 10, frozenset())
    (key,) = list(index)
    assert key is sys.intern("2026/11/P0001/scan_000001.h5")

"""The local catalog's index as columns keeps every entry exactly (issue 15, memory)."""

from __future__ import annotations

import sys

from hypothesis import given
from hypothesis import strategies as st

from engine.catalog.doc_index import DocEntry, DocIndex, DocIndexBuilder
from engine.scan_rows import ROWS

ENDPOINTS = st.frozensets(st.sampled_from(["dtn", "cfs", "hpss", "tape2"]))
ENTRY = st.tuples(
    st.integers(0, 1 << 50),  # start: beyond any real file too
    st.integers(0, (1 << 33) + 5),  # length: documents of 8 GiB and more too
    ENDPOINTS,
)


def _index(pairs) -> DocIndex:
    builder = DocIndexBuilder()
    for scan_id, (start, length, endpoints) in pairs:
        builder.add(scan_id, start, start + length, endpoints)
    return builder.done()


@given(st.lists(st.tuples(st.text(min_size=1, max_size=20), ENTRY), max_size=40))
def test_every_entry_reads_back_as_added_the_last_one_kept(pairs):
    index = _index(pairs)
    expected = {
        scan_id: DocEntry(start, start + length, endpoints)
        for scan_id, (start, length, endpoints) in pairs  # a later entry replaces
    }
    assert dict(index) == expected
    assert len(index) == len(expected)
    assert all(scan_id in index and index[scan_id] == entry for scan_id, entry in expected.items())
    assert set(index) == set(expected)


def test_scans_numbered_apart_and_unknown_ids():
    ROWS.row("numbered-first.h5")
    for n in range(5000):  # other scans this process saw in between
        ROWS.row(f"between-{n}.h5")
    index = _index(
        [
            ("numbered-late.h5", (5, 10, frozenset({"cfs"}))),
            ("numbered-first.h5", (0, 5, frozenset())),
        ]
    )
    assert index["numbered-first.h5"] == DocEntry(0, 5, frozenset())
    assert index["numbered-late.h5"] == DocEntry(5, 15, frozenset({"cfs"}))
    assert "between-7.h5" not in index and "never-seen.h5" not in index
    assert index.get("never-seen.h5") is None and 3 not in index
    assert DocIndex() == {} and len(DocIndex()) == 0


def test_many_endpoint_sets_are_kept_whole():
    index = _index((f"s{n}", (n, 1, frozenset({f"e{n}"}))) for n in range(70_000))
    assert index["s69999"] == DocEntry(69999, 70000, frozenset({"e69999"}))
    assert index["s3"] == DocEntry(3, 4, frozenset({"e3"}))


def test_ids_read_from_a_file_are_shared_with_the_scans():
    read_from_file = "".join(["2026/11/P0001/", "scan_000001.h5"])  # a new str object
    index = _index([(read_from_file, (0, 10, frozenset()))])
    (key,) = list(index)
    assert key is sys.intern("2026/11/P0001/scan_000001.h5")

"""One row number per scan id for the process (engine/scan_rows.py): never two scans on one
row, never a row without its scan, from any number of threads."""

from __future__ import annotations

import threading

from hypothesis import given
from hypothesis import strategies as st

from engine.scan_rows import RowMap, ScanRows


def test_threads_asking_at_once_get_one_row_per_scan():
    rows = ScanRows()
    names = [f"2026/11/scan_{n:05d}.h5" for n in range(2000)]
    got: list[dict[str, int]] = []
    start = threading.Barrier(4)

    def ask() -> None:
        start.wait()
        got.append({name: rows.row(name) for name in reversed(names)})

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(seen == got[0] for seen in got)
    assert sorted(got[0].values()) == list(range(len(names)))
    assert all(rows.scan(row) == name for name, row in got[0].items())
    assert list(rows.scans([got[0][names[5]], got[0][names[0]]])) == [names[5], names[0]]
    assert rows.find("never-asked.h5") is None and len(rows) == len(names)


@given(
    st.lists(
        st.tuples(st.sampled_from([f"s{n}.h5" for n in range(30)]), st.integers()), max_size=40
    )
)
def test_a_row_map_reads_as_the_dict_of_its_pairs(pairs):
    expected = dict(pairs)  # a later pair replaces an earlier one
    mapped = RowMap.of(pairs)
    assert dict(mapped) == expected and len(mapped) == len(expected)
    assert dict(mapped.items()) == expected
    assert sorted(mapped.values()) == sorted(expected.values())
    for name in [f"s{n}.h5" for n in range(30)] + ["elsewhere.h5"]:
        assert (name in mapped) == (name in expected)
        assert mapped.get(name) == expected.get(name)
    assert 7 not in mapped and RowMap.of([]) == {}

"""The stored replicas' marks kept as columns read exactly as one dict per endpoint would,
and a map handed out stays a snapshot of when it was read (issue 15, memory)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.model import Level
from engine.store.mark_table import ABSENT, MarkTable
from engine.store.replicas import replica_mark

ENDPOINT = st.sampled_from(["dtn", "cfs", "hpss"])
SCAN = st.sampled_from([f"s{n}.h5" for n in range(12)])
MARK = st.integers(ABSENT + 1, (1 << 63) - 1)
WRITE = st.tuples(ENDPOINT, st.dictionaries(SCAN, MARK, max_size=6), st.lists(SCAN, max_size=4))


def _model_write(model: dict[str, dict[str, int]], endpoint, upserts, removed) -> None:
    marks = dict(model.get(endpoint, {}))
    for scan in removed:
        marks.pop(scan, None)
    marks.update(upserts)
    model.pop(endpoint, None)
    if marks:  # as a fresh read: an endpoint with no row has no map
        model[endpoint] = marks


def _as_dicts(table: MarkTable) -> dict[str, dict[str, int]]:
    return {name: dict(view) for name, view in table.views().items()}


@given(st.lists(st.tuples(ENDPOINT, SCAN, MARK), max_size=30), st.lists(WRITE, max_size=12))
def test_reads_and_writes_match_a_dict_per_endpoint(rows, writes):
    model: dict[str, dict[str, int]] = {}
    for endpoint, scan, mark in rows:
        model.setdefault(endpoint, {})[scan] = mark
    table = MarkTable.read(rows)
    assert _as_dicts(table) == model
    for endpoint, upserts, removed in writes:
        lent = table.views()
        lent_before = {name: dict(view) for name, view in lent.items()}
        table = table.with_changes(endpoint, upserts, removed)
        _model_write(model, endpoint, upserts, removed)
        assert _as_dicts(table) == model
        assert {name: dict(view) for name, view in lent.items()} == lent_before  # a snapshot
        for name, view in table.views().items():
            assert len(view) == len(model[name])
            for scan in [f"s{n}.h5" for n in range(12)]:
                assert (scan in view) == (scan in model[name])
                assert view.get(scan) == model[name].get(scan)
            assert view.keys() & {"s0.h5", "s1.h5"} == model[name].keys() & {"s0.h5", "s1.h5"}


def test_no_replica_has_the_absent_mark(monkeypatch):
    """A row whose fingerprint happens to be the sentinel still reads as a row."""
    import engine.store.replicas as replicas

    assert replica_mark(Level.CHECKSUM, 10, "ab" * 16) != ABSENT
    monkeypatch.setattr(replicas, "hash", lambda _value: ABSENT, raising=False)
    mark = replicas.replica_mark(Level.CHECKSUM, 10, "ab" * 16)
    assert mark != ABSENT
    table = MarkTable.read([("cfs", "a.h5", mark)])
    assert dict(table.views()["cfs"]) == {"a.h5": mark}

"""The streaming reader of TinyDB-layout files agrees with `json.loads` on every file, at every
chunk boundary, and never reads a damaged file as a shorter catalog."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.catalog import json_stream
from engine.catalog.json_stream import read_tables

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)
DOCUMENTS = st.dictionaries(st.text(max_size=6), VALUES, max_size=4)
TABLES = st.dictionaries(st.sampled_from(["1", "2", "10", "ü", "x y"]), DOCUMENTS, max_size=5)
FORMATS = st.sampled_from(
    [
        {},
        {"ensure_ascii": False},
        {"indent": 2, "ensure_ascii": False},
        {"indent": "\t"},
        {"separators": (",", ":"), "ensure_ascii": False},
        {"separators": (" , ", " : ")},
    ]
)


def _stream(raw: bytes, chunk: int, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    monkeypatch.setattr(json_stream, "CHUNK", chunk)
    return list(read_tables(io.BytesIO(raw), streamed="datasets"))


@settings(max_examples=200, deadline=None)
@given(
    datasets=TABLES,
    others=st.dictionaries(st.sampled_from(["bl931_catalog", "_default"]), VALUES, max_size=2),
    datasets_first=st.booleans(),
    fmt=FORMATS,
    chunk=st.sampled_from([1, 2, 3, 7, 64, 1 << 20]),
)
def test_documents_and_their_byte_ranges_agree_with_json_loads(
    datasets: dict[str, Any],
    others: dict[str, Any],
    datasets_first: bool,
    fmt: dict[str, Any],
    chunk: int,
) -> None:
    data = {"datasets": datasets, **others} if datasets_first else {**others, "datasets": datasets}
    raw = ("\n " + json.dumps(data, **fmt) + " \n").encode("utf-8")
    with pytest.MonkeyPatch.context() as mp:
        items = _stream(raw, chunk, mp)
    docs = {d: v for t, d, v, _, _ in items if t == "datasets" and d is not None}
    assert docs == json.loads(raw)["datasets"]
    for table, doc_id, value, start, end in items:
        if doc_id is not None or table != "datasets":
            assert json.loads(raw[start:end]) == value  # the byte range holds exactly the value
    assert {t: v for t, d, v, _, _ in items if t != "datasets"} == others


@settings(max_examples=150, deadline=None)
@given(datasets=TABLES.filter(bool), fmt=FORMATS, data=st.data())
def test_a_damaged_file_is_refused_never_read_short(
    datasets: dict[str, Any], fmt: dict[str, Any], data: st.DataObject
) -> None:
    """A file cut anywhere, or with a byte replaced, that `json.loads` refuses is refused too."""
    raw = json.dumps({"bl931_catalog": {"1": {"id": "x"}}, "datasets": datasets}, **fmt).encode()
    cut = data.draw(st.integers(0, len(raw) - 1))
    at = data.draw(st.integers(0, len(raw) - 1))
    flipped = (
        raw[:at] + data.draw(st.sampled_from([b"}", b",", b'"', b"x", b"\xff"])) + raw[at + 1 :]
    )
    for damaged in (raw[:cut], flipped):
        try:
            json.loads(damaged)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            with pytest.MonkeyPatch.context() as mp, pytest.raises(ValueError):
                _stream(damaged, 5, mp)


def test_a_second_datasets_table_replaces_the_first_as_json_loads_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = b'{"datasets": {"1": {"a": 1}}, "datasets": {"2": {"b": 2}}}'
    items = _stream(raw, 4, monkeypatch)
    starts = [i for i, (t, d, *_) in enumerate(items) if t == "datasets" and d is None]
    after_last_start = [d for t, d, *_ in items[starts[-1] :] if d is not None]
    assert after_last_start == list(json.loads(raw)["datasets"])

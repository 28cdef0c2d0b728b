"""Evidence keeps what a batch shares in one `EvidenceSource` (issue 15, memory) and still
reads, compares, hashes, prints and replaces as its eight facts."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.model import Evidence, Level

WHEN = datetime(2026, 11, 1, tzinfo=UTC)
FACTS = st.tuples(
    st.sampled_from(list(Level)),
    st.sampled_from(["md5", "sha256", None]),
    st.sampled_from(["c" * 32, "d" * 32, None]),
    st.sampled_from(["task-1", "task-2", None]),
    st.sampled_from([WHEN, datetime(2026, 11, 2, tzinfo=UTC)]),
    st.sampled_from(["s" * 32, "t" * 32]),
    st.sampled_from(["", "transfer", "rehash"]),
    st.sampled_from([None, "dev:1", "dev:2"]),
)


@given(FACTS, FACTS)
def test_equal_exactly_when_every_fact_is(a, b):
    left, right = Evidence(*a), Evidence(*b)
    names = ("level", "algorithm", "value", "task_id", "verified_at", "signature", "how")
    assert tuple(getattr(left, n) for n in (*names, "identity")) == a
    assert (left == right) == (a == b)
    if a == b:
        assert hash(left) == hash(right)
    assert pickle.loads(pickle.dumps(left)) == left
    shown = ", ".join(f"{n}={v!r}" for n, v in zip((*names, "identity"), a, strict=True))
    assert repr(left) == f"Evidence({shown})"  # as the dataclass printed it


def test_a_batch_shares_one_source():
    one = Evidence(Level.CHECKSUM, "md5", "c" * 32, "task-1", WHEN, "s" * 32, how="transfer")
    two = Evidence(Level.CHECKSUM, "md5", "d" * 32, "task-1", WHEN, "t" * 32, how="transfer")
    assert one.source is two.source
    assert one != two


def test_replace_changes_only_what_it_names():
    one = Evidence(Level.CHECKSUM, "md5", "c" * 32, "task-1", WHEN, "s" * 32, how="transfer")
    moved = dataclasses.replace(one, identity="dev:9")
    assert moved.identity == "dev:9" and moved.how == "transfer" and moved.value == one.value
    assert one.identity is None
    assert one.but(signature="u" * 32) == dataclasses.replace(one, signature="u" * 32)
    assert one.but(how="legacy", identity="x").how == "legacy"


def test_frozen_and_complete():
    one = Evidence(Level.CHECKSUM, "md5", "c" * 32, "task-1", WHEN, "s" * 32)
    for name in ("value", "level", "identity"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(one, name, None)
    with pytest.raises(TypeError):
        Evidence(Level.CHECKSUM, "md5", "c" * 32, "task-1", WHEN)  # no signature
    with pytest.raises(TypeError):
        Evidence(value="c", signature="s")  # nothing of the source

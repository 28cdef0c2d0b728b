"""A plan's blocked entries as two columns (engine/blocked_entries.py, issue 15's memory target):
the planner keeps one tuple per distinct reason, not a `Blocked` per scan, and every reader of
`Plan.blocked` sees exactly the sequence of `Blocked` the plain tuple held."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import timedelta

import pytest

from engine.blocked_entries import BlockedEntries, joined
from engine.model import ActionKind, Blocked
from engine.planner import plan
from tests.engine.test_planner import NOW, C, inp, scan

A = Blocked("2026/a.h5", ActionKind.DELETE, "dtn", "retention_not_reached", "kept until X")
B = Blocked("2026/b.h5", ActionKind.DELETE, "dtn", "retention_not_reached", "kept until X")
D = Blocked("2026/b.h5", ActionKind.COPY, "hpss", "waiting_for_source", "cfs first")


def test_the_entries_read_as_the_tuple_of_the_same_blocked() -> None:
    plain = (A, B, D)
    entries = joined(plain)
    assert entries == plain and plain == entries
    assert entries != (A, B) and entries != (A, D, B) and entries != "abc"
    assert len(entries) == 3 and list(entries) == list(plain)
    assert entries[0] == A and entries[-1] == D and entries[1:] == (B, D)
    assert isinstance(entries[0], Blocked) and entries[0].reason_code == A.reason_code
    assert list(entries.reason_codes()) == [b.reason_code for b in plain]
    assert entries + (A,) == (*plain, A)  # noqa: RUF005 (the `+` is what is tested)
    assert (A,) + entries == (A, *plain)  # noqa: RUF005
    assert entries != list(plain)  # as the tuple was: not equal to a list
    assert joined(entries, entries) == plain + plain
    assert hash(entries) == hash(plain)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(entries, protocol)) == plain
    assert copy.deepcopy(entries) == plain
    assert [b.to_json() for b in entries] == [b.to_json() for b in plain]
    with pytest.raises(IndexError):
        entries[3]
    with pytest.raises(TypeError):
        entries.append(A)  # a plan's entries are read-only once done
    # The scans' entries alike share one reason tuple.
    assert entries._whys[0] is entries._whys[1]


def test_a_plan_keeps_one_reason_per_distinct_reason_not_per_scan() -> None:
    scans = [scan(f"2026/s{n:03d}.h5", acquired=NOW - timedelta(days=10)) for n in range(200)]
    levels = {name: {s.id: C for s in scans} for name in ("dtn", "cfs", "hpss")}
    result = plan(inp(scans, levels))
    blocked = result.blocked
    assert isinstance(blocked, BlockedEntries)
    assert len(blocked) == 400  # kept at dtn and at cfs, for every scan
    assert {b.reason_code for b in blocked} == {"retention_not_reached"}
    assert len({id(why) for why in blocked._whys}) == 2  # one per endpoint's "kept until"
    plain = plan(inp(scans, levels), memo=False)
    assert plain.blocked == blocked and plain == result
    # The audit's JSON is what it was with a tuple.
    assert json.loads(json.dumps(result.to_json()))["blocked"] == [b.to_json() for b in blocked]

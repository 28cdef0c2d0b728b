"""`Replica` keeps its seven rare facts in one `ReplicaDetails` (engine/replica.py, issue 15's
memory target), yet reads, compares, hashes, prints and `dataclasses.replace`s exactly as the
plain dataclass of thirteen fields it was."""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine.model import Evidence, Level, Replica

DETAILS: dict[str, st.SearchStrategy[Any]] = {
    "note": st.sampled_from(["", "kept as v2", "verified on other storage"]),
    "older_version": st.sampled_from([None, "c-old", ""]),
    "differs": st.booleans(),
    "older_unproven": st.booleans(),
    "storage_changed": st.sampled_from([None, "dev:1", "unrecorded"]),
    "found_unverified": st.booleans(),
    "name": st.sampled_from([None, "scan.h5.v2"]),
}
DEFAULTS = {
    "note": "",
    "older_version": None,
    "differs": False,
    "older_unproven": False,
    "storage_changed": None,
    "found_unverified": False,
    "name": None,
}
EVIDENCE = Evidence(Level.CHECKSUM, "md5", "c0", "t1", datetime(2026, 1, 1, tzinfo=UTC), "sig")
details = st.fixed_dictionaries({}, optional=DETAILS)


def _replica(facts: dict[str, Any], level: Level = Level.SIZE) -> Replica:
    return Replica("2026/a.h5", "cfs", level, 10, 1, EVIDENCE, **facts)


@given(details, details)
def test_details_read_compare_and_replace_like_fields(first: dict, change: dict) -> None:  # type: ignore[type-arg]
    r = _replica(first)
    for key, default in DEFAULTS.items():
        assert getattr(r, key) == first.get(key, default)
    # Equal facts, however given (explicit defaults or left out), are equal replicas.
    explicit = _replica({**DEFAULTS, **first})
    assert explicit == r and hash(explicit) == hash(r) and repr(explicit) == repr(r)
    assert (r.details is None) is all(first.get(k, d) == d for k, d in DEFAULTS.items())
    # `dataclasses.replace` (and the typed `but`) change only what they are given.
    replaced = dataclasses.replace(r, **change)
    assert replaced == _replica({**first, **change}) == r.but(**change)
    for key, default in DEFAULTS.items():
        assert getattr(replaced, key) == change.get(key, first.get(key, default))
    assert dataclasses.replace(r, level=Level.CHECKSUM).level is Level.CHECKSUM
    assert r.but(level=Level.PRESENT, evidence=None) == Replica(
        "2026/a.h5", "cfs", Level.PRESENT, 10, 1, None, **first
    )


def test_a_plain_replica_is_smaller_and_prints_every_fact() -> None:
    r = _replica({})
    assert r.details is None
    assert sys.getsizeof(r) <= 88  # 7 slots, was 13 (136 bytes)
    shown = repr(_replica({"differs": True}))
    assert shown.startswith("Replica(scan='2026/a.h5', endpoint='cfs', level=")
    assert "differs=True" in shown and "older_version=None" in shown and "details" not in shown
    for name, value in (("level", Level.ABSENT), ("differs", True), ("note", "x")):
        try:
            setattr(r, name, value)
        except dataclasses.FrozenInstanceError:
            pass
        else:
            raise AssertionError(f"a replica is frozen: {name} was set")

"""A verdict is the replica it found (one object per replica, issue 15): it compares, hashes
and prints as the plain replica with the same fields, and what the assessment cache keeps of
its inputs never survives a change to it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from engine.model import Evidence, FileStat, Level, Replica, Scan, ScanFile
from engine.observe.assess import Assessed, assess

SCAN = Scan(
    id="2026/11/a.h5",
    files=(ScanFile("2026/11/a.h5", 5, 100.0, "c" * 32, 1, 2),),
    acquired_at=datetime(2026, 11, 1, tzinfo=UTC),
    checksum_algorithm="md5",
    checksum="c" * 32,
)
LISTED = FileStat("2026/11/a.h5", 5, 100.0, 3, 4)


def _verdict() -> Assessed:
    evidence = Evidence(Level.CHECKSUM, "md5", "c" * 32, "t-1", SCAN.acquired_at, LISTED.signature)
    verdict = assess(SCAN, "cfs", LISTED, evidence, is_inventory=False)
    verdict.remember(LISTED, SCAN, evidence)
    return verdict


def test_equal_to_and_hashed_as_the_plain_replica():
    verdict = _verdict()
    plain = Replica(verdict.scan, "cfs", Level.CHECKSUM, 5, 1, verdict.evidence)
    assert verdict.level is Level.CHECKSUM
    assert verdict == plain and plain == verdict
    assert hash(verdict) == hash(plain)
    assert {plain: 1}[verdict] == 1
    assert repr(verdict) == repr(plain)
    assert verdict.replica is verdict
    assert verdict != plain.but(note="other")


def test_a_changed_verdict_keeps_none_of_the_cache_inputs():
    verdict = _verdict()
    assert verdict.listing is LISTED and verdict.made_for is SCAN
    changed = dataclasses.replace(verdict, differs=True)
    assert changed.differs and changed.listing is None and changed.made_for is None
    assert changed.key is None
    assert type(verdict.but(differs=True)) is Replica
    elsewhere = Assessed.of(verdict.but(differs=True), verdict.signature)
    assert elsewhere.signature == verdict.signature and elsewhere.listing is None


def test_a_verdict_refuses_assignment():
    verdict = _verdict()
    for name in ("level", "signature", "listing"):
        try:
            setattr(verdict, name, None)
        except dataclasses.FrozenInstanceError:
            continue
        raise AssertionError(f"{name} was assigned")


def test_reused_only_for_the_very_scan_and_evidence_it_was_made_from():
    verdict = _verdict()  # its evidence is the key: one slot holds the scan alone
    assert verdict.made_from is SCAN and verdict.key is verdict.evidence
    assert verdict.made_from_same(SCAN, verdict.evidence)
    other = Evidence(Level.CHECKSUM, "md5", "c" * 32, "t-1", SCAN.acquired_at, LISTED.signature)
    assert other == verdict.evidence and not verdict.made_from_same(SCAN, other)  # not the same
    copy = dataclasses.replace(SCAN)
    assert not verdict.made_from_same(copy, verdict.evidence)
    # Evidence of an older version: not the replica's evidence, kept beside the scan.
    older = Evidence(Level.CHECKSUM, "md5", "0" * 32, "t-0", SCAN.acquired_at, "x" * 32)
    made = assess(SCAN, "cfs", LISTED, older, is_inventory=False)
    made.remember(LISTED, SCAN, older)
    assert made.evidence is None and made.key is older and made.made_for is SCAN
    assert made.made_from_same(SCAN, older) and not made.made_from_same(SCAN, None)
    fresh = Assessed.of(made, made.signature)
    assert not fresh.made_from_same(SCAN, older) and fresh.key is None

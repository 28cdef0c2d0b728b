"""Versions on write-once tape (engine/tape_versions.py): names, path mapping, and what the
planner does with a versioned object (a restore reads it, a new version goes beside the older
one). The whole flow through the CLI is in tests/cli/test_versions.py."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from engine.listing import listing_of
from engine.model import ActionKind, FileStat, Level, Replica, Scan, ScanFile
from engine.planner import plan
from engine.storage.base import TransferItem
from engine.tape_versions import as_object_listing, as_scan_listing, name_at, versioned_name
from tests.engine.test_planner import NOW, inp, scan


def directory_scan(version: int = 2) -> Scan:
    files = (
        ScanFile("2026/scan 7/f0.h5", 10, 1.0, "aa"),
        ScanFile("2026/scan 7/f1.h5", 5, 1.0, "bb"),
    )
    return Scan("2026/scan 7", files, NOW, "md5", "0c1f2a9b77", version, is_directory=True)


def test_a_versioned_name_ties_the_version_number_to_its_bytes() -> None:
    assert versioned_name(directory_scan()) == "2026/scan 7.v2-0c1f2a9b"
    assert versioned_name(scan()) == "2026/a.h5.v1-c0"


def test_a_versioned_listing_reads_as_the_scan_and_back() -> None:
    name = versioned_name(directory_scan())
    listing = listing_of(
        name, (FileStat(f"{name}/f0.h5", 10, 1.0), FileStat(f"{name}/f1.h5", 5, 1.0))
    )
    as_scan = as_scan_listing(listing, "2026/scan 7", name)
    assert [f.path for f in as_scan.files] == ["2026/scan 7/f0.h5", "2026/scan 7/f1.h5"]
    assert as_scan.scan == "2026/scan 7"
    assert as_object_listing(as_scan, "2026/scan 7", name) == listing


def test_a_transfer_item_writes_and_reads_under_the_names() -> None:
    s = directory_scan()
    item = TransferItem(
        "a1", s.id, s.files, "md5", recursive=True, target_name="x/v", source_name="y/w"
    )
    assert item.target_path("2026/scan 7/f0.h5") == "x/v/f0.h5"
    assert item.source_path("2026/scan 7/f1.h5") == "y/w/f1.h5"
    plain = TransferItem("a1", s.id, s.files, "md5", recursive=True)
    assert plain.target_path("2026/scan 7/f0.h5") == "2026/scan 7/f0.h5"


def test_name_at_is_the_versioned_object_only_for_the_current_version() -> None:
    from engine.model import Evidence

    s = scan()
    proof = Evidence(Level.CHECKSUM, "md5", "c0", None, NOW, "sig", "copy")
    assert name_at({versioned_name(s): proof}, s) == versioned_name(s)
    other = dataclasses.replace(proof, value="old")
    assert name_at({versioned_name(s): other}, s) == s.id
    assert name_at({}, s) == s.id


def test_a_restore_from_tape_reads_the_versioned_object() -> None:
    """cfs lost its copy of a young scan; tape holds it only as a versioned object beside an
    older version: the restore (a recall, approved by a person) reads the versioned object."""
    young = scan(acquired=NOW - timedelta(days=300))
    levels = {"dtn": {}, "cfs": {}, "hpss": {young.id: Level.CHECKSUM}}
    base = inp([young], levels, previously={"dtn": set(), "cfs": set(), "hpss": set()})
    name = versioned_name(young)
    tape = Replica(young.id, "hpss", Level.CHECKSUM, 100, 1, name=name, older_version="old")
    observations = dict(base.observations)
    observations["hpss"] = dataclasses.replace(observations["hpss"], replicas={young.id: tape})
    result = plan(dataclasses.replace(base, observations=observations))
    (action,) = result.actions
    assert (action.kind, action.source, action.target) == (ActionKind.COPY, "hpss", "cfs")
    assert action.source_name == name and action.target_name is None
    assert action.to_json()["source_name"] == name and action.requires_approval


def test_a_new_version_goes_beside_the_older_one_on_tape() -> None:
    """hpss holds a verified older version at the scan's path (also verified nowhere else);
    cfs holds the new one: the copy to tape is planned under the versioned name, no replace,
    no approval, never blocked as a conflict."""
    s = scan(acquired=NOW - timedelta(days=10))
    levels = {
        "dtn": {s.id: Level.CHECKSUM},
        "cfs": {s.id: Level.CHECKSUM},
        "hpss": {s.id: Level.SIZE},
    }
    base = inp([s], levels)
    older = Replica(s.id, "hpss", Level.SIZE, 100, 1, older_version="v1sum")
    observations = dict(base.observations)
    observations["hpss"] = dataclasses.replace(observations["hpss"], replicas={s.id: older})
    result = plan(dataclasses.replace(base, observations=observations))
    (copy,) = [a for a in result.actions if a.kind is ActionKind.COPY]
    assert (copy.source, copy.target, copy.replaces) == ("cfs", "hpss", None)
    assert copy.target_name == versioned_name(s) and not copy.requires_approval
    assert not [b for b in result.blocked if b.reason_code == "version_conflict"]


def test_a_version_kept_beside_another_on_tape_is_never_pruned_there() -> None:
    """Should tape have a retention rule, a prune there removes the scan's own path: where that
    path holds an older version (this version is kept under its versioned name), the prune is
    held for a person instead."""
    from engine.policy import RetentionRule
    from tests.engine.test_planner import POLICY

    policy = dataclasses.replace(
        POLICY,
        retention={**POLICY.retention, "hpss": RetentionRule(0, ("cfs",), Level.CHECKSUM)},
    )
    s = scan()
    levels = {"dtn": {}, "cfs": {s.id: Level.CHECKSUM}, "hpss": {s.id: Level.CHECKSUM}}
    base = inp([s], levels, policy=policy)
    tape = Replica(s.id, "hpss", Level.CHECKSUM, 100, 1, name=versioned_name(s), older_version="v1")
    observations = dict(base.observations)
    observations["hpss"] = dataclasses.replace(observations["hpss"], replicas={s.id: tape})
    result = plan(dataclasses.replace(base, observations=observations))
    assert not [a for a in result.actions if a.kind is ActionKind.DELETE and a.target == "hpss"]
    assert [b.reason_code for b in result.blocked if b.endpoint == "hpss"] == ["version_conflict"]
    plain = plan(base)  # the same without an older version there: no such conflict
    assert "version_conflict" not in [b.reason_code for b in plain.blocked if b.endpoint == "hpss"]

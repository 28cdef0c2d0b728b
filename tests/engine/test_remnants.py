"""The rest of a partly executed delete is the same version only when the receipt explains
every difference (engine/remnants.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.model import FileStat, Scan, ScanFile
from engine.remnants import RemnantIndex

A, B, C = "s1/frame_0.h5", "s1/frame_1.h5", "s1/frame_2.h5"
SCAN = Scan(
    id="s1",
    files=(
        ScanFile(A, 10, 100.0, "ca", inode=1, ctime_ns=5),
        ScanFile(B, 20, 100.0, "cb", inode=2, ctime_ns=5),
        ScanFile(C, 30, 100.0, "cc", inode=3, ctime_ns=5),
    ),
    acquired_at=datetime(2026, 1, 1, tzinfo=UTC),
    checksum_algorithm="sha256",
    checksum="v1",
    is_directory=True,
)
INDEX = RemnantIndex({"s1": {"v1": frozenset({A})}})


def stat(path: str, size: int, *, inode: int, ctime: int = 5, mtime: float = 100.0) -> FileStat:
    return FileStat(path, size, mtime, inode, ctime)


def test_the_recorded_version_minus_receipted_files_is_a_remnant() -> None:
    assert INDEX.is_remnant(SCAN, (stat(B, 20, inode=2), stat(C, 30, inode=3)))


@pytest.mark.parametrize(
    "listed",
    [
        pytest.param((stat(B, 20, inode=2), stat(C, 30, inode=3, ctime=6)), id="rewritten-cp-p"),
        pytest.param((stat(B, 20, inode=2), stat(C, 31, inode=3)), id="resized"),
        pytest.param((stat(B, 20, inode=2),), id="a-file-gone-no-receipt-names"),
        pytest.param(
            (stat(A, 10, inode=1), stat(B, 20, inode=2), stat(C, 30, inode=3)), id="all-back"
        ),
        pytest.param(
            (stat(B, 20, inode=2), stat(C, 30, inode=3), stat("s1/frame_3.h5", 1, inode=9)),
            id="a-file-added",
        ),
    ],
)
def test_anything_the_receipt_does_not_explain_is_a_change(listed: tuple[FileStat, ...]) -> None:
    assert not INDEX.is_remnant(SCAN, listed)


def test_a_receipt_of_another_version_explains_nothing() -> None:
    other = RemnantIndex({"s1": {"v0": frozenset({A})}})
    assert not other.is_remnant(SCAN, (stat(B, 20, inode=2), stat(C, 30, inode=3)))


def test_without_identity_a_listing_is_held_to_size_and_mtime() -> None:
    listed = (FileStat(B, 20, 100.0), FileStat(C, 30, 100.0))
    assert not INDEX.is_remnant(SCAN, listed)  # the walk needs the file's identity
    assert INDEX.is_remnant(SCAN, listed, by_identity=False)
    moved = (FileStat(B, 20, 100.0), FileStat(C, 30, 101.0))
    assert not INDEX.is_remnant(SCAN, moved, by_identity=False)

"""The inventory walk: completeness, acquisition checksums, checksum reuse and versions."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.errors import EndpointUnavailable
from engine.inventory import walk as walk_module
from engine.inventory.walk import InventoryResult, walk_inventory
from engine.layout import ScanLayout
from engine.model import Scan, scan_digest
from engine.storage.local import LocalStorage

FILES = ScanLayout(exclude=("**/.*", "**/*.tmp"))
DIRS = ScanLayout(unit="directory", depth=2, exclude=("**/.*", "**/*.tmp"))
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = NOW.timestamp() - 3600  # long quiet
FRESH = NOW.timestamp() - 5  # still being written


def put(root: Path, relpath: str, data: bytes, mtime: float = OLD) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def dtn(tmp_path: Path) -> LocalStorage:
    (tmp_path / "dtn").mkdir()
    return LocalStorage("dtn", tmp_path / "dtn")


@pytest.fixture
def checksum_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every file the walk reads to checksum."""
    calls: list[str] = []
    real = walk_module.file_checksum

    def counting(path: Any, algorithm: str, **kwargs: Any) -> str:
        calls.append(Path(path).name)
        return real(path, algorithm, **kwargs)

    monkeypatch.setattr(walk_module, "file_checksum", counting)
    return calls


def walk(
    storage: LocalStorage,
    layout: ScanLayout = FILES,
    known: dict[str, Scan] | None = None,
    **options: Any,
) -> InventoryResult:
    return walk_inventory(
        storage,
        layout,
        algorithm="md5",
        quiet_seconds=60,
        now=NOW,
        known=known or {},
        **options,
    )


def test_file_scans_get_checksums_and_acquisition_time(dtn: LocalStorage) -> None:
    put(dtn.root, "2026/11/scan_0001.h5", b"spectrum", mtime=OLD)
    put(dtn.root, "2026/11/empty.h5", b"", mtime=OLD - 10)

    result = walk(dtn)

    scan = result.scans["2026/11/scan_0001.h5"]
    assert scan.checksum == md5(b"spectrum") == scan.files[0].checksum
    assert (scan.checksum_algorithm, scan.version, scan.is_directory) == ("md5", 1, False)
    assert scan.acquired_at == datetime.fromtimestamp(OLD, tz=UTC)
    assert scan.acquired_at.tzinfo is not None
    assert result.scans["2026/11/empty.h5"].checksum == md5(b"")
    assert result.checksummed_bytes == len(b"spectrum")
    assert (result.incomplete, result.problems) == ((), ())


def test_directory_scan_checksum_digests_its_files(dtn: LocalStorage) -> None:
    put(dtn.root, "2026/scan_a/frame_1.tif", b"one", mtime=OLD)
    put(dtn.root, "2026/scan_a/frame_2.tif", b"two", mtime=OLD + 30)

    scan = walk(dtn, DIRS).scans["2026/scan_a"]

    assert scan.is_directory
    assert [f.checksum for f in scan.files] == [md5(b"one"), md5(b"two")]
    assert scan.checksum == scan_digest("md5", scan.files)
    assert scan.acquired_at == datetime.fromtimestamp(OLD + 30, tz=UTC)  # newest file


def test_scans_still_being_written_are_incomplete_and_not_read(
    dtn: LocalStorage, checksum_calls: list[str]
) -> None:
    put(dtn.root, "done.h5", b"x", mtime=OLD)
    put(dtn.root, "writing.h5", b"y", mtime=FRESH)
    put(dtn.root, "2026/scan_a/old.tif", b"o", mtime=OLD)
    put(dtn.root, "2026/scan_a/new.tif", b"n", mtime=FRESH)  # one fresh file keeps it open

    files = walk(dtn)
    dirs = walk(dtn, DIRS)

    assert sorted(files.scans) == ["2026/scan_a/old.tif", "done.h5"]
    assert files.incomplete == ("2026/scan_a/new.tif", "writing.h5")
    assert dirs.scans == {} and dirs.incomplete == ("2026/scan_a",)
    assert sorted(checksum_calls) == ["done.h5", "old.tif"]  # the file walk; none for dirs


def test_quiet_period_boundary_counts_as_complete(dtn: LocalStorage) -> None:
    put(dtn.root, "edge.h5", b"x", mtime=NOW.timestamp() - 60)
    assert "edge.h5" in walk(dtn).scans


def test_done_marker_completes_a_directory_scan_early(dtn: LocalStorage) -> None:
    put(dtn.root, "2026/scan_a/frame.tif", b"f", mtime=FRESH)
    put(dtn.root, "2026/scan_a/scan.done", b"", mtime=FRESH)
    put(dtn.root, "2026/scan_b/frame.tif", b"f", mtime=FRESH)

    result = walk(dtn, DIRS, done_marker="*.done")

    assert sorted(result.scans) == ["2026/scan_a"]
    assert result.incomplete == ("2026/scan_b",)
    assert walk(dtn, DIRS).scans == {}  # without the marker both wait for quiet


def test_steady_state_walk_reuses_every_checksum(
    dtn: LocalStorage, checksum_calls: list[str]
) -> None:
    for i in range(20):
        put(dtn.root, f"2026/scan_{i:02d}.h5", bytes([i]) * 100)
    first = walk(dtn)
    assert len(checksum_calls) == 20

    checksum_calls.clear()
    second = walk(dtn, known=first.scans)

    assert checksum_calls == []
    assert second.checksummed_bytes == 0
    assert second.scans == first.scans


def test_only_changed_files_of_a_directory_scan_are_reread(
    dtn: LocalStorage, checksum_calls: list[str]
) -> None:
    put(dtn.root, "2026/scan_a/f1.tif", b"one")
    put(dtn.root, "2026/scan_a/f2.tif", b"two")
    first = walk(dtn, DIRS)
    checksum_calls.clear()

    put(dtn.root, "2026/scan_a/f2.tif", b"TWO", mtime=OLD + 1)
    second = walk(dtn, DIRS, known=first.scans)

    assert checksum_calls == ["f2.tif"]
    assert second.checksummed_bytes == 3
    scan = second.scans["2026/scan_a"]
    assert [f.checksum for f in scan.files] == [md5(b"one"), md5(b"TWO")]
    assert scan.version == 2


def test_rewritten_scan_gets_a_new_version_and_a_touched_one_keeps_its_own(
    dtn: LocalStorage,
) -> None:
    put(dtn.root, "scan.h5", b"v1")
    first = walk(dtn).scans

    put(dtn.root, "scan.h5", b"v1", mtime=OLD + 5)  # touched, same bytes
    touched = walk(dtn, known=first).scans
    put(dtn.root, "scan.h5", b"v2", mtime=OLD + 10)  # rewritten
    rewritten = walk(dtn, known=touched).scans

    assert first["scan.h5"].version == 1
    assert touched["scan.h5"].version == 1
    assert rewritten["scan.h5"].version == 2
    assert rewritten["scan.h5"].checksum == md5(b"v2")


def test_known_checksums_of_another_algorithm_are_not_reused(
    dtn: LocalStorage, checksum_calls: list[str]
) -> None:
    put(dtn.root, "scan.h5", b"data")
    first = walk(dtn).scans
    checksum_calls.clear()

    result = walk_inventory(dtn, FILES, algorithm="sha256", quiet_seconds=60, now=NOW, known=first)

    assert checksum_calls == ["scan.h5"]
    scan = result.scans["scan.h5"]
    assert scan.checksum == hashlib.sha256(b"data").hexdigest()
    assert scan.version == 1  # same files, only the algorithm changed


def failing_checksum(
    monkeypatch: pytest.MonkeyPatch, name: str, action: Callable[[Path], None]
) -> None:
    """Make the walk's read of one file run `action` first (delete it, refuse it …)."""
    real = walk_module.file_checksum

    def checksum(path: Any, algorithm: str, **kwargs: Any) -> str:
        if Path(path).name == name:
            action(Path(path))
        return real(path, algorithm, **kwargs)

    monkeypatch.setattr(walk_module, "file_checksum", checksum)


def test_a_file_vanishing_before_its_checksum_skips_only_its_scan(
    dtn: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(dtn.root, "keep.h5", b"k")
    put(dtn.root, "gone.h5", b"g")
    failing_checksum(monkeypatch, "gone.h5", Path.unlink)

    result = walk(dtn)

    assert sorted(result.scans) == ["keep.h5"]
    assert len(result.problems) == 1 and "'gone.h5' vanished" in result.problems[0]


def test_an_unreadable_file_is_a_problem_not_a_crash(
    dtn: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(dtn.root, "2026/scan_a/ok.tif", b"k")
    put(dtn.root, "2026/scan_a/locked.tif", b"l")
    put(dtn.root, "2026/scan_b/ok.tif", b"k")

    def refuse(path: Path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    failing_checksum(monkeypatch, "locked.tif", refuse)
    result = walk(dtn, DIRS)

    assert sorted(result.scans) == ["2026/scan_b"]
    assert result.problems == (
        "scan '2026/scan_a': cannot read '2026/scan_a/locked.tif': Permission denied",
    )


def test_a_file_changing_while_checksummed_is_not_recorded(
    dtn: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(dtn.root, "growing.h5", b"part one")

    def append(path: Path) -> None:
        with path.open("ab") as stream:
            stream.write(b" and part two")

    failing_checksum(monkeypatch, "growing.h5", append)
    result = walk(dtn)

    assert result.scans == {}
    assert result.problems == (
        "scan 'growing.h5': 'growing.h5' changed while it was being checksummed",
    )


def test_an_unavailable_endpoint_raises_instead_of_reporting_no_scans(tmp_path: Path) -> None:
    with pytest.raises(EndpointUnavailable, match="unmounted"):
        walk(LocalStorage("dtn", tmp_path / "not-mounted"))


# ---- a checksum is reused only for the very same file ---------------------------------------


def rewrite_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    """What `cp -p` does to an existing file: new bytes, the old mtime put back."""
    before = os.stat(path)
    assert len(data) == before.st_size
    with path.open("r+b") as stream:
        stream.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_rewrite_with_size_and_mtime_put_back_is_rehashed(
    dtn: LocalStorage, checksum_calls: list[str]
) -> None:
    path = put(dtn.root, "2026/scan.h5", b"version one")
    first = walk(dtn).scans
    checksum_calls.clear()

    rewrite_keeping_size_and_mtime(path, b"version TWO")
    second = walk(dtn, known=first).scans

    assert checksum_calls == ["scan.h5"]
    scan = second["2026/scan.h5"]
    assert scan.checksum == md5(b"version TWO") and scan.version == 2
    assert scan.files[0].ctime_ns == os.stat(path).st_ctime_ns


def test_a_file_replaced_by_rename_with_size_and_mtime_put_back_is_rehashed(
    dtn: LocalStorage, checksum_calls: list[str]
) -> None:
    put(dtn.root, "2026/scan_a/f1.tif", b"one")
    put(dtn.root, "2026/scan_a/f2.tif", b"two")
    first = walk(dtn, DIRS).scans
    checksum_calls.clear()

    put(dtn.root, "2026/scan_a/.f2.tif.tmp", b"TWO")  # rsync -t: temp file, mtime, rename
    os.replace(dtn.root / "2026/scan_a/.f2.tif.tmp", dtn.root / "2026/scan_a/f2.tif")
    second = walk(dtn, DIRS, known=first).scans

    assert checksum_calls == ["f2.tif"]  # only the replaced file is read again
    assert [f.checksum for f in second["2026/scan_a"].files] == [md5(b"one"), md5(b"TWO")]


def test_records_without_a_file_identity_are_rehashed_once(
    dtn: LocalStorage, checksum_calls: list[str]
) -> None:
    put(dtn.root, "scan.h5", b"data")
    fresh = walk(dtn).scans["scan.h5"]
    # As stored by a version that kept only (path, size, mtime, checksum).
    legacy = dataclasses.replace(
        fresh, files=tuple(dataclasses.replace(f, inode=None, ctime_ns=None) for f in fresh.files)
    )
    checksum_calls.clear()

    again = walk(dtn, known={"scan.h5": legacy}).scans
    assert checksum_calls == ["scan.h5"]
    assert again["scan.h5"] == fresh  # same checksum and version, identity now recorded
    checksum_calls.clear()
    assert walk(dtn, known=again).scans == again
    assert checksum_calls == []


def test_a_file_rewritten_while_checksummed_with_its_mtime_put_back_is_not_recorded(
    dtn: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(dtn.root, "scan.h5", b"first bytes")
    failing_checksum(
        monkeypatch, "scan.h5", lambda p: rewrite_keeping_size_and_mtime(p, b"other bytes")
    )
    result = walk(dtn)
    assert result.scans == {}
    assert result.problems == ("scan 'scan.h5': 'scan.h5' changed while it was being checksummed",)


def test_the_steady_memo_takes_a_scan_only_with_its_very_listing_and_known_scan(
    dtn: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`steady=`: a scan listed by the very listing object the last walk saw, whose known scan
    is the very object that walk returned, is taken without a second look; a known scan
    replaced meanwhile (a new object, e.g. a version recorded by another pass) is looked at."""
    from engine.inventory.walk import SteadyMemo

    for name in ("a.h5", "b.h5"):
        put(dtn.root, f"2026/{name}", name.encode())
    listings = dtn.list_scans(FILES)
    monkeypatch.setattr(dtn, "list_scans", lambda layout, wanted=None: listings)
    memo = SteadyMemo()
    first = walk_inventory(dtn, FILES, algorithm="md5", quiet_seconds=60, now=NOW, known={})
    known = dict(first.scans)
    walk_inventory(dtn, FILES, algorithm="md5", quiet_seconds=60, now=NOW, known=known, steady=memo)
    assert set(memo.listings) == {"2026/a.h5", "2026/b.h5"}
    looked: list[str] = []
    real = walk_module._unchanged

    def counting(previous: Scan, listing: Any, algorithm: str) -> bool:
        looked.append(previous.id)
        return real(previous, listing, algorithm)

    monkeypatch.setattr(walk_module, "_unchanged", counting)
    # Equal, another object; in a new dict, as the observer records it (a dict given as
    # `known` is never changed afterwards: the memo may keep it).
    known = {**known, "2026/b.h5": dataclasses.replace(known["2026/b.h5"])}
    again = walk_inventory(
        dtn, FILES, algorithm="md5", quiet_seconds=60, now=NOW, known=known, steady=memo
    )
    assert looked == ["2026/b.h5"]
    assert again.scans["2026/a.h5"] is known["2026/a.h5"]
    assert again.scans["2026/b.h5"] is known["2026/b.h5"]
    assert set(memo.listings) == {"2026/a.h5", "2026/b.h5"}
    # Every listing kept and every scan the known one: the memo and the result keep the dicts
    # given (one dict over every scan, not two each).
    assert again.scans is known and memo.scans is known and memo.listings is listings

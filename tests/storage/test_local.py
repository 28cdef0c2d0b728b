"""Local endpoints: listing a tree honestly, and copying/deleting scans without ever lying."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.errors import EndpointUnavailable, TerminalError, UnsafePath
from engine.layout import ENGINE_TEMP_PREFIX, ScanLayout
from engine.model import ErrorClass, Level, ScanFile, scan_digest
from engine.storage import local_mover
from engine.storage.base import (
    Mover,
    Storage,
    TaskRequest,
    TaskStatus,
    TransferItem,
    listing_signature,
)
from engine.storage.local import LocalMover, LocalStorage, safe_path, sweep_temp_files

FILES = ScanLayout(exclude=("**/.*", "**/*.tmp", "**/*.part"))
DIRS = ScanLayout(unit="directory", depth=2, exclude=("**/.*", "**/*.tmp", "**/*.part"))
ACQUIRED = datetime(2026, 11, 1, 8, 30, tzinfo=UTC).timestamp()
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

# Names a beamline really produces now and then: not UTF-8, spaces, a newline.
ODD_NAMES = [
    os.fsdecode(b"2026/scan_\xff\xfe.h5"),
    "2026/with space/scan 1.h5",
    "2026/line\nbreak.h5",
]


def put(root: Path, relpath: str, data: bytes, mtime: float = ACQUIRED) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def recorded(relpath: str, data: bytes, mtime: float = ACQUIRED) -> ScanFile:
    """The inventory's record of a file with these bytes."""
    return ScanFile(relpath, len(data), mtime, hashlib.md5(data).hexdigest())


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(ENGINE_TEMP_PREFIX)]


@pytest.fixture
def dtn(tmp_path: Path) -> Path:
    root = tmp_path / "dtn"
    root.mkdir()
    return root


@pytest.fixture
def cfs(tmp_path: Path) -> Path:
    root = tmp_path / "cfs"
    root.mkdir()
    return root


@pytest.fixture
def mover(dtn: Path, cfs: Path) -> Iterator[LocalMover]:
    instance = LocalMover({"dtn": dtn, "cfs": cfs}, clock=lambda: NOW)
    yield instance
    instance.close()


def run(mover: LocalMover, kind: str, items: list[TransferItem], **request: Any) -> TaskStatus:
    """Submit one task and wait for it to finish."""
    task_id = mover.submit(
        TaskRequest(
            kind="copy" if kind == "copy" else "delete",
            source="dtn" if kind == "copy" else None,
            target="cfs",
            items=tuple(items),
            submission_id=mover.new_submission_id(),
            label="test",
            **request,
        )
    )
    status = mover.wait(task_id, timeout=30)
    assert status.finished
    return status


def file_item(record: ScanFile, action_id: str = "a1") -> TransferItem:
    return TransferItem(action_id, record.path, (record,), "md5")


# ---- LocalStorage: listing ------------------------------------------------------------------


def test_local_backends_satisfy_the_protocols(dtn: Path, mover: LocalMover) -> None:
    assert isinstance(LocalStorage("dtn", dtn), Storage)
    assert isinstance(mover, Mover)


def test_lists_each_file_as_a_scan_with_size_and_mtime(dtn: Path) -> None:
    put(dtn, "2026/11/scan_0001.h5", b"abc", mtime=ACQUIRED)
    put(dtn, "2026/11/scan_0002.h5", b"", mtime=ACQUIRED + 5)
    put(dtn, "2026/.cache/hidden.h5", b"x")
    put(dtn, "2026/11/scan_0003.h5.part", b"x")
    put(dtn, f"2026/11/{ENGINE_TEMP_PREFIX}abc.tmp", b"x")

    listings = LocalStorage("dtn", dtn).list_scans(FILES)

    assert sorted(listings) == ["2026/11/scan_0001.h5", "2026/11/scan_0002.h5"]
    (first,) = listings["2026/11/scan_0001.h5"].files
    assert (first.path, first.size, first.mtime) == ("2026/11/scan_0001.h5", 3, ACQUIRED)
    assert listings["2026/11/scan_0002.h5"].size == 0


def test_directory_layout_groups_files_below_each_scan_folder(dtn: Path) -> None:
    put(dtn, "2026/scan_a/frame_1.tif", b"1")
    put(dtn, "2026/scan_a/sub/frame_2.tif", b"22")
    put(dtn, "2026/scan_b/frame_1.tif", b"333")
    put(dtn, "2026/loose.txt", b"above the scan depth")

    listings = LocalStorage("dtn", dtn).list_scans(DIRS)

    assert sorted(listings) == ["2026/scan_a", "2026/scan_b"]
    assert [f.path for f in listings["2026/scan_a"].files] == [
        "2026/scan_a/frame_1.tif",
        "2026/scan_a/sub/frame_2.tif",
    ]
    assert listings["2026/scan_a"].size == 3


def test_missing_root_raises_instead_of_listing_empty(tmp_path: Path) -> None:
    storage = LocalStorage("cfs", tmp_path / "not-mounted")
    with pytest.raises(EndpointUnavailable, match=r"missing \(unmounted\?\)"):
        storage.list_scans(FILES)
    with pytest.raises(EndpointUnavailable):
        storage.stat_scan(FILES, "2026/scan.h5")


def test_root_that_is_a_file_raises(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.write_text("not a directory")
    with pytest.raises(EndpointUnavailable, match="not a directory") as raised:
        LocalStorage("cfs", root).list_scans(FILES)
    assert raised.value.endpoint == "cfs"


def test_permission_denied_on_a_subfolder_fails_the_whole_listing(
    dtn: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(dtn, "2026/open/scan_1.h5", b"x")
    put(dtn, "2026/locked/scan_2.h5", b"x")
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if os.fspath(path).endswith("locked"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(EndpointUnavailable, match="'2026/locked': Permission denied"):
        LocalStorage("dtn", dtn).list_scans(FILES)


def test_file_vanishing_between_scandir_and_stat_is_left_out(
    dtn: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(dtn, "2026/stays.h5", b"x")
    doomed = put(dtn, "2026/goes.h5", b"x")
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        with real_scandir(path) as scanner:
            entries = list(scanner)
        if os.fspath(path).endswith("2026"):
            doomed.unlink()  # after readdir, before the stat of each entry
        return contextlib.nullcontext(iter(entries))

    monkeypatch.setattr(os, "scandir", scandir)
    assert sorted(LocalStorage("dtn", dtn).list_scans(FILES)) == ["2026/stays.h5"]


def test_folder_vanishing_mid_walk_is_gone_but_a_vanished_root_raises(
    dtn: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(dtn, "a/scan_1.h5", b"x")
    put(dtn, "b/scan_2.h5", b"x")
    real_scandir = os.scandir
    vanish_root = False

    def scandir(path: Any) -> Any:
        if os.fspath(path).endswith("/b"):
            if vanish_root:
                dtn.rename(dtn.with_name("unmounted"))
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    storage = LocalStorage("dtn", dtn)
    assert sorted(storage.list_scans(FILES)) == ["a/scan_1.h5"]
    vanish_root = True
    with pytest.raises(EndpointUnavailable, match="unmounted"):
        storage.list_scans(FILES)


def test_symlinks_are_never_followed_and_escaping_ones_are_warned_once(
    dtn: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path / "outside"
    put(outside, "secret.h5", b"not ours")
    put(dtn, "2026/real.h5", b"x")
    (dtn / "2026" / "link_out.h5").symlink_to(outside / "secret.h5")
    (dtn / "dir_out").symlink_to(outside, target_is_directory=True)
    (dtn / "2026" / "link_in.h5").symlink_to(dtn / "2026" / "real.h5")

    with caplog.at_level(logging.WARNING, logger="engine.storage.local"):
        listings = LocalStorage("dtn", dtn).list_scans(FILES)

    assert sorted(listings) == ["2026/real.h5"]
    warnings = [r for r in caplog.records if "outside the root" in r.getMessage()]
    assert len(warnings) == 1
    assert "2 symlink(s)" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "relpath", ["../etc/passwd", "/etc/passwd", "a/../../x", "a\0b", "", "a//b", "./a", "a/."]
)
def test_safe_path_rejects_paths_that_are_not_plain_relative(dtn: Path, relpath: str) -> None:
    with pytest.raises(UnsafePath):
        safe_path(dtn, relpath)


def test_safe_path_rejects_a_symlinked_parent_pointing_outside(dtn: Path, tmp_path: Path) -> None:
    put(tmp_path / "elsewhere", "victim.h5", b"precious")
    (dtn / "2026").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(UnsafePath, match="outside the endpoint root"):
        LocalStorage("dtn", dtn).resolve("2026/victim.h5")
    assert safe_path(dtn, "2027/new.h5") == dtn / "2027" / "new.h5"


def test_safe_path_rejects_symlinks_inside_the_root_too(dtn: Path) -> None:
    """Through `2026 -> 2025`, deleting scan 2026/x.h5 would remove scan 2025/x.h5."""
    put(dtn, "2025/x.h5", b"another scan")
    (dtn / "2026").symlink_to(dtn / "2025", target_is_directory=True)
    (dtn / "link.h5").symlink_to(dtn / "2025" / "x.h5")
    for relpath in ("2026/x.h5", "link.h5"):
        with pytest.raises(UnsafePath, match="inside the endpoint root"):
            safe_path(dtn, relpath)
    assert safe_path(dtn, "2025/x.h5") == dtn / "2025" / "x.h5"


def test_a_symlinked_root_is_fine(dtn: Path, tmp_path: Path) -> None:
    put(dtn, "2026/scan.h5", b"x")
    mount = tmp_path / "mount"
    mount.symlink_to(dtn, target_is_directory=True)
    storage = LocalStorage("dtn", mount)
    assert sorted(storage.list_scans(FILES)) == ["2026/scan.h5"]
    assert storage.resolve("2026/scan.h5") == mount / "2026" / "scan.h5"


def test_stat_scan_gives_a_fresh_listing_or_none(dtn: Path) -> None:
    put(dtn, "2026/scan_a/f.tif", b"1234")
    put(dtn, "2026/one.h5", b"12")
    storage = LocalStorage("dtn", dtn)

    listing = storage.stat_scan(DIRS, "2026/scan_a")
    assert listing is not None and listing.size == 4
    assert storage.stat_scan(DIRS, "2026/scan_gone") is None
    one = storage.stat_scan(FILES, "2026/one.h5")
    assert one is not None and one.files[0].size == 2
    assert storage.stat_scan(FILES, "2026/missing.h5") is None
    assert storage.stat_scan(FILES, "2026/scan_a") is None  # a folder is not a file scan


def test_checksum_files_computes_each_files_digest(dtn: Path) -> None:
    put(dtn, "2026/scan_a/f1", b"one")
    put(dtn, "2026/scan_a/f2", b"")
    storage = LocalStorage("dtn", dtn)
    listing = storage.stat_scan(DIRS, "2026/scan_a")
    assert listing is not None
    assert storage.checksum_files(listing, "sha256") == {
        "2026/scan_a/f1": hashlib.sha256(b"one").hexdigest(),
        "2026/scan_a/f2": hashlib.sha256(b"").hexdigest(),
    }


# ---- LocalMover: copies ---------------------------------------------------------------------


def test_copy_writes_verified_bytes_preserves_mtime_and_returns_evidence(
    dtn: Path, cfs: Path, mover: LocalMover
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    put(dtn, "2026/11/scan_0001.h5", data, mtime=ACQUIRED).chmod(0o640)
    record = recorded("2026/11/scan_0001.h5", data)

    status = run(mover, "copy", [file_item(record)])

    assert status.state == "succeeded"
    assert (status.bytes_done, status.bytes_total) == (len(data), len(data))
    assert (status.files_done, status.files_total) == (1, 1)
    copy = cfs / "2026/11/scan_0001.h5"
    assert copy.read_bytes() == data
    assert copy.stat().st_mtime == ACQUIRED
    assert copy.stat().st_mode & 0o777 == 0o640
    (result,) = status.results
    assert result.ok and result.evidence is not None
    evidence = result.evidence
    assert (evidence.level, evidence.algorithm, evidence.value) == (
        Level.CHECKSUM,
        "md5",
        record.checksum,
    )
    assert (evidence.task_id, evidence.verified_at, evidence.how) == (status.task_id, NOW, "copy")
    observed = LocalStorage("cfs", cfs).stat_scan(FILES, record.path)
    assert observed is not None and evidence.signature == observed.signature
    assert temp_files(cfs) == []


def test_directory_scan_copy_carries_the_scan_digest(
    dtn: Path, cfs: Path, mover: LocalMover
) -> None:
    records = tuple(
        recorded(f"2026/scan_a/frame_{i}.tif", bytes([i]) * (i * 1000)) for i in range(3)
    )
    for i, record in enumerate(records):
        put(dtn, record.path, bytes([i]) * (i * 1000))
    item = TransferItem("a1", "2026/scan_a", records, "md5", recursive=True)

    status = run(mover, "copy", [item])

    (result,) = status.results
    assert result.ok and result.evidence is not None
    assert result.evidence.value == scan_digest("md5", records)
    assert result.evidence.signature == listing_signature(records)  # mtimes preserved
    assert sorted(p.name for p in (cfs / "2026/scan_a").iterdir()) == [
        "frame_0.tif",
        "frame_1.tif",
        "frame_2.tif",
    ]


def test_other_bytes_at_the_destination_are_never_overwritten_by_a_plain_copy(
    dtn: Path, cfs: Path, mover: LocalMover
) -> None:
    """They may be an older version whose evidence was lost, or a user's file: a plain copy
    fails for a person and leaves them; only a replace (`overwrite`) may write over them."""
    good, bad = b"A" * 4096, b"A" * 4095 + b"B"
    put(dtn, "scan.h5", good)
    put(cfs, "scan.h5", bad)

    status = run(mover, "copy", [file_item(recorded("scan.h5", good))])

    assert status.state == "failed"
    assert status.results[0].error_class is ErrorClass.NEEDS_HUMAN
    assert "other bytes" in (status.results[0].error or "")
    assert (cfs / "scan.h5").read_bytes() == bad


def test_a_replace_overwrites_other_bytes_of_the_same_size_and_verifies(
    dtn: Path, cfs: Path, mover: LocalMover, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = b"A" * 4096, b"A" * 4095 + b"B"
    put(dtn, "scan.h5", good)
    put(cfs, "scan.h5", bad)
    item = replace(file_item(recorded("scan.h5", good)), overwrite=True)

    with caplog.at_level(logging.WARNING):
        status = run(mover, "copy", [item])

    assert status.state == "succeeded"
    assert (cfs / "scan.h5").read_bytes() == good
    assert any("differs from the acquisition checksum; replacing" in m for m in caplog.messages)


def test_destination_already_holding_the_bytes_is_adopted_without_rewrite(
    dtn: Path, cfs: Path, mover: LocalMover
) -> None:
    data = b"already there"
    put(dtn, "scan.h5", data)
    existing = put(cfs, "scan.h5", data, mtime=ACQUIRED + 99)
    inode = existing.stat().st_ino

    status = run(mover, "copy", [file_item(recorded("scan.h5", data))])

    assert status.state == "succeeded"
    assert (status.bytes_done, status.bytes_total) == (len(data), len(data))
    assert existing.stat().st_ino == inode
    assert existing.stat().st_mtime == ACQUIRED  # the source's mtime, as a fresh copy would have
    assert status.results[0].evidence is not None


def test_source_no_longer_matching_the_acquisition_fails_needs_human_and_leaves_nothing(
    dtn: Path, cfs: Path, mover: LocalMover
) -> None:
    record = recorded("2026/scan.h5", b"the bytes acquired")
    put(dtn, "2026/scan.h5", b"the bytes corrupted")

    status = run(mover, "copy", [file_item(record)])

    assert status.state == "failed"
    (result,) = status.results
    assert not result.ok and result.evidence is None
    assert result.error_class is ErrorClass.NEEDS_HUMAN
    assert result.error is not None
    assert "source bytes differ from the acquisition checksum" in result.error
    assert status.error_class is ErrorClass.NEEDS_HUMAN
    assert not (cfs / "2026/scan.h5").exists()
    assert temp_files(cfs) == []


def test_disk_full_fails_transient_naming_scan_and_path_and_leaves_no_temp(
    dtn: Path, cfs: Path, mover: LocalMover, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"x" * 10_000
    put(dtn, "2026/scan.h5", data)

    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    status = run(mover, "copy", [file_item(recorded("2026/scan.h5", data))])

    (result,) = status.results
    assert not result.ok
    assert result.error_class is ErrorClass.TRANSIENT
    assert result.error is not None
    assert "no space left on cfs" in result.error and "'2026/scan.h5'" in result.error
    assert not (cfs / "2026/scan.h5").exists()
    assert temp_files(cfs) == []


def test_missing_source_fails_transient(dtn: Path, mover: LocalMover) -> None:
    status = run(mover, "copy", [file_item(recorded("2026/gone.h5", b"x"))])
    (result,) = status.results
    assert not result.ok and result.error_class is ErrorClass.TRANSIENT
    assert result.error is not None and "No such file" in result.error


def test_copy_into_an_unmounted_root_fails_without_creating_it(dtn: Path, tmp_path: Path) -> None:
    put(dtn, "scan.h5", b"x")
    unmounted = tmp_path / "mnt" / "cfs"
    mover = LocalMover({"dtn": dtn, "cfs": unmounted})
    try:
        status = run(mover, "copy", [file_item(recorded("scan.h5", b"x"))])
    finally:
        mover.close()

    (result,) = status.results
    assert not result.ok and result.error_class is ErrorClass.TRANSIENT
    assert result.error is not None and "missing (unmounted?)" in result.error
    assert not unmounted.exists()


def test_one_failed_item_does_not_stop_the_others(dtn: Path, cfs: Path, mover: LocalMover) -> None:
    put(dtn, "ok.h5", b"fine")
    put(dtn, "bad.h5", b"changed")
    items = [
        file_item(recorded("bad.h5", b"original"), "a-bad"),
        file_item(recorded("ok.h5", b"fine"), "a-ok"),
    ]

    status = run(mover, "copy", items)

    assert [(r.action_id, r.ok) for r in status.results] == [("a-bad", False), ("a-ok", True)]
    assert status.state == "failed"
    assert status.error is not None and status.error.startswith("1 of 2 item(s) failed")
    assert (cfs / "ok.h5").read_bytes() == b"fine"


def test_odd_names_round_trip_through_list_copy_and_delete(
    dtn: Path, cfs: Path, mover: LocalMover
) -> None:
    for i, name in enumerate(ODD_NAMES):
        put(dtn, name, bytes([i]) * 100)

    listed = LocalStorage("dtn", dtn).list_scans(FILES)
    assert sorted(listed) == sorted(ODD_NAMES)
    records = [recorded(name, bytes([i]) * 100) for i, name in enumerate(ODD_NAMES)]
    copied = run(mover, "copy", [file_item(r, f"a{i}") for i, r in enumerate(records)])

    assert copied.state == "succeeded"
    assert sorted(LocalStorage("cfs", cfs).list_scans(FILES)) == sorted(ODD_NAMES)
    assert (cfs / os.fsdecode(b"2026/scan_\xff\xfe.h5")).read_bytes() == bytes([0]) * 100
    assert os.path.exists(os.fsencode(cfs) + b"/2026/scan_\xff\xfe.h5")

    deleted = run(mover, "delete", [file_item(r, f"d{i}") for i, r in enumerate(records)])
    assert deleted.state == "succeeded"
    assert LocalStorage("cfs", cfs).list_scans(FILES) == {}


def test_submit_is_idempotent_on_the_submission_id(
    dtn: Path, mover: LocalMover, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(dtn, "scan.h5", b"once")
    placed: list[str] = []
    real_place = local_mover.place_file

    def counting_place(*args: Any, **kwargs: Any) -> Any:
        placed.append(args[2].path)
        return real_place(*args, **kwargs)

    monkeypatch.setattr(local_mover, "place_file", counting_place)
    request = TaskRequest(
        "copy", "dtn", "cfs", (file_item(recorded("scan.h5", b"once")),), "sub-1", "test"
    )
    task_ids = {mover.submit(request) for _ in range(3)}

    assert len(task_ids) == 1
    (task_id,) = task_ids
    assert mover.wait(task_id, timeout=30).state == "succeeded"
    assert mover.submit(request) == task_id  # still the same task after it finished
    assert placed == ["scan.h5"]
    other = mover.submit(
        TaskRequest("copy", "dtn", "cfs", request.items, mover.new_submission_id(), "test")
    )
    assert other != task_id


def test_unknown_task_polls_as_lost(mover: LocalMover) -> None:
    status = mover.poll("local-from-before-a-restart")
    assert status.state == "lost" and status.finished
    assert status.error is not None


def test_unknown_endpoint_is_refused_at_submit(mover: LocalMover) -> None:
    request = TaskRequest("copy", "dtn", "hpss", (), mover.new_submission_id(), "test")
    with pytest.raises(TerminalError, match="'hpss'"):
        mover.submit(request)


def test_cancel_stops_between_files(
    dtn: Path, cfs: Path, mover: LocalMover, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(dtn, "first.h5", b"1")
    put(dtn, "second.h5", b"2")
    entered, release = threading.Event(), threading.Event()
    real_place = local_mover.place_file

    def blocking_place(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(timeout=30)
        return real_place(*args, **kwargs)

    monkeypatch.setattr(local_mover, "place_file", blocking_place)
    items = (
        file_item(recorded("first.h5", b"1"), "a1"),
        file_item(recorded("second.h5", b"2"), "a2"),
    )
    task_id = mover.submit(TaskRequest("copy", "dtn", "cfs", items, "sub-c", "test"))
    assert entered.wait(timeout=30)  # the first file is being copied
    mover.cancel(task_id)
    release.set()
    status = mover.wait(task_id, timeout=30)

    assert status.state == "failed"
    assert [r.ok for r in status.results] == [True, False]
    assert status.results[1].error == "cancelled before this scan finished"
    assert not (cfs / "second.h5").exists()


def test_a_passed_deadline_fails_items_transient(dtn: Path, mover: LocalMover) -> None:
    put(dtn, "scan.h5", b"x")
    status = run(
        mover, "copy", [file_item(recorded("scan.h5", b"x"))], deadline=NOW - timedelta(seconds=1)
    )
    (result,) = status.results
    assert not result.ok and result.error_class is ErrorClass.TRANSIENT
    assert result.error is not None and "deadline" in result.error


# ---- LocalMover: deletes --------------------------------------------------------------------


def test_delete_removes_the_manifest_files_and_ignores_missing_ones(
    cfs: Path, mover: LocalMover
) -> None:
    put(cfs, "2026/scan_a/frame_1.tif", b"1")
    put(cfs, "2026/scan_a/sub/frame_2.tif", b"2")
    put(cfs, "2026/scan_b/frame_1.tif", b"keep")
    manifest = (
        recorded("2026/scan_a/frame_1.tif", b"1"),
        recorded("2026/scan_a/sub/frame_2.tif", b"2"),
        recorded("2026/scan_a/sub/deeper/gone.tif", b"3"),
    )
    items = [
        TransferItem("d1", "2026/scan_a", manifest, "md5", True),
        TransferItem("d2", "2026/scan_gone", (), "md5", recursive=True),
        file_item(recorded("2026/never_there.h5", b""), "d3"),
    ]

    status = run(mover, "delete", items)

    assert status.state == "succeeded"
    results = {r.action_id: r for r in status.results}
    assert all(r.ok for r in results.values())
    assert not (cfs / "2026/scan_a").exists(), "the emptied scan folders stay"
    assert results["d1"].removed == ("2026/scan_a/frame_1.tif", "2026/scan_a/sub/frame_2.tif")
    assert results["d1"].already_absent == ("2026/scan_a/sub/deeper/gone.tif",)
    assert results["d1"].left_behind == ()
    assert results["d3"].removed == () and results["d3"].already_absent == ("2026/never_there.h5",)
    assert (cfs / "2026/scan_b/frame_1.tif").read_bytes() == b"keep"


def test_delete_leaves_every_file_outside_the_manifest_and_names_it(
    cfs: Path, mover: LocalMover
) -> None:
    put(cfs, "2026/scan_a/frame_1.tif", b"1")
    put(cfs, "2026/scan_a/sub/frame_2.tif", b"2")
    put(cfs, "2026/scan_a/.operator notes.txt", b"notes")
    put(cfs, "2026/scan_a/sub/analysis.h5", b"user")
    (cfs / "2026/scan_a/empty by user").mkdir()
    manifest = (
        recorded("2026/scan_a/frame_1.tif", b"1"),
        recorded("2026/scan_a/sub/frame_2.tif", b"2"),
    )

    (result,) = run(
        mover, "delete", [TransferItem("d1", "2026/scan_a", manifest, "md5", True)]
    ).results

    assert result.ok and result.removed == tuple(f.path for f in manifest)
    assert result.left_behind == (
        "2026/scan_a/.operator notes.txt",
        "2026/scan_a/empty by user/",
        "2026/scan_a/sub/analysis.h5",
    )
    assert sorted(p.relative_to(cfs).as_posix() for p in cfs.rglob("*") if p.is_file()) == [
        "2026/scan_a/.operator notes.txt",
        "2026/scan_a/sub/analysis.h5",
    ]


def test_delete_refuses_a_manifest_file_that_changed_and_deletes_nothing(
    cfs: Path, mover: LocalMover
) -> None:
    put(cfs, "2026/scan_a/frame_1.tif", b"1")
    put(cfs, "2026/scan_a/frame_2.tif", b"2 and more")
    manifest = (
        recorded("2026/scan_a/frame_1.tif", b"1"),
        recorded("2026/scan_a/frame_2.tif", b"2"),
    )

    (result,) = run(
        mover, "delete", [TransferItem("d1", "2026/scan_a", manifest, "md5", True)]
    ).results

    assert not result.ok and result.error_class is ErrorClass.NEEDS_HUMAN
    assert "changed since it was verified" in (result.error or "")
    assert (cfs / "2026/scan_a/frame_1.tif").exists() and (cfs / "2026/scan_a/frame_2.tif").exists()


def test_delete_on_an_unmounted_root_fails_instead_of_reporting_success(tmp_path: Path) -> None:
    mover = LocalMover({"cfs": tmp_path / "not-mounted"})
    try:
        status = run(mover, "delete", [file_item(recorded("scan.h5", b"x"))])
    finally:
        mover.close()

    (result,) = status.results
    assert not result.ok and result.error_class is ErrorClass.TRANSIENT


def test_delete_never_touches_anything_outside_the_root(
    cfs: Path, tmp_path: Path, mover: LocalMover
) -> None:
    victim = put(tmp_path, "victim.h5", b"precious")
    (cfs / "2026").symlink_to(tmp_path, target_is_directory=True)
    items = [
        file_item(ScanFile("../victim.h5", 8, ACQUIRED, "0" * 32), "d1"),
        file_item(ScanFile("2026/victim.h5", 8, ACQUIRED, "0" * 32), "d2"),
    ]

    status = run(mover, "delete", items)

    assert [r.error_class for r in status.results] == [ErrorClass.TERMINAL] * 2
    assert victim.read_bytes() == b"precious"


def test_sweep_removes_only_stale_engine_temp_files(cfs: Path) -> None:
    stale = put(cfs, f"2026/{ENGINE_TEMP_PREFIX}abc.tmp", b"partial")
    keep = put(cfs, "2026/scan.tmp", b"someone else's")
    scan = put(cfs, "2026/scan.h5", b"data")

    assert sweep_temp_files(cfs, older_than_seconds=3600, now=time.time()) == 0
    assert stale.exists()
    assert sweep_temp_files(cfs, older_than_seconds=3600, now=time.time() + 7200) == 1
    assert not stale.exists()
    assert keep.exists() and scan.exists()


def test_progress_is_reported_per_scan_from_the_files_done(
    dtn: Path, cfs: Path, mover: LocalMover, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's totals say nothing about any one scan: the mover counts each scan's files and
    bytes as they are placed (the TUI shows each scan's own share, not the batch's)."""
    put(dtn, "a.h5", b"a" * 300)
    put(dtn, "b.h5", b"b" * 500)
    reached, release = threading.Event(), threading.Event()
    place = local_mover.place_file

    def slow_on_b(source: Path, *args: Any, **kwargs: Any) -> Any:
        if source.name == "b.h5":
            reached.set()
            release.wait(30)
        return place(source, *args, **kwargs)

    monkeypatch.setattr(local_mover, "place_file", slow_on_b)
    items = (
        file_item(recorded("a.h5", b"a" * 300), "a-a"),
        file_item(recorded("b.h5", b"b" * 500), "a-b"),
    )
    task_id = mover.submit(
        TaskRequest("copy", "dtn", "cfs", items, mover.new_submission_id(), "test")
    )
    assert reached.wait(30)
    running = mover.poll(task_id)
    assert running.state == "active"
    assert {(p.action_id, p.files_done, p.bytes_done) for p in running.item_progress} == {
        ("a-a", 1, 300),
        ("a-b", 0, 0),
    }
    release.set()
    done = mover.wait(task_id, timeout=30)
    assert {(p.action_id, p.files_done, p.bytes_done) for p in done.item_progress} == {
        ("a-a", 1, 300),
        ("a-b", 1, 500),
    }

"""`ScanWatcher` over real watchdog observers on a temporary directory (nothing mocked)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.errors import EndpointUnavailable
from engine.inventory import watcher as watcher_module
from engine.inventory.walk import walk_inventory
from engine.layout import ScanLayout
from engine.storage.local import LocalStorage
from tests.inventory.watcher_helpers import make_watcher, wait_until


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "dtn"
    path.mkdir()
    return path


def write_chunks(path: Path, chunks: int, gap: float, *, reopen: bool, check: Any) -> float:
    """Write `chunks` pieces `gap` seconds apart, calling `check()` after each piece.

    Returns the monotonic time of the last write (or of the close, for one open handle).
    """
    if reopen:
        for n in range(chunks):
            with path.open("ab") as f:
                f.write(b"x" * 4096)
            last = time.monotonic()
            check()
            if n < chunks - 1:
                time.sleep(gap)
        return last
    with path.open("wb") as f:
        for _ in range(chunks):
            f.write(b"x" * 4096)
            f.flush()
            check()
            time.sleep(gap)
    return time.monotonic()


def test_chunked_file_is_not_complete_while_open(root: Path) -> None:
    with make_watcher(root, quiet_seconds=1.0) as w:
        target = root / "scan_0001.h5"

        def not_complete() -> None:
            assert "scan_0001.h5" not in w.completed()

        write_chunks(target, chunks=6, gap=0.5, reopen=False, check=not_complete)  # 3 s > quiet
        assert wait_until(lambda: "scan_0001.h5" in w.completed())
        assert w.completions()["scan_0001.h5"].rule.value == "close"


def test_file_reopened_per_chunk_is_not_complete_until_quiet(root: Path) -> None:
    quiet = 1.5
    with make_watcher(root, quiet_seconds=quiet, check_seconds=0.5) as w:
        target = root / "scan_0002.h5"

        def not_complete() -> None:
            assert "scan_0002.h5" not in w.completed()

        last_write = write_chunks(target, chunks=12, gap=0.2, reopen=True, check=not_complete)
        assert wait_until(lambda: "scan_0002.h5" in w.completed())
        assert time.monotonic() - last_write >= quiet - 0.25
        assert w.completions()["scan_0002.h5"].rule.value == "quiet"


def test_polling_observer_completes_by_quiescence(root: Path) -> None:
    quiet = 1.5
    with make_watcher(root, quiet_seconds=quiet, watch="poll", poll_seconds=0.3) as w:
        assert w.stats().observer == "poll"
        target = root / "scan_0003.h5"

        def not_complete() -> None:
            assert "scan_0003.h5" not in w.completed()

        last_write = write_chunks(target, chunks=8, gap=0.3, reopen=True, check=not_complete)
        assert wait_until(lambda: "scan_0003.h5" in w.completed())
        assert time.monotonic() - last_write >= quiet - 0.3  # one poll of slack
        assert w.completions()["scan_0003.h5"].rule.value == "quiet"


def test_marker_completes_a_directory_scan_at_once(root: Path) -> None:
    with make_watcher(root, scan="directory", quiet_seconds=60, done_marker="*.done") as w:
        scan = root / "scan_0004"
        scan.mkdir()
        for n in range(3):
            (scan / f"frame_{n}.tif").write_bytes(b"f" * 100)
        assert not wait_until(lambda: "scan_0004" in w.completed(), timeout=1.0)
        started = time.monotonic()
        (scan / "scan_0004.done").write_bytes(b"")
        assert wait_until(lambda: "scan_0004" in w.completed(), timeout=5)
        assert time.monotonic() - started < 5  # not 60 s of quiet
        assert w.completions()["scan_0004"].rule.value == "marker"


def test_directory_scan_completes_only_when_every_file_is_quiet(root: Path) -> None:
    quiet = 1.5
    with make_watcher(root, scan="directory", quiet_seconds=quiet, check_seconds=0.25) as w:
        scan = root / "scan_0005"
        scan.mkdir()
        (scan / "frame_0.tif").write_bytes(b"done")  # closed, quiet from now on
        (scan / "frame_1.tif").write_bytes(b"done")

        def not_complete() -> None:
            assert "scan_0005" not in w.completed()

        master = scan / "master.h5"
        last_write = write_chunks(master, chunks=10, gap=0.3, reopen=True, check=not_complete)
        assert wait_until(lambda: "scan_0005" in w.completed())
        assert time.monotonic() - last_write >= quiet - 0.25


def test_rename_into_place_completes_and_temporaries_are_ignored(root: Path) -> None:
    with make_watcher(root, quiet_seconds=60) as w:
        temp = root / ".scan_0006.h5.part"
        temp.write_bytes(b"payload")
        (root / "notes.tmp").write_bytes(b"scratch")
        os.replace(temp, root / "scan_0006.h5")
        assert wait_until(lambda: "scan_0006.h5" in w.completed(), timeout=5)
        assert w.completions()["scan_0006.h5"].rule.value == "rename"
        assert set(w.completed()) | set(w.pending()) == {"scan_0006.h5"}


def test_growth_after_completion_reopens_with_a_new_signature(root: Path) -> None:
    with make_watcher(root, quiet_seconds=1.0) as w:
        target = root / "scan_0007.h5"
        target.write_bytes(b"v1")
        assert wait_until(lambda: "scan_0007.h5" in w.completed())
        first = w.completed()["scan_0007.h5"]
        with target.open("ab") as f:
            f.write(b" and more")
        assert wait_until(lambda: w.completed().get("scan_0007.h5") not in (None, first))
        assert w.stats().reopened >= 1


def test_burst_of_2000_files_created_with_their_folders(root: Path) -> None:
    """Files written the instant their folder appears: watcher and walk together miss none."""
    quiet = 1.0
    with make_watcher(root, quiet_seconds=quiet, rescan_minutes=0.05) as w:
        expected = set()
        for d in range(40):
            folder = root / "2026" / f"11{d:02d}"
            folder.mkdir(parents=True)
            for n in range(50):
                name = folder / f"scan_{n:04d}.h5"
                name.write_bytes(b"%d" % n)
                expected.add(name.relative_to(root).as_posix())
        assert wait_until(lambda: expected <= set(w.completed()), timeout=60)
        stats = w.stats()
        assert stats.completed >= 2000
    layout = ScanLayout()
    result = walk_inventory(
        LocalStorage("dtn", root),
        layout,
        algorithm="md5",
        quiet_seconds=3600,  # only the watcher's declarations can make these complete now
        now=datetime.now(UTC),
        known={},
        declared_complete=w.completed(),
    )
    assert set(result.scans) == expected
    assert result.incomplete == ()


def test_scans_missed_by_events_are_found_counted_and_completed(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drop the events of some files (as a kernel queue overflow would): the walk finds them."""
    real = watcher_module.ScanWatcher._on_event

    def lossy(self: watcher_module.ScanWatcher, event: object) -> None:
        if "lost" not in os.fsdecode(getattr(event, "src_path", "")):
            real(self, event)  # type: ignore[arg-type]

    monkeypatch.setattr(watcher_module.ScanWatcher, "_on_event", lossy)
    with make_watcher(root, quiet_seconds=0.5, rescan_minutes=0.02) as w:  # walk every 1.2 s
        (root / "seen.h5").write_bytes(b"a")
        lost = root / "lost.h5"
        lost.write_bytes(b"b")
        old = time.time() - 60  # older than the walk's grace for events still in flight
        os.utime(lost, (old, old))
        assert wait_until(lambda: {"seen.h5", "lost.h5"} <= set(w.completed()), timeout=20)
        assert w.stats().missed_by_events == 1
        assert w.stats().walks >= 2


def test_existing_tree_is_a_baseline_not_missed(root: Path) -> None:
    old = time.time() - 3600
    for n in range(5):
        path = root / f"old_{n}.h5"
        path.write_bytes(b"x")
        os.utime(path, (old, old))
    with make_watcher(root, quiet_seconds=0.5, rescan_minutes=0.02) as w:
        assert wait_until(lambda: w.stats().walks >= 2)
        assert w.stats().missed_by_events == 0
        assert w.completed() == {}  # known; the walk's own rule covers them


def test_odd_names_zero_bytes_and_vanishing_files_never_crash(root: Path) -> None:
    with make_watcher(root, quiet_seconds=0.5, check_seconds=0.1) as w:
        (root / "with space.h5").write_bytes(b"a")
        (root / "with\nnewline.h5").write_bytes(b"b")
        (root / "empty.h5").write_bytes(b"")
        raw = os.path.join(os.fsencode(root), b"latin1-\xe9.h5")
        with open(raw, "wb") as f:
            f.write(b"c")
        for n in range(20):  # appear and vanish between event and stat
            flash = root / f"flash_{n}.h5"
            flash.write_bytes(b"x")
            flash.unlink()
        weird = os.fsdecode(b"latin1-\xe9.h5")
        wanted = {"with space.h5", "with\nnewline.h5", "empty.h5", weird}
        assert wait_until(lambda: wanted <= set(w.completed()))
        assert not any(s.startswith("flash_") for s in w.completed())
        assert wait_until(lambda: not any(s.startswith("flash_") for s in w.pending()))


def test_symlinks_are_not_followed_out_of_the_root(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.h5").write_bytes(b"not ours")
    with make_watcher(root, quiet_seconds=0.5, check_seconds=0.1) as w:
        os.symlink(outside / "secret.h5", root / "link.h5")
        os.symlink(outside, root / "linked_dir")
        (outside / "later.h5").write_bytes(b"written outside after linking")
        (root / "real.h5").write_bytes(b"ours")
        assert wait_until(lambda: "real.h5" in w.completed())
        assert wait_until(lambda: not w.pending(), timeout=5)
        assert set(w.completed()) == {"real.h5"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_permission_denied_is_reported_and_retried(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with make_watcher(root, scan="directory", quiet_seconds=0.5, check_seconds=0.1) as w:
        scan = root / "scan_0008"
        inner = scan / "frames"
        inner.mkdir(parents=True)
        (inner / "frame.tif").write_bytes(b"x")
        inner.chmod(0)
        try:
            assert wait_until(lambda: w.stats().stat_failures >= 2)
            assert "scan_0008" not in w.completed()
            assert "cannot stat 'scan_0008'" in caplog.text
        finally:
            inner.chmod(0o755)
        assert wait_until(lambda: "scan_0008" in w.completed(), timeout=20)


def test_watcher_survives_its_root_being_replaced(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The root vanishes (an unmount) and comes back: the observer restarts and a walk runs."""
    with make_watcher(root, quiet_seconds=0.5, rescan_minutes=10) as w:
        (root / "a.h5").write_bytes(b"a")
        assert wait_until(lambda: "a.h5" in w.completed())
        os.unlink(root / "a.h5")
        os.rmdir(root)
        root.mkdir()
        monkeypatch.setattr(watcher_module, "_RESTART_SECONDS", 0.5)  # a quick retry
        assert wait_until(lambda: w.stats().walks >= 2, timeout=30)
        (root / "b.h5").write_bytes(b"b")
        assert wait_until(lambda: "b.h5" in w.completed(), timeout=30)


def test_a_failing_stat_is_reported_retried_and_recovers(
    root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The same path as permission denied, for runs as root (where chmod cannot deny)."""
    real = LocalStorage.stat_scan
    failures = {"left": 3}

    def flaky(self: LocalStorage, layout: ScanLayout, scan: str) -> Any:
        if scan == "locked.h5" and failures["left"] > 0:
            failures["left"] -= 1
            raise EndpointUnavailable(self.name, f"cannot stat {scan!r}: Permission denied")
        return real(self, layout, scan)

    monkeypatch.setattr(LocalStorage, "stat_scan", flaky)
    with make_watcher(root, quiet_seconds=0.3, check_seconds=0.05) as w:
        (root / "locked.h5").write_bytes(b"x")
        (root / "fine.h5").write_bytes(b"y")
        assert wait_until(lambda: {"locked.h5", "fine.h5"} <= set(w.completed()), timeout=20)
        assert w.stats().stat_failures == 3
        reports = [r for r in caplog.records if "will retry" in r.getMessage()]
        assert len(reports) == 1  # reported once, not at every retry

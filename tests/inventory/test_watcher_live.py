"""`ScanWatcher` over real watchdog observers on a temporary directory (nothing mocked).

The observers are real; the watcher's clock is a `FakeClock` and its checker turns are run by
the test (`watcher_helpers.stepped`), so quiet periods, stat spacing and walks are decided by
fake time alone and the only real waits are for events to arrive.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from engine.errors import EndpointUnavailable
from engine.inventory import watcher as watcher_module
from engine.inventory.walk import walk_inventory
from engine.layout import ScanLayout
from engine.storage.local import LocalStorage
from tests.inventory.watcher_helpers import (
    Stepper,
    fake_clock,
    make_watcher,
    stepped,
)
from tests.waiting import wait_for


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "dtn"
    path.mkdir()
    return path


def write_chunks(
    s: Stepper, path: Path, chunks: int, gap: float, *, reopen: bool, check: Any
) -> float:
    """Write `chunks` pieces `gap` fake seconds apart, calling `check()` after each piece.

    After each piece the watcher has handled its events (`sync`) and runs for `gap` seconds of
    fake time. Returns the fake monotonic time of the last write (or of the close, for one open
    handle).
    """
    if reopen:
        last = s.now()
        for n in range(chunks):
            with path.open("ab") as f:
                f.write(b"x" * 4096)
            s.sync()
            last = s.now()
            s.step()
            check()
            if n < chunks - 1:
                s.run(gap)
                check()
        return last
    with path.open("wb") as f:
        for _ in range(chunks):
            f.write(b"x" * 4096)
            f.flush()
            s.sync()
            s.step()
            check()
            s.run(gap)
            check()
    s.sync()
    return s.now()


def test_chunked_file_is_not_complete_while_open(root: Path) -> None:
    with stepped(root, quiet_seconds=1.0) as s:
        w = s.w
        target = root / "scan_0001.h5"

        def not_complete() -> None:
            assert "scan_0001.h5" not in w.completed()

        write_chunks(s, target, chunks=6, gap=0.5, reopen=False, check=not_complete)  # 3 s > quiet
        assert s.run_until(lambda: "scan_0001.h5" in w.completed(), limit=10)
        assert w.completions()["scan_0001.h5"].rule.value == "close"


def test_file_reopened_per_chunk_is_not_complete_until_quiet(root: Path) -> None:
    quiet = 1.5
    with stepped(root, quiet_seconds=quiet, check_seconds=0.5) as s:
        w = s.w
        target = root / "scan_0002.h5"

        def not_complete() -> None:
            assert "scan_0002.h5" not in w.completed()

        last_write = write_chunks(s, target, chunks=12, gap=0.2, reopen=True, check=not_complete)
        assert s.run_until(lambda: "scan_0002.h5" in w.completed(), limit=10)
        done = w.completions()["scan_0002.h5"]
        assert done.at - last_write >= quiet
        assert done.rule.value == "quiet"


def test_polling_observer_completes_by_quiescence(root: Path) -> None:
    quiet = 1.5
    with stepped(root, quiet_seconds=quiet, watch="poll", poll_seconds=0.3) as s:
        w = s.w
        assert w.stats().observer == "poll"
        target = root / "scan_0003.h5"

        def not_complete() -> None:
            assert "scan_0003.h5" not in w.completed()

        last_write = write_chunks(s, target, chunks=8, gap=0.3, reopen=True, check=not_complete)
        assert s.run_until(lambda: "scan_0003.h5" in w.completed(), limit=10)
        done = w.completions()["scan_0003.h5"]
        assert done.at - last_write >= quiet
        assert done.rule.value == "quiet"


def test_marker_completes_a_directory_scan_at_once(root: Path) -> None:
    with stepped(root, scan="directory", quiet_seconds=60, done_marker="*.done") as s:
        w = s.w
        scan = root / "scan_0004"
        scan.mkdir()
        for n in range(3):
            (scan / f"frame_{n}.tif").write_bytes(b"f" * 100)
        s.sync()
        s.run(30)  # half the quiet time: no marker, not complete
        assert "scan_0004" not in w.completed()
        assert "scan_0004" in w.pending()
        (scan / "scan_0004.done").write_bytes(b"")
        s.sync()
        started = s.now()
        assert s.step() == ["scan_0004"]  # the next turn, with no time passing
        assert w.completions()["scan_0004"].at == started  # not 60 s of quiet
        assert w.completions()["scan_0004"].rule.value == "marker"


def test_directory_scan_completes_only_when_every_file_is_quiet(root: Path) -> None:
    quiet = 1.5
    with stepped(root, scan="directory", quiet_seconds=quiet, check_seconds=0.25) as s:
        w = s.w
        scan = root / "scan_0005"
        scan.mkdir()
        (scan / "frame_0.tif").write_bytes(b"done")  # closed, quiet from now on
        (scan / "frame_1.tif").write_bytes(b"done")

        def not_complete() -> None:
            assert "scan_0005" not in w.completed()

        master = scan / "master.h5"
        last_write = write_chunks(s, master, chunks=10, gap=0.3, reopen=True, check=not_complete)
        assert s.run_until(lambda: "scan_0005" in w.completed(), limit=10)
        assert w.completions()["scan_0005"].at - last_write >= quiet


def test_rename_into_place_completes_and_temporaries_are_ignored(root: Path) -> None:
    with stepped(root, quiet_seconds=60) as s:
        w = s.w
        temp = root / ".scan_0006.h5.part"
        temp.write_bytes(b"payload")
        (root / "notes.tmp").write_bytes(b"scratch")
        os.replace(temp, root / "scan_0006.h5")
        s.sync()
        assert s.step() == ["scan_0006.h5"]  # no time passes: a rename is a whole arrival
        assert w.completions()["scan_0006.h5"].rule.value == "rename"
        assert set(w.completed()) | set(w.pending()) == {"scan_0006.h5"}


def test_growth_after_completion_reopens_with_a_new_signature(root: Path) -> None:
    with stepped(root, quiet_seconds=1.0) as s:
        w = s.w
        target = root / "scan_0007.h5"
        target.write_bytes(b"v1")
        s.sync()
        assert s.run_until(lambda: "scan_0007.h5" in w.completed(), limit=10)
        first = w.completed()["scan_0007.h5"]
        with target.open("ab") as f:
            f.write(b" and more")
        s.sync()
        assert "scan_0007.h5" not in w.completed()  # reopened by the write's events
        assert s.run_until(lambda: w.completed().get("scan_0007.h5") not in (None, first), limit=10)
        assert w.stats().reopened >= 1


def test_burst_of_2000_files_created_with_their_folders(root: Path) -> None:
    """Files written the instant their folder appears: watcher and walk together miss none."""
    quiet = 1.0
    with stepped(root, quiet_seconds=quiet, rescan_minutes=0.05) as s:
        w = s.w
        expected = set()
        for d in range(40):
            folder = root / "2026" / f"11{d:02d}"
            folder.mkdir(parents=True)
            for n in range(50):
                name = folder / f"scan_{n:04d}.h5"
                name.write_bytes(b"%d" % n)
                expected.add(name.relative_to(root).as_posix())
        s.sync()
        # Walks every 3 s of fake time: a file whose event was lost is found once it is older
        # than the walk's grace, which the bound leaves ample room for.
        assert s.run_until(lambda: expected <= set(w.completed()), limit=600, every=0.25)
        stats = w.stats()
        assert stats.completed >= 2000
    layout = ScanLayout()
    result = walk_inventory(
        LocalStorage("dtn", root),
        layout,
        algorithm="md5",
        quiet_seconds=3600,  # only the watcher's declarations can make these complete now
        now=s.clock.now(),
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
    with stepped(root, quiet_seconds=0.5, rescan_minutes=0.02) as s:  # walk every 1.2 s
        w = s.w
        (root / "seen.h5").write_bytes(b"a")
        lost = root / "lost.h5"
        lost.write_bytes(b"b")
        old = s.clock.now().timestamp() - 60  # older than the walk's grace for events in flight
        os.utime(lost, (old, old))
        s.sync()
        assert s.w.pending() == {"seen.h5"}  # the lost file's events never reached the tracker
        s.run(1.0)  # before the first walk after start-up
        assert "lost.h5" not in w.completed() and w.stats().missed_by_events == 0
        assert s.run_until(lambda: {"seen.h5", "lost.h5"} <= set(w.completed()), limit=20)
        assert w.stats().missed_by_events == 1
        assert w.stats().walks >= 2


def test_existing_tree_is_a_baseline_not_missed(root: Path) -> None:
    clock = fake_clock()
    old = clock.now().timestamp() - 3600
    for n in range(5):
        path = root / f"old_{n}.h5"
        path.write_bytes(b"x")
        os.utime(path, (old, old))
    w = make_watcher(root, clock=clock, quiet_seconds=0.5, rescan_minutes=0.02)
    with w.start(checker=False):
        s = Stepper(w, clock, root)
        assert s.run_until(lambda: w.stats().walks >= 2, limit=10)
        assert w.stats().missed_by_events == 0
        assert w.completed() == {}  # known; the walk's own rule covers them


def test_odd_names_zero_bytes_and_vanishing_files_never_crash(root: Path) -> None:
    with stepped(root, quiet_seconds=0.5, check_seconds=0.1) as s:
        w = s.w
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
        s.sync()
        weird = os.fsdecode(b"latin1-\xe9.h5")
        wanted = {"with space.h5", "with\nnewline.h5", "empty.h5", weird}
        assert s.run_until(lambda: wanted <= set(w.completed()), limit=10)
        assert not any(x.startswith("flash_") for x in w.completed())
        assert not any(x.startswith("flash_") for x in w.pending())


def test_symlinks_are_not_followed_out_of_the_root(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.h5").write_bytes(b"not ours")
    with stepped(root, quiet_seconds=0.5, check_seconds=0.1) as s:
        w = s.w
        os.symlink(outside / "secret.h5", root / "link.h5")
        os.symlink(outside, root / "linked_dir")
        (outside / "later.h5").write_bytes(b"written outside after linking")
        (root / "real.h5").write_bytes(b"ours")
        s.sync()
        assert s.run_until(lambda: "real.h5" in w.completed() and not w.pending(), limit=10)
        assert set(w.completed()) == {"real.h5"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_permission_denied_is_reported_and_retried(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with stepped(root, scan="directory", quiet_seconds=0.5, check_seconds=0.1) as s:
        w = s.w
        scan = root / "scan_0008"
        inner = scan / "frames"
        inner.mkdir(parents=True)
        (inner / "frame.tif").write_bytes(b"x")
        inner.chmod(0)
        try:
            s.sync()
            assert s.run_until(lambda: w.stats().stat_failures >= 2, limit=10)
            assert "scan_0008" not in w.completed()
            assert "cannot stat 'scan_0008'" in caplog.text
        finally:
            inner.chmod(0o755)
        s.sync()
        assert s.run_until(lambda: "scan_0008" in w.completed(), limit=120)


def test_watcher_survives_its_root_being_replaced(root: Path) -> None:
    """The root vanishes (an unmount) and comes back: the observer restarts and a walk runs."""
    with stepped(root, quiet_seconds=0.5, rescan_minutes=10) as s:
        w = s.w
        (root / "a.h5").write_bytes(b"a")
        s.sync()
        assert s.run_until(lambda: "a.h5" in w.completed(), limit=10)
        os.unlink(root / "a.h5")
        os.rmdir(root)
        root.mkdir()
        # The one real wait: for the observer to notice that its root went away (an inotify
        # event). Each poll turns the checker once, a second of fake time apart, so a restart
        # that failed is retried when its fake retry time comes; walks are due only in 10 min.
        wait_for(lambda: bool(s.step(1.0)) or w.stats().walks >= 2, timeout=60, what="a walk")
        assert w.stats().walks == 2
        (root / "b.h5").write_bytes(b"b")
        s.sync()
        assert s.run_until(lambda: "b.h5" in w.completed(), limit=10)


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
    with stepped(root, quiet_seconds=0.3, check_seconds=0.05) as s:
        w = s.w
        (root / "locked.h5").write_bytes(b"x")
        (root / "fine.h5").write_bytes(b"y")
        s.sync()
        assert s.run_until(lambda: {"locked.h5", "fine.h5"} <= set(w.completed()), limit=20)
        assert w.stats().stat_failures == 3
        reports = [r for r in caplog.records if "will retry" in r.getMessage()]
        assert len(reports) == 1  # reported once, not at every retry


def test_checker_thread_completes_a_renamed_scan_and_calls_on_complete(root: Path) -> None:
    """The watcher as the service runs it: its own checker thread, woken by the event.

    A rename into place completes on the first stat with no time passing, so the only wait is
    for the event to arrive and the thread to act on it (positive, generous).
    """
    w = make_watcher(root, quiet_seconds=60)
    with w:  # start(): observer and checker thread
        assert any(t.name == "bl931-watcher" for t in threading.enumerate())
        temp = root / ".scan_0009.h5.part"
        temp.write_bytes(b"payload")
        os.replace(temp, root / "scan_0009.h5")
        wait_for(lambda: w.completion_log == ["scan_0009.h5"], timeout=60, what="completion")  # type: ignore[attr-defined]
        assert w.completions()["scan_0009.h5"].rule.value == "rename"
    assert not any(t.name == "bl931-watcher" for t in threading.enumerate())

"""The watcher feeding the real `Reconciler` and `ServiceLoop` on local endpoints.

The watcher runs on a `FakeClock` with its checker turned by the test (`start(checker=False)`,
`step()`): a scan renamed into place completes on the first turn after its event arrived with no
fake time passing, so waiting for that (a real event) is the only real wait.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.backends import build_backends
from engine.clock import FakeClock
from engine.inventory.watcher import ScanWatcher, watcher_for
from engine.model import ActionKind, Level
from engine.reconciler import Reconciler
from engine.service import ServiceLoop
from engine.state import StateStore
from engine.workspace import LocalWorkspace, create_workspace
from tests.inventory.watcher_helpers import fake_clock
from tests.waiting import wait_for

# In the watched root itself: a file renamed into a folder created the same instant may reach
# the watcher only as "created" (its folder's watch comes a moment late) and then completes by
# quiescence, which these tests with 30 s of quiet do not wait for.
SCAN = "scan_0001.h5"


@pytest.fixture
def ws(tmp_path: Path) -> LocalWorkspace:
    # quiet_seconds = 30: only the watcher can make a fresh scan complete within the test.
    return create_workspace(tmp_path / "ws", dtn_keep_days=0, quiet_seconds=30, watch="inotify")


def stepped_watcher(reconciler: Reconciler, **kwargs: object) -> ScanWatcher:
    watcher = watcher_for(
        reconciler.config,
        reconciler.backends,
        clock=fake_clock(),
        **kwargs,  # type: ignore[arg-type]
    )
    assert watcher is not None
    watcher.start(checker=False)
    watcher.step()  # the start-up walk, before the test writes anything
    return watcher


def turn_until_complete(watcher: ScanWatcher, scan: str, *, other_than: str | None = None) -> bool:
    """Turn the checker (no fake time passing) until `scan` completes with a signature other
    than `other_than`; the real wait is only for the rename's event to arrive."""
    return wait_for(
        lambda: bool(watcher.step()) and watcher.completed().get(scan) not in (None, other_than),
        timeout=60,
        what=f"{scan} to complete",
    )


def advance_until(watcher: ScanWatcher, predicate: Callable[[], bool]) -> bool:
    """Turn the checker a quarter second of fake time apart until `predicate` holds (the real
    wait is for the events to arrive; fake time decides when the scan is quiet)."""
    clock = watcher.clock
    assert isinstance(clock, FakeClock)

    def turn() -> bool:
        clock.advance(0.25)
        watcher.step()
        return predicate()

    return wait_for(turn, timeout=60, what="the watcher's events")


@pytest.fixture
def reconciler(ws: LocalWorkspace) -> Iterator[Reconciler]:
    config = ws.config()
    store = StateStore(config.state.path)
    backends = build_backends(config)
    try:
        yield Reconciler(config, store, backends)
    finally:
        backends.close()
        store.close()


def test_watcher_declared_scan_is_inventoried_before_quiet_seconds(
    ws: LocalWorkspace, reconciler: Reconciler
) -> None:
    with stepped_watcher(reconciler) as watcher:
        ws.write_scan(SCAN, b"frame data")  # temporary name, then a rename into place
        assert SCAN not in reconciler.observe(reconciler.clock()).scans  # 30 s of quiet not up
        reconciler.completion_hint = watcher.completed
        assert turn_until_complete(watcher, SCAN)
        assert SCAN in reconciler.observe(reconciler.clock()).scans


def test_rewritten_scan_gets_a_new_version_and_old_evidence_stops_counting(
    ws: LocalWorkspace, reconciler: Reconciler
) -> None:
    with stepped_watcher(reconciler) as watcher:
        reconciler.completion_hint = watcher.completed
        ws.write_scan(SCAN, b"version one")
        assert turn_until_complete(watcher, SCAN)
        reconciler.reconcile_once(drain=True)  # inventory v1, copy to cfs with evidence
        reconciler.reconcile_once(drain=True)  # register it in the catalog
        seen = reconciler.observe(reconciler.clock())
        v1 = seen.scans[SCAN]
        assert v1.version == 1
        assert seen.observations["cfs"].replicas[SCAN].level is Level.CHECKSUM
        plan = reconciler.make_plan(seen, reconciler.clock())
        assert any(a.kind is ActionKind.DELETE and a.scan == SCAN for a in plan.actions)

        first = watcher.completed()[SCAN]
        with (ws.dtn / SCAN).open("ab") as f:  # the scan grows after it was seen complete
            f.write(b" and a late frame")
        # Events of the append reopen the scan; it completes again by its close (1 s of fake
        # time) or by quiet (30 s): either way with the grown file's signature.
        assert advance_until(watcher, lambda: watcher.completed().get(SCAN) not in (None, first))

        seen = reconciler.observe(reconciler.clock())
        v2 = seen.scans[SCAN]
        assert (v2.version, v2.checksum != v1.checksum) == (2, True)
        cfs_copy = seen.observations["cfs"].replicas[SCAN]
        assert cfs_copy.level < Level.CHECKSUM  # the old checksum no longer verifies the copy
        plan = reconciler.make_plan(seen, reconciler.clock())
        assert not any(
            a.kind is ActionKind.DELETE and a.scan == SCAN and a.target == "dtn"
            for a in plan.actions
        )
        # The verified v1 copy at cfs is only replaced by v2 with an operator's approval (and
        # while v1 stays verified at hpss).
        (replace,) = [a for a in plan.actions if a.kind is ActionKind.COPY and a.scan == SCAN]
        assert replace.target == "cfs" and replace.requires_approval
        assert replace.replaces == v1.checksum
        reconciler.reconcile_once(drain=True)  # records v2; the replace waits
        assert (ws.cfs / SCAN).read_bytes() == b"version one"
        reconciler.store.approve([replace.id], "operator", reconciler.clock())
        reconciler.reconcile_once(drain=True)
        seen = reconciler.observe(reconciler.clock())
        assert seen.scans[SCAN].version == 2
        assert seen.observations["cfs"].replicas[SCAN].level is Level.CHECKSUM
        assert (ws.cfs / SCAN).read_bytes() == b"version one and a late frame"


def test_service_loop_is_woken_by_a_completed_scan(
    ws: LocalWorkspace, reconciler: Reconciler
) -> None:
    loop = ServiceLoop(reconciler, interval_seconds=3600)  # only a wake can start pass two
    watcher = stepped_watcher(reconciler, on_complete=lambda s: loop.wake())
    reconciler.completion_hint = watcher.completed
    thread = threading.Thread(target=loop.run, daemon=True)
    with watcher:
        thread.start()
        try:
            wait_for(lambda: loop.passes >= 1, timeout=15, what="the first pass")
            ws.write_scan(SCAN, b"fresh")
            assert turn_until_complete(watcher, SCAN)  # its on_complete wakes the loop
            wait_for(lambda: SCAN in reconciler.store.load_scans(), timeout=20, what="the scan")
            # The scan is stored while pass two is still running; it is counted when it ends.
            wait_for(lambda: loop.passes >= 2, timeout=20, what="a woken pass")
        finally:
            loop.stop()
            thread.join(30)


def test_watch_off_or_unmounted_endpoint_gives_no_watcher(tmp_path: Path) -> None:
    ws = create_workspace(tmp_path / "off", watch="off")
    config = ws.config()
    backends = build_backends(config, with_catalog=False)
    try:
        assert watcher_for(config, backends) is None
    finally:
        backends.close()


@pytest.mark.parametrize("mode", [["--dry-run"], ["--reconcile", "--once"]])
def test_dry_run_and_once_never_start_a_watcher(
    ws: LocalWorkspace, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    from bl931tui.cli import main
    from engine.inventory import watcher as watcher_module

    started: list[object] = []
    monkeypatch.setattr(watcher_module.ScanWatcher, "start", lambda self: started.append(self))
    ws.write_scan(SCAN, b"data")
    main(["--config", str(ws.config_path), *mode])
    assert started == []
    assert not any(t.name == "bl931-watcher" for t in threading.enumerate())


def test_a_name_that_is_not_utf8_is_reported_and_the_pass_goes_on(
    ws: LocalWorkspace, reconciler: Reconciler
) -> None:
    with open(os.path.join(os.fsencode(ws.dtn), b"latin1-\xe9.h5"), "wb") as f:
        f.write(b"x")
    ws.write_scan("fine.h5", b"y", mtime=1_000_000_000)
    report = reconciler.reconcile_once(drain=True)
    assert report.ok
    assert set(reconciler.store.load_scans()) == {"fine.h5"}
    seen = reconciler.observe(reconciler.clock())
    assert seen.inventory is not None
    assert any("not valid UTF-8" in p for p in seen.inventory.problems)

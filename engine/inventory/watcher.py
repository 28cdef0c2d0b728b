# Over 400 lines: split pending: issue 15 (one ScanWatcher class; event intake vs. walks).
"""The live inventory: a watchdog observer that notices finished scans within seconds.

The full walk stays the source of truth; the watcher only makes it prompt. Events from watchdog
(inotify by default, polling for NFS/GPFS mounts where inotify misses other clients' writes) go
into a `CompletionTracker`; a checker thread stats pending scans when the tracker asks and, when
one completes, calls `on_complete` (the service wakes its loop, so the next pass plans the scan
at once instead of at the next interval). The pass's walk treats a scan the watcher declared
complete as complete if its listing still has the signature the watcher saw.

Events get lost (a burst overflows the kernel queue, a restart, a mount that inotify cannot see),
so the checker also walks the tree at start-up and every `rescan_minutes`: a scan found that way
but never announced by an event is counted and logged as missed, then tracked like any other.

Nothing here reads file contents or follows a symlink; a stat that fails (permission denied,
a file vanishing mid-stat) is logged, retried with backoff and never stops the watcher.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from engine.clock import SYSTEM_CLOCK, Clock
from engine.errors import Bl931Error, UnsafePath
from engine.inventory.completion import Completion, CompletionTracker, Signal
from engine.layout import ScanLayout, glob_to_regex
from engine.storage.local import LocalStorage

if TYPE_CHECKING:
    from engine.backends import Backends
    from engine.config import Config, InventoryConfig

log = logging.getLogger(__name__)

# Only what a writer does; a reader (our own checksums, a copy) opening files makes no noise.
_WATCHED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]
_RESTART_SECONDS = 30.0  # how soon a failed observer (root unmounted, no watches left) is retried
_IDLE_CHECK_SECONDS = 5.0  # when idle, look this often whether the observer is still alive
_MISSED_LOGGED = 20  # missed scans named one by one per walk; the rest are summarised


def check_seconds_for(quiet_seconds: float) -> float:
    """Spacing of the two agreeing stats: short enough to add little latency, never busy."""
    return min(1.0, max(quiet_seconds / 4, 0.05))


def poll_seconds_for(quiet_seconds: float) -> float:
    """Polling interval: a third of the quiet time, 1–10 s (each poll stats the whole tree)."""
    return min(10.0, max(quiet_seconds / 3, 1.0))


@dataclass(frozen=True, slots=True)
class WatcherStats:
    """Counters for logs, metrics and the benchmark."""

    events: int
    completed: int
    reopened: int
    missed_by_events: int
    stat_failures: int
    walks: int
    pending: int
    observer: str


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: ScanWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._watcher._on_event(event)
        except Exception:  # an odd event must never kill watchdog's dispatch thread
            log.exception("watcher: could not handle %r", event)


class ScanWatcher:
    """Watches the inventory endpoint's local root and declares scans complete.

    Args:
        root: the endpoint's local root folder.
        layout: how files group into scans (the same as the walk's).
        config: the `[inventory]` section (watch mode, quiet_seconds, done_marker,
            rescan_minutes).
        on_complete: called from the checker thread with the scans that just completed.
        clock: the engine's clock (its monotonic counter spaces stats and walks).
        name: the endpoint name, for logs.
        check_seconds: spacing of the two agreeing stats (default from `quiet_seconds`).
        poll_seconds: polling interval when `watch = "poll"` (default from `quiet_seconds`).
    """

    def __init__(
        self,
        root: Path,
        layout: ScanLayout,
        config: InventoryConfig,
        *,
        on_complete: Callable[[list[str]], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "inventory",
        check_seconds: float | None = None,
        poll_seconds: float | None = None,
    ) -> None:
        self.root = Path(root)
        self.layout = layout
        self.mode = "poll" if config.watch == "poll" else "inotify"
        self.quiet_seconds = config.quiet_seconds
        self.rescan_seconds = config.rescan_minutes * 60
        self.poll_seconds = poll_seconds or poll_seconds_for(config.quiet_seconds)
        self.on_complete = on_complete
        self.clock = clock
        self.name = name
        self._storage = LocalStorage(name, self.root)
        self._marker = (
            glob_to_regex(config.done_marker)
            if config.done_marker and layout.unit == "directory"
            else None
        )
        self._tracker = CompletionTracker(
            quiet_seconds=config.quiet_seconds,
            check_seconds=check_seconds or check_seconds_for(config.quiet_seconds),
            directory_scans=layout.unit == "directory",
            keep_completed_seconds=max(3600.0, 2 * self.rescan_seconds),
        )
        self._prefix = os.path.join(os.fspath(self.root), "")
        # How long an event may take to reach us; a walk does not call a younger scan missed.
        self._event_grace = 2.0 + (self.poll_seconds if self.mode == "poll" else 0.0)
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._observer: BaseObserver | None = None
        self._observer_kind = "none"
        self._next_walk = 0.0
        self._walks = 0
        self._missed = 0
        self._restart_at = 0.0
        self._reported_failures: set[str] = set()

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self, *, checker: bool = True) -> ScanWatcher:
        """Start the observer and the checker thread; the first thing the checker does is walk.

        With `checker=False` only the observer runs: events are still taken in, and the caller
        runs the checker's turns itself with `step()` (tests drive it on a fake clock that way).
        """
        if self._started:
            return self
        self._started = True
        self._stop.clear()
        self._start_observer()
        if checker:
            self._thread = threading.Thread(target=self._run, name="bl931-watcher", daemon=True)
            self._thread.start()
        return self

    def step(self) -> list[str]:
        """Run one checker turn now, never waiting; returns the scans it declared complete.

        The turn the checker thread runs: restart a dead observer when its retry is due, walk
        when a walk is due, stat the scans due for a stat and call `on_complete`. For a watcher
        started with `checker=False`; what is due is decided by the watcher's clock alone.
        """
        with self._lock:
            self._tracker.expire(self.clock.monotonic())
        return self._turn(wait=False)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching; safe to call twice."""
        self._stop.set()
        with self._wakeup:
            self._wakeup.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._stop_observer()
        self._started = False

    def __enter__(self) -> ScanWatcher:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- views (thread-safe) -----------------------------------------------------------
    def completed(self) -> dict[str, str]:
        """Scan id → stat signature of every scan the watcher declared complete (and still
        remembers). The walk trusts a declaration only while the listing still matches it."""
        with self._lock:
            return {scan: c.signature for scan, c in self._tracker.completed().items()}

    def completions(self) -> dict[str, Completion]:
        with self._lock:
            return self._tracker.completed()

    def pending(self) -> frozenset[str]:
        """Scans seen changing that are not complete yet."""
        with self._lock:
            return self._tracker.pending()

    def stats(self) -> WatcherStats:
        with self._lock:
            counters = self._tracker.counters
            return WatcherStats(
                events=counters.events,
                completed=counters.completed,
                reopened=counters.reopened,
                missed_by_events=self._missed,
                stat_failures=counters.stat_failures,
                walks=self._walks,
                pending=len(self._tracker.pending()),
                observer=self._observer_kind,
            )

    def rescan_now(self) -> None:
        """Ask for a full walk at the checker's next turn (e.g. after an inotify overflow)."""
        with self._wakeup:
            self._next_walk = 0.0
            self._wakeup.notify_all()

    # ---- events (watchdog's dispatch thread) -------------------------------------------
    def _on_event(self, event: FileSystemEvent) -> None:
        signals = list(self._signals(event))
        if not signals:
            return
        now = self.clock.monotonic()
        with self._wakeup:
            for scan, signal in signals:
                self._tracker.event(scan, signal, now)
            self._wakeup.notify_all()

    def _signals(self, event: FileSystemEvent) -> list[tuple[str, Signal]]:
        """Map one watchdog event to (scan, signal) pairs; [] for what no scan cares about."""
        src = self._relative(event.src_path)
        out: list[tuple[str, Signal]] = []
        if isinstance(event, FileMovedEvent | DirMovedEvent):
            dest = self._relative(event.dest_path)
            if src is not None:
                out.extend(self._file_signal(src, gone=True, directory=event.is_directory))
            if dest is not None:
                out.extend(self._file_signal(dest, moved_in=True, directory=event.is_directory))
            return out
        if src is None:
            return out
        if isinstance(event, DirCreatedEvent | DirDeletedEvent):
            if self.layout.unit == "directory":
                out.extend(
                    self._file_signal(src, gone=isinstance(event, DirDeletedEvent), directory=True)
                )
            return out
        if isinstance(event, FileDeletedEvent):
            return self._file_signal(src, gone=True)
        if isinstance(event, FileClosedEvent):
            return self._file_signal(src, closed=True)
        return self._file_signal(src)

    def _file_signal(
        self,
        relpath: str,
        *,
        gone: bool = False,
        moved_in: bool = False,
        closed: bool = False,
        directory: bool = False,
    ) -> list[tuple[str, Signal]]:
        if self.layout.unit == "directory":
            return self._directory_scan_signal(relpath, gone=gone, directory=directory)
        if directory or self.layout.scan_of(relpath) is None:
            return []  # sub-events of a moved folder name its files one by one
        if gone:
            return [(relpath, Signal.GONE)]
        if moved_in:
            return [(relpath, Signal.MOVED_IN)]
        return [(relpath, Signal.CLOSED if closed else Signal.ACTIVITY)]

    def _directory_scan_signal(
        self, relpath: str, *, gone: bool, directory: bool
    ) -> list[tuple[str, Signal]]:
        parts = relpath.split("/")
        depth = self.layout.depth
        if len(parts) < depth or (len(parts) == depth and not directory):
            return []  # above the scan level: no scan owns it
        scan = "/".join(parts[:depth])
        if self.layout.walk_prunes(scan):
            return []
        if len(parts) == depth:  # the scan folder itself
            return [(scan, Signal.GONE if gone else Signal.ACTIVITY)]
        inner = "/".join(parts[depth:])
        if not directory and self._marker is not None and self._marker.match(inner) and not gone:
            return [(scan, Signal.MARKER)]
        if not directory and self.layout.scan_of(relpath) != scan:
            return []  # an excluded file (a temporary) is not part of the scan
        return [(scan, Signal.ACTIVITY)]

    def _relative(self, path: bytes | str) -> str | None:
        text = os.fsdecode(path)
        if not text.startswith(self._prefix):
            return None
        relpath = text[len(self._prefix) :]
        return relpath or None

    # ---- the checker thread ------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._turn()
            except Exception:  # the watcher must outlive any surprise; the walk still runs
                log.exception("%s watcher: unexpected error; continuing", self.name)
                self._stop.wait(1.0)

    def _turn(self, *, wait: bool = True) -> list[str]:
        now = self.clock.monotonic()
        if self._observer_dead() and now >= self._restart_at:
            log.warning("%s watcher: observer stopped; restarting it and walking", self.name)
            self._stop_observer()
            self._start_observer()
            self._next_walk = 0.0
        if now >= self._next_walk:
            self._walk(baseline=self._walks == 0)
            self._next_walk = self.clock.monotonic() + self.rescan_seconds
        with self._wakeup:
            due = self._tracker.due(self.clock.monotonic())
            if not due:
                if wait:
                    self._wait_locked()
                return []
        completions = self._check(due)
        scans = [c.scan for c in completions]
        if scans and self.on_complete is not None:
            try:
                self.on_complete(scans)
            except Exception:
                log.exception("%s watcher: on_complete failed", self.name)
        return scans

    def _wait_locked(self) -> None:
        """Sleep until the next stat, walk or restart is due, or an event arrives."""
        now = self.clock.monotonic()
        deadlines = [self._next_walk]
        next_due = self._tracker.next_due()
        if next_due is not None:
            deadlines.append(next_due)
        if self._observer_kind == "none":
            deadlines.append(self._restart_at)
        timeout = max(0.0, min(deadlines) - now)
        self._wakeup.wait(timeout=min(timeout, _IDLE_CHECK_SECONDS))
        self._tracker.expire(self.clock.monotonic())

    def _check(self, due: Collection[str]) -> list[Completion]:
        """Stat each due scan (outside the lock) and feed the tracker."""
        results: list[tuple[str, str | None, float, bool]] = []
        for scan in due:
            if self._stop.is_set():
                break
            signature, ok = self._signature(scan)
            results.append((scan, signature, self.clock.monotonic(), ok))
        completions: list[Completion] = []
        with self._lock:
            for scan, signature, at, ok in results:
                if not ok:
                    self._tracker.failed(scan, at)
                    continue
                self._reported_failures.discard(scan)
                completion = self._tracker.record(scan, signature, at)
                if completion is not None:
                    completions.append(completion)
        for c in completions:
            log.debug("%s watcher: %r complete (%s)", self.name, c.scan, c.rule.value)
        return completions

    def _signature(self, scan: str) -> tuple[str | None, bool]:
        """(signature or None if absent, True) or (None, False) when the stat failed."""
        try:
            listing = self._storage.stat_scan(self.layout, scan)
        except UnsafePath as exc:  # a symlink, or a name leading out of the root: never a scan
            log.info("%s watcher: ignoring %r: %s", self.name, scan, exc)
            return None, True
        except (Bl931Error, OSError, ValueError) as exc:
            if scan not in self._reported_failures:
                self._reported_failures.add(scan)
                log.warning("%s watcher: cannot stat %r (will retry): %s", self.name, scan, exc)
            return None, False
        return (listing.signature if listing is not None else None), True

    def _walk(self, *, baseline: bool) -> None:
        """List the whole tree; scans no event announced are missed (counted and logged)."""
        started = self.clock.monotonic()
        try:
            listings = self._storage.list_scans(self.layout)
        except (Bl931Error, OSError) as exc:
            log.error("%s watcher: walk failed (retrying in %gs): %s", self.name, 60.0, exc)
            self._next_walk = started + 60.0
            return
        wall_now = self.clock.now().timestamp()
        missed: list[str] = []
        with self._wakeup:
            now = self.clock.monotonic()
            for scan, listing in listings.items():
                age = wall_now - max((f.mtime for f in listing.files), default=wall_now)
                if not baseline and age < self._event_grace and not self._tracker.known(scan):
                    continue  # its event may still be in watchdog's queue; the next walk decides
                if self._tracker.discover(scan, now, age, baseline=baseline):
                    missed.append(scan)
            self._tracker.retain(set(listings))
            self._walks += 1
            self._missed += len(missed)
            self._wakeup.notify_all()
        self._log_walk(listings, missed, baseline, self.clock.monotonic() - started)

    def _log_walk(
        self, listings: Mapping[str, object], missed: list[str], baseline: bool, took: float
    ) -> None:
        if baseline:
            log.info(
                "%s watcher: start-up walk found %d scans in %.2fs (%s)",
                self.name,
                len(listings),
                took,
                self._observer_kind,
            )
            return
        for scan in missed[:_MISSED_LOGGED]:
            log.warning("%s watcher: scan %r missed by events, found by the walk", self.name, scan)
        if len(missed) > _MISSED_LOGGED:
            log.warning(
                "%s watcher: %d more scans missed by events (found by the walk)",
                self.name,
                len(missed) - _MISSED_LOGGED,
            )
        log.debug("%s watcher: walk of %d scans in %.2fs", self.name, len(listings), took)

    # ---- the observer ------------------------------------------------------------------
    def _start_observer(self) -> None:
        observer = self._make_observer(self.mode)
        try:
            observer.schedule(
                _Handler(self), os.fspath(self.root), recursive=True, event_filter=_WATCHED_EVENTS
            )
            observer.start()
        except OSError as exc:
            if self.mode == "inotify" and exc.errno in (errno.ENOSPC, errno.EMFILE):
                log.error(
                    "%s watcher: inotify limit reached (%s); polling instead "
                    "(raise fs.inotify.max_user_watches to go back)",
                    self.name,
                    exc,
                )
                self.mode = "poll"
                self._start_observer()
                return
            log.error(
                "%s watcher: cannot watch %s (retrying in %gs; the walk still runs): %s",
                self.name,
                self.root,
                _RESTART_SECONDS,
                exc,
            )
            self._observer, self._observer_kind = None, "none"
            self._restart_at = self.clock.monotonic() + _RESTART_SECONDS
            return
        self._observer, self._observer_kind = observer, self.mode
        log.info("%s watcher: watching %s (%s)", self.name, self.root, self.mode)

    def _make_observer(self, mode: str) -> BaseObserver:
        if mode == "poll":
            return PollingObserver(timeout=self.poll_seconds)
        return Observer()

    def _observer_dead(self) -> bool:
        observer = self._observer
        if observer is None:
            return True
        return not observer.is_alive() or not all(e.is_alive() for e in observer.emitters)

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        self._observer_kind = "none"
        if observer is None:
            return
        try:
            observer.stop()
            observer.join(timeout=10)
        except Exception:  # stopping a half-dead observer must not mask why we stop
            log.exception("%s watcher: stopping the observer failed", self.name)


def watcher_for(
    config: Config,
    backends: Backends,
    *,
    on_complete: Callable[[list[str]], None] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> ScanWatcher | None:
    """The watcher the config asks for, or None (`watch = "off"`, or no local path to watch)."""
    inventory = config.inventory
    if inventory.watch == "off":
        return None
    root = backends.local_roots.get(inventory.endpoint)
    if root is None:
        log.info(
            "%s: not mounted here; inventory is by listing each pass (no watcher)",
            inventory.endpoint,
        )
        return None
    return ScanWatcher(
        root,
        ScanLayout.from_config(inventory),
        inventory,
        on_complete=on_complete,
        clock=clock,
        name=inventory.endpoint,
    )

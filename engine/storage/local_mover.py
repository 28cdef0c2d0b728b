"""The local mover: copies and deletes scans between local roots, in worker threads.

A copy writes each file to a temporary name beside its destination, checks the bytes against the
acquisition checksum and only then renames onto the final name (`localfs.place_file`), so a
reader or a crash never sees a half-written file under a scan's name. Tasks, their progress and
their results live in this process: `finishes_locally` tells `--reconcile --once` to wait for them.
"""

from __future__ import annotations

import errno
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from engine.clock import Clock, as_clock
from engine.errors import Bl931Error, TerminalError, TransientError
from engine.model import ErrorClass, Evidence, FileStat, Level
from engine.storage.base import (
    ItemResult,
    TaskRequest,
    TaskStatus,
    TransferItem,
    listing_signature,
)
from engine.storage.local_delete import remove_manifest
from engine.storage.local_task import Cancelled, LocalTask
from engine.storage.localfs import place_file, safe_path
from engine.storage.root_pin import RootPin, RootSwapped

if TYPE_CHECKING:
    from engine.retry_holds import HoldBook

log = logging.getLogger(__name__)

# A finished task's results stay pollable this long; the reconciler records them within a pass.
FINISHED_TASKS_KEPT_SECONDS = 24 * 3600


class LocalMover:
    """Copies and deletes scans between local roots in a thread pool (implements `Mover`).

    Tasks live in this process only: after a restart every old task id polls as `lost`, and the
    reconciler plans the work again (a copy then adopts the files already in place).

    Args:
        roots: endpoint name → local root folder, for every endpoint this mover serves.
        workers: threads running tasks (each runs one task at a time).
        clock: the engine's clock: deadlines, evidence stamps, task durations.
    """

    name = "local"
    finishes_locally = True
    max_items_per_task = 1000
    max_active_tasks = 4

    def __init__(
        self,
        roots: Mapping[str, Path],
        *,
        workers: int = 2,
        clock: Clock | Callable[[], datetime] | None = None,
    ) -> None:
        self._roots = {name: Path(root) for name, root in roots.items()}
        self._clock = as_clock(clock)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bl931-local")
        self._lock = threading.Lock()
        self._tasks: dict[str, LocalTask] = {}
        self._task_of_submission: dict[str, str] = {}

    def new_submission_id(self) -> str:
        """A fresh random id; the caller persists it before calling `submit`."""
        return str(uuid.uuid4())

    def submit(self, request: TaskRequest) -> str:
        """Queue a batch; the same `submission_id` always answers with the same task id.

        Raises:
            TerminalError: an endpoint of the request is not one of this mover's roots.
        """
        with self._lock:
            known = self._task_of_submission.get(request.submission_id)
            if known is not None:
                return known
            self._check_endpoints(request)
            self._forget_old_tasks()
            task = LocalTask(
                task_id=f"local-{uuid.uuid4().hex}",
                request=request,
                bytes_total=sum(f.size for i in request.items for f in i.files)
                if request.kind == "copy"
                else 0,
                files_total=sum(len(i.files) for i in request.items),
                monotonic=self._clock.monotonic,
                pins=self._pin_roots(request),
            )
            self._tasks[task.task_id] = task
            self._task_of_submission[request.submission_id] = task.task_id
            task.future = self._executor.submit(self._run, task)
        log.info(
            "local %s task %s: %d scan(s) %s→%s",
            request.kind,
            task.task_id,
            len(request.items),
            request.source or "-",
            request.target,
        )
        return task.task_id

    def find_task(self, request: TaskRequest) -> str | None:
        """The task started for this submission id in this process, if any (tasks do not
        outlive the process: after a restart, the worker of an interrupted task is gone)."""
        with self._lock:
            return self._task_of_submission.get(request.submission_id)

    def poll(self, task_id: str) -> TaskStatus:
        """Live progress; once finished, one `ItemResult` per item. Unknown ids are `lost`."""
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None:
            return TaskStatus(
                task_id,
                "lost",
                error="no such task in this process (it ran before a restart?)",
            )
        return task.status()

    def knows(self, task_id: str) -> bool:
        """Always: a task of this process carries its own request, and one from before a
        restart polls as `lost` whatever it is told."""
        return True

    def track(self, task_id: str, request: TaskRequest) -> None:
        """Nothing to remember (see `knows`)."""

    def keep_holds_in(self, book: HoldBook) -> None:
        """Nothing to keep: the local filesystem asks for no waits."""

    def cancel(self, task_id: str) -> None:
        """Ask a task to stop; it stops before its next file and fails the items not done."""
        with self._lock:
            task = self._tasks.get(task_id)
        if task is not None:
            task.stop.set()

    def wait(self, task_id: str, timeout: float | None = None) -> TaskStatus:
        """Block until a task finishes (or `timeout` seconds pass), then poll it.

        `--reconcile --once` uses this to drain its local work without polling in a loop.
        """
        with self._lock:
            task = self._tasks.get(task_id)
        if task is not None and task.future is not None:
            futures_wait([task.future], timeout=timeout)
        return self.poll(task_id)

    def close(self, *, wait: bool = True) -> None:
        """Stop accepting work; with `wait=False`, running tasks stop before their next file."""
        if not wait:
            with self._lock:
                for task in self._tasks.values():
                    task.stop.set()
        self._executor.shutdown(wait=wait)

    def _forget_old_tasks(self) -> None:
        """Drop tasks finished long ago (the caller holds `_lock`); they poll as `lost` after."""
        horizon = self._clock.monotonic() - FINISHED_TASKS_KEPT_SECONDS
        for task in [t for t in self._tasks.values() if t.ended is not None and t.ended < horizon]:
            del self._tasks[task.task_id]
            self._task_of_submission.pop(task.request.submission_id, None)

    def _check_endpoints(self, request: TaskRequest) -> None:
        needed = [request.target] + ([request.source] if request.kind == "copy" else [])
        for endpoint in needed:
            if endpoint is None or endpoint not in self._roots:
                raise TerminalError(
                    f"the local mover has no root for endpoint {endpoint!r} "
                    f"(known: {', '.join(sorted(self._roots)) or 'none'})"
                )

    def _pin_roots(self, request: TaskRequest) -> dict[str, RootPin]:
        """The task's roots as they are when it is handed over (its identities just held)."""
        names = {e for e in (request.source, request.target) if e is not None}
        pins = {name: RootPin.take(name, self._roots[name]) for name in sorted(names)}
        return {name: pin for name, pin in pins.items() if pin is not None}

    def _mounted_root(self, task: LocalTask, endpoint: str) -> Path:
        """The endpoint's root, if it is there and still the one the task was handed: never
        copy into or "delete" from an unmounted or swapped one (engine/storage/root_pin.py).

        Copying would create the tree on the disk below the mount point, and a delete would find
        nothing and report success while the scan is still on the unmounted filesystem.
        """
        root = self._roots[endpoint]
        if not root.is_dir():
            raise TransientError(f"{endpoint}: root {root} is missing (unmounted?)")
        pin = task.pins.get(endpoint)
        if pin is not None:
            pin.check()
        return root

    def _run(self, task: LocalTask) -> None:
        with task.lock:
            task.state = "active"
            task.started = self._clock.monotonic()
        try:
            for item in task.request.items:
                task.start_item(item.action_id)
                result = self._run_item(task, item)
                with task.lock:
                    task.results.append(result)
        finally:  # whatever happens, the task ends and says so; it never stays "active"
            with task.lock:
                task.ended = self._clock.monotonic()
                complete = len(task.results) == len(task.request.items)
                task.state = (
                    "succeeded" if complete and all(r.ok for r in task.results) else "failed"
                )
            log.info("local task %s %s", task.task_id, task.state)

    def _run_item(self, task: LocalTask, item: TransferItem) -> ItemResult:
        """One scan; every failure becomes a classified result, never an escaped exception."""
        request = task.request
        try:
            task.check_stop()
            if request.deadline is not None and self._clock() >= request.deadline:
                raise TransientError(f"the task deadline {request.deadline.isoformat()} passed")
            if request.kind == "copy":
                return self._copy_item(task, item)
            return self._delete_item(task, item)
        except Cancelled:
            return _failed(item, "cancelled before this scan finished", ErrorClass.TRANSIENT)
        except RootSwapped as exc:  # planned again at once, behind the next identity check
            return ItemResult(
                item.action_id, ok=False, error=f"scan {item.scan!r}: {exc}", retry_now=True
            )
        except Bl931Error as exc:
            return _failed(item, f"scan {item.scan!r}: {exc}", exc.error_class)
        except OSError as exc:
            # Permission is not something a retry fixes: a person must look (as Transfer's
            # PERMISSION_DENIED does for Globus endpoints).
            denied = exc.errno in (errno.EACCES, errno.EPERM)
            return _failed(
                item,
                _os_error_message(exc, item.scan, request),
                ErrorClass.NEEDS_HUMAN if denied else ErrorClass.TRANSIENT,
            )
        except Exception as exc:
            log.exception("local task %s: unexpected error on scan %r", task.task_id, item.scan)
            return _failed(
                item, f"scan {item.scan!r}: internal error: {exc!r}", ErrorClass.NEEDS_HUMAN
            )

    def _copy_item(self, task: LocalTask, item: TransferItem) -> ItemResult:
        request = task.request
        assert request.source is not None
        source_root = self._mounted_root(task, request.source)
        target_root = self._mounted_root(task, request.target)
        target_pin = task.pins.get(request.target)
        scan_checksum = item.whole_checksum()
        if scan_checksum is None:
            raise TerminalError(f"a file scan needs exactly one file, got {len(item.files)}")
        placed: list[FileStat] = []
        for expected in item.files:
            task.check_stop()
            if target_pin is not None:  # unmounted or swapped since the last file?
                target_pin.check(marker=False)
            _check_belongs(item, expected.path)
            # A versioned object on tape: the same files under another name (the evidence
            # still fingerprints the scan's own paths: engine/tape_versions.py).
            source, target = (
                safe_path(source_root, item.source_path(expected.path)),
                safe_path(target_root, item.target_path(expected.path)),
            )
            try:
                placed.append(
                    place_file(
                        source,
                        target,
                        expected,
                        item.checksum_algorithm,
                        endpoint=request.target,
                        progress=task.add_bytes,
                        overwrite=item.overwrite,
                    )
                )
            except OSError as exc:
                raise TransientError(
                    _os_error_message(exc, item.scan, request, expected.path)
                ) from exc
            task.add_files(1)
        evidence = Evidence(
            level=Level.CHECKSUM,
            algorithm=item.checksum_algorithm,
            value=scan_checksum,
            task_id=task.task_id,
            verified_at=self._clock(),
            signature=listing_signature(placed),
            how="copy",
        )
        return ItemResult(item.action_id, ok=True, evidence=evidence)

    def _delete_item(self, task: LocalTask, item: TransferItem) -> ItemResult:
        """Remove exactly the scan's manifest files (and its folders once empty)."""
        root = self._mounted_root(task, task.request.target)
        for scan_file in item.files:
            _check_belongs(item, scan_file.path)
        done = remove_manifest(root, item.scan, item.files, directory=item.recursive)
        task.add_files(len(item.files))
        log.info(
            "%s: deleted scan %r (%d file(s) removed, %d already gone, %d left beside it)",
            task.request.target,
            item.scan,
            len(done.removed),
            len(done.already_absent),
            len(done.left_behind),
        )
        return ItemResult(
            item.action_id,
            ok=True,
            removed=done.removed,
            already_absent=done.already_absent,
            left_behind=done.left_behind,
        )


def _failed(item: TransferItem, message: str, error_class: ErrorClass) -> ItemResult:
    return ItemResult(item.action_id, ok=False, error=message, error_class=error_class)


def _check_belongs(item: TransferItem, path: str) -> None:
    """A file of a scan lies at the scan's path (file scan) or below its folder (directory)."""
    inside = path.startswith(item.scan + "/") if item.recursive else path == item.scan
    if not inside:
        raise TerminalError(f"file {path!r} does not belong to scan {item.scan!r}")


def _os_error_message(
    exc: OSError, scan: str, request: TaskRequest, path: str | None = None
) -> str:
    where = f"{path!r} of scan {scan!r}" if path else f"scan {scan!r}"
    doing = (
        f"copying {where} from {request.source} to {request.target}"
        if request.kind == "copy"
        else f"deleting {where} at {request.target}"
    )
    if exc.errno == errno.ENOSPC:
        return f"no space left on {request.target} while {doing}"
    return f"{doing} failed: {exc.strerror or exc}"

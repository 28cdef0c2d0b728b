"""Local endpoints: a directory tree on this machine (a DTN's disk, a mounted filesystem).

`LocalStorage` lists a tree with one `os.scandir` pass and never follows symlinks, so a link
cannot make a scan appear twice or pull files from outside the tree into a listing. A root that
is missing or not a directory raises instead of listing as empty: an unmounted filesystem must
never look like one whose scans were all deleted.

`LocalMover` copies and deletes scans between local roots in worker threads. A copy writes to a
temporary name beside the destination, checks the bytes against the acquisition checksum and
only then renames onto the final name, so a reader (or a crash) never sees a half-written file
under a scan's name.

Every path handed in from outside (a scan id, a file path) goes through `safe_path`, which refuses
anything that would land outside the endpoint root.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from engine.errors import Bl931Error, EndpointUnavailable, TerminalError, TransientError
from engine.inventory.checksum import file_checksum
from engine.layout import ScanLayout
from engine.model import ErrorClass, Evidence, FileStat, Level, scan_digest
from engine.storage.base import (
    ItemResult,
    ScanListing,
    TaskRequest,
    TaskState,
    TaskStatus,
    TransferItem,
    listing_signature,
)
from engine.storage.localfs import (
    is_within,
    place_file,
    remove_scan,
    safe_path,
    sweep_temp_files,
)

__all__ = ["LocalMover", "LocalStorage", "safe_path", "sweep_temp_files"]

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"


class LocalStorage:
    """A tree of scans in a local directory (implements `Storage`)."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStorage({self.name!r}, {str(self.root)!r})"

    def resolve(self, relpath: str) -> Path:
        """The local path of a scan or file, checked by `safe_path`."""
        return safe_path(self.root, relpath)

    def list_scans(
        self, layout: ScanLayout, wanted: Collection[str] | None = None
    ) -> dict[str, ScanListing]:
        """Walk the whole tree and group its files into scans.

        A local walk is cheap enough that `wanted` is ignored: the full answer is always
        returned, which also lets the caller see scans it did not expect.

        Raises:
            EndpointUnavailable: the root is missing or any folder could not be listed.
        """
        self._check_root()
        files = self._iter_files(layout, "")
        if layout.unit == "file":  # the common case, kept lean: one file, one scan
            return {
                f.path: ScanListing(f.path, (f,))
                for f in files
                if layout.scan_of(f.path, folders_checked=True) is not None
            }
        grouped: dict[str, list[FileStat]] = {}
        for file in files:
            scan = layout.scan_of(file.path, folders_checked=True)
            if scan is not None:
                grouped.setdefault(scan, []).append(file)
        return {scan: _listing(scan, scan_files) for scan, scan_files in grouped.items()}

    def stat_scan(self, layout: ScanLayout, scan: str) -> ScanListing | None:
        """A fresh listing of one scan, or None if it is not here.

        Raises:
            EndpointUnavailable: the root is missing or the scan could not be listed; a
                failure is never reported as an absence.
            UnsafePath: the scan id would resolve outside the root.
        """
        self._check_root()
        path = self.resolve(scan)
        entry = self._lstat(path, scan)
        if entry is None:
            return None
        if layout.unit == "file":
            if not stat.S_ISREG(entry.st_mode) or layout.scan_of(scan) != scan:
                return None
            return ScanListing(scan, (FileStat(scan, entry.st_size, entry.st_mtime),))
        if not stat.S_ISDIR(entry.st_mode) or layout.walk_prunes(scan):
            return None
        files = [
            f
            for f in self._iter_files(layout, scan)
            if layout.scan_of(f.path, folders_checked=True) == scan
        ]
        return _listing(scan, files) if files else None

    def checksum_files(self, listing: ScanListing, algorithm: str) -> dict[str, str] | None:
        """Compute the checksums of a scan's files here (a local endpoint always can).

        A file that has vanished since the listing is left out of the answer, so the caller
        sees it as unverified rather than as a read error.

        Raises:
            EndpointUnavailable: the root is missing, or a file exists but cannot be read.
        """
        self._check_root()
        checksums: dict[str, str] = {}
        for file in listing.files:
            try:
                checksums[file.path] = file_checksum(self.resolve(file.path), algorithm)
            except FileNotFoundError:
                log.info("%s: %r vanished before it could be checksummed", self.name, file.path)
            except OSError as exc:
                raise EndpointUnavailable(
                    self.name, f"cannot read {file.path!r}: {exc.strerror or exc}"
                ) from exc
        return checksums

    def _check_root(self) -> None:
        try:
            root_stat = os.stat(self.root)
        except FileNotFoundError:
            raise EndpointUnavailable(
                self.name, f"root {self.root} is missing (unmounted?)"
            ) from None
        except OSError as exc:
            raise EndpointUnavailable(
                self.name, f"root {self.root} cannot be read: {exc.strerror or exc}"
            ) from exc
        if not stat.S_ISDIR(root_stat.st_mode):
            raise EndpointUnavailable(
                self.name, f"root {self.root} is missing (unmounted?): it is not a directory"
            )

    def _lstat(self, path: Path, relpath: str) -> os.stat_result | None:
        try:
            return os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise EndpointUnavailable(
                self.name, f"cannot stat {relpath!r}: {exc.strerror or exc}"
            ) from exc

    def _iter_files(self, layout: ScanLayout, start: str) -> Iterator[FileStat]:
        """Every regular file below `start` (relative), skipping pruned folders and symlinks."""
        pending = [start]
        escaping: list[str] = []
        while pending:
            reldir = pending.pop()
            prefix = f"{reldir}/" if reldir else ""
            for entry in self._entries(reldir):
                relpath = prefix + entry.name
                if entry.is_file(follow_symlinks=False):
                    try:
                        entry_stat = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # vanished between scandir and stat: simply not there
                    yield FileStat(relpath, entry_stat.st_size, entry_stat.st_mtime)
                elif entry.is_dir(follow_symlinks=False):
                    if not layout.walk_prunes(relpath):
                        pending.append(relpath)
                elif entry.is_symlink():
                    self._note_symlink(entry, relpath, escaping)
        if escaping:
            log.warning(
                "%s: left out %d symlink(s) pointing outside the root, e.g. %r",
                self.name,
                len(escaping),
                escaping[0],
            )

    def _entries(self, reldir: str) -> list[os.DirEntry[str]]:
        folder = os.path.join(self.root, reldir) if reldir else os.fspath(self.root)
        try:
            with os.scandir(folder) as entries:
                return list(entries)
        except (FileNotFoundError, NotADirectoryError):
            if reldir:
                # A folder removed while we walk is simply gone, unless the whole root went
                # with it (an unmount mid-walk), which must not read as "everything deleted".
                self._check_root()
                return []
            raise EndpointUnavailable(
                self.name, f"root {self.root} is missing (unmounted?)"
            ) from None
        except OSError as exc:
            where = repr(reldir) if reldir else "the root"
            raise EndpointUnavailable(
                self.name, f"cannot list {where}: {exc.strerror or exc}"
            ) from exc

    def _note_symlink(self, entry: os.DirEntry[str], relpath: str, escaping: list[str]) -> None:
        if is_within(os.path.realpath(entry.path), os.path.realpath(self.root)):
            log.debug("%s: not following symlink %r", self.name, relpath)
        else:
            escaping.append(relpath)


def _listing(scan: str, files: list[FileStat]) -> ScanListing:
    if len(files) > 1:
        files.sort(key=lambda f: f.path)
    return ScanListing(scan, tuple(files))


# A finished task's results stay pollable this long; the reconciler records them within a pass.
FINISHED_TASKS_KEPT_SECONDS = 24 * 3600


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Cancelled(Exception):
    """Raised between files once a task has been asked to stop."""


@dataclass
class _Task:
    """One submitted batch and its live progress (mutated by one worker, read by pollers)."""

    task_id: str
    request: TaskRequest
    bytes_total: int
    files_total: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    state: TaskState = "queued"
    bytes_done: int = 0
    files_done: int = 0
    started: float | None = None
    ended: float | None = None
    results: list[ItemResult] = field(default_factory=list)
    future: Future[None] | None = None

    def add_bytes(self, count: int) -> None:
        with self.lock:
            self.bytes_done += count

    def add_files(self, count: int) -> None:
        with self.lock:
            self.files_done += count

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise _Cancelled

    def status(self) -> TaskStatus:
        with self.lock:
            elapsed = (self.ended or time.monotonic()) - self.started if self.started else 0.0
            finished = self.state in ("succeeded", "failed")
            failures = [r for r in self.results if not r.ok] if finished else []
            return TaskStatus(
                task_id=self.task_id,
                state=self.state,
                bytes_done=self.bytes_done,
                bytes_total=self.bytes_total,
                files_done=self.files_done,
                files_total=self.files_total,
                bytes_per_second=self.bytes_done / elapsed if elapsed > 0 else 0.0,
                error=_summarise(failures, len(self.results)),
                error_class=_worst_class(failures),
                results=tuple(self.results) if finished else (),
            )


def _summarise(failures: list[ItemResult], total: int) -> str | None:
    if not failures:
        return None
    return f"{len(failures)} of {total} item(s) failed; first: {failures[0].error}"


_SEVERITY = (ErrorClass.NEEDS_HUMAN, ErrorClass.TERMINAL, ErrorClass.TRANSIENT)


def _worst_class(failures: list[ItemResult]) -> ErrorClass:
    """The class that decides what happens to the task as a whole: a person beats a retry."""
    classes = {f.error_class for f in failures}
    return next((c for c in _SEVERITY if c in classes), ErrorClass.TRANSIENT)


class LocalMover:
    """Copies and deletes scans between local roots in a thread pool (implements `Mover`).

    Tasks live in this process only: after a restart every old task id polls as `lost`, and the
    reconciler plans the work again (a copy then adopts the files already in place).

    Args:
        roots: endpoint name → local root folder, for every endpoint this mover serves.
        workers: threads running tasks (each runs one task at a time).
        clock: the time source stamped on evidence (tests pass a fixed clock).
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
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._roots = {name: Path(root) for name, root in roots.items()}
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bl931-local")
        self._lock = threading.Lock()
        self._tasks: dict[str, _Task] = {}
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
            task = _Task(
                task_id=f"local-{uuid.uuid4().hex}",
                request=request,
                bytes_total=sum(f.size for i in request.items for f in i.files)
                if request.kind == "copy"
                else 0,
                files_total=sum(len(i.files) for i in request.items),
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
        horizon = time.monotonic() - FINISHED_TASKS_KEPT_SECONDS
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

    def _mounted_root(self, endpoint: str) -> Path:
        """The endpoint's root, if it is there: never copy into or "delete" from an unmounted one.

        Copying would create the tree on the disk below the mount point, and a delete would find
        nothing and report success while the scan is still on the unmounted filesystem.
        """
        root = self._roots[endpoint]
        if not root.is_dir():
            raise TransientError(f"{endpoint}: root {root} is missing (unmounted?)")
        return root

    def _run(self, task: _Task) -> None:
        with task.lock:
            task.state = "active"
            task.started = time.monotonic()
        try:
            for item in task.request.items:
                result = self._run_item(task, item)
                with task.lock:
                    task.results.append(result)
        finally:  # whatever happens, the task ends and says so; it never stays "active"
            with task.lock:
                task.ended = time.monotonic()
                complete = len(task.results) == len(task.request.items)
                task.state = (
                    "succeeded" if complete and all(r.ok for r in task.results) else "failed"
                )
            log.info("local task %s %s", task.task_id, task.state)

    def _run_item(self, task: _Task, item: TransferItem) -> ItemResult:
        """One scan; every failure becomes a classified result, never an escaped exception."""
        request = task.request
        try:
            task.check_stop()
            if request.deadline is not None and self._clock() >= request.deadline:
                raise TransientError(f"the task deadline {request.deadline.isoformat()} passed")
            if request.kind == "copy":
                return self._copy_item(task, item)
            return self._delete_item(task, item)
        except _Cancelled:
            return _failed(item, "cancelled before this scan finished", ErrorClass.TRANSIENT)
        except Bl931Error as exc:
            return _failed(item, f"scan {item.scan!r}: {exc}", exc.error_class)
        except OSError as exc:
            return _failed(item, _os_error_message(exc, item.scan, request), ErrorClass.TRANSIENT)
        except Exception as exc:
            log.exception("local task %s: unexpected error on scan %r", task.task_id, item.scan)
            return _failed(
                item, f"scan {item.scan!r}: internal error: {exc!r}", ErrorClass.NEEDS_HUMAN
            )

    def _copy_item(self, task: _Task, item: TransferItem) -> ItemResult:
        request = task.request
        assert request.source is not None
        source_root = self._mounted_root(request.source)
        target_root = self._mounted_root(request.target)
        scan_checksum = _scan_checksum(item)
        placed: list[FileStat] = []
        for expected in item.files:
            task.check_stop()
            _check_belongs(item, expected.path)
            source, target = (
                safe_path(source_root, expected.path),
                safe_path(target_root, expected.path),
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

    def _delete_item(self, task: _Task, item: TransferItem) -> ItemResult:
        root = self._mounted_root(task.request.target)
        files = [f.path for f in item.files]
        for path in files:
            _check_belongs(item, path)
        removed = remove_scan(root, item.scan, files, recursive=item.recursive)
        task.add_files(len(item.files))
        log.info("%s: deleted scan %r (%d file(s))", task.request.target, item.scan, removed)
        return ItemResult(item.action_id, ok=True)


def _failed(item: TransferItem, message: str, error_class: ErrorClass) -> ItemResult:
    return ItemResult(item.action_id, ok=False, error=message, error_class=error_class)


def _scan_checksum(item: TransferItem) -> str:
    """The acquisition checksum of the whole scan, as `walk_inventory` computes it."""
    if item.recursive:
        return scan_digest(item.checksum_algorithm, item.files)
    if len(item.files) != 1:
        raise TerminalError(f"a file scan needs exactly one file, got {len(item.files)}")
    return item.files[0].checksum


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

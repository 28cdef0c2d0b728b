"""The two protocols behind which every endpoint's side effects live.

`Storage` lists and stats scans on one endpoint. A failed or partial listing raises
`EndpointUnavailable`; it never returns an empty answer for a failure (an unmounted filesystem
and an empty one must never look alike).

`Mover` submits batches of copies or deletes between endpoints and reports their progress. A
submission id is obtained first, persisted by the caller, and then passed to `submit`; submitting
twice with the same id must not start a second task. The protocol states everything the engine
calls on a mover, and every mover implements all of it (no optional methods probed for).

A mover keeps nothing a restart would lose: what it is told in memory (which scans a task
carries) the executor tells it again from the state store (`knows`/`track`), and the waits a
service asked for are kept in the store's book (`keep_holds_in`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from engine.layout import ScanLayout
from engine.listing import ScanListing as ScanListing  # re-exported: the storage protocol's type
from engine.listing import listing_of as listing_of  # re-exported
from engine.listing import listing_signature as listing_signature  # re-exported
from engine.model import ErrorClass, Evidence, ScanFile, scan_digest

if TYPE_CHECKING:
    from engine.retry_holds import HoldBook


@runtime_checkable
class Storage(Protocol):
    """Read access to one endpoint's tree."""

    name: str

    def list_scans(
        self, layout: ScanLayout, wanted: Collection[str] | None = None
    ) -> Mapping[str, ScanListing]:
        """List the scans present. `wanted` (if given) are the scan ids the caller cares about;
        a backend may list only what is needed to answer for them, and may return more.

        Raises:
            EndpointUnavailable: the tree could not be listed completely.
        """
        ...

    def stat_scan(self, layout: ScanLayout, scan: str) -> ScanListing | None:
        """A fresh listing of one scan (None if absent), for re-checks right before a delete."""
        ...

    def checksum_files(self, listing: ScanListing, algorithm: str) -> dict[str, str] | None:
        """Checksums of a scan's files computed at the endpoint, or None if this backend cannot."""
        ...


def _named(path: str, scan: str, name: str | None) -> str:
    """A scan file's path under the name the scan is kept as at one end (None: its own)."""
    if name is None or name == scan:
        return path
    return name + path[len(scan) :]


TaskKind = Literal["copy", "delete"]
TaskState = Literal["queued", "active", "succeeded", "failed", "lost"]


@dataclass(frozen=True, slots=True)
class TransferItem:
    """One scan in a batch: its action, its files (with acquisition checksums)."""

    action_id: str
    scan: str
    files: tuple[ScanFile, ...]
    checksum_algorithm: str
    recursive: bool = False  # a directory scan
    scan_checksum: str | None = None  # the inventory's checksum of the whole scan
    # A copy may replace other bytes found at the target (a replace the planner gated); without
    # it, a target file with other bytes fails the item for a person.
    overwrite: bool = False
    # The scan's name at the target / at the source when it is not the scan's own path (a
    # versioned object on write-once tape: engine/tape_versions.py). `files` keep the scan's
    # own paths; a mover writes (reads) each one under the name instead.
    target_name: str | None = None
    source_name: str | None = None

    def source_path(self, path: str) -> str:
        """Where a file of the scan (by its own path) is read at the source."""
        return _named(path, self.scan, self.source_name)

    def target_path(self, path: str) -> str:
        """Where a file of the scan (by its own path) is written at the target."""
        return _named(path, self.scan, self.target_name)

    def whole_checksum(self) -> str | None:
        """The scan's acquisition checksum: as the inventory recorded it, else derived from the
        files the way `walk_inventory` derives it (a file scan's own checksum, or
        `scan_digest` over a directory's files)."""
        if self.scan_checksum is not None:
            return self.scan_checksum
        if self.recursive:
            return scan_digest(self.checksum_algorithm, self.files)
        return self.files[0].checksum if len(self.files) == 1 else None


@dataclass(frozen=True, slots=True)
class TaskRequest:
    kind: TaskKind
    source: str | None  # None for deletes
    target: str
    items: tuple[TransferItem, ...]
    submission_id: str
    label: str
    deadline: datetime | None = None


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One item's outcome. A delete also says which files it removed and what it left.

    For a delete, `removed` are the manifest paths gone by this task's doing; `already_absent`
    the manifest paths it found gone; `left_behind` everything still found beside the scan
    afterwards (foreign files). None means the mover cannot tell (the executor then lists).
    """

    action_id: str
    ok: bool
    error: str | None = None
    error_class: ErrorClass = ErrorClass.TRANSIENT
    evidence: Evidence | None = None
    removed: tuple[str, ...] | None = None
    already_absent: tuple[str, ...] | None = None
    left_behind: tuple[str, ...] | None = None
    # The item did nothing wrong: its task failed on another item, so it is planned again at
    # once (a new batch), without backoff.
    retry_now: bool = False


@dataclass(frozen=True, slots=True)
class ItemProgress:
    """How far a task has got with one of its scans, from the mover's per-file records.

    A lower bound while the task runs: a mover counts a file once it is done (Globus lists only
    the files it transferred, not those it found already in place).
    """

    action_id: str
    files_done: int
    bytes_done: int


@dataclass(frozen=True, slots=True)
class TaskStatus:
    task_id: str
    state: TaskState
    bytes_done: int = 0
    bytes_total: int = 0
    files_done: int = 0
    files_total: int = 0
    bytes_per_second: float = 0.0
    error: str | None = None
    error_class: ErrorClass = ErrorClass.TRANSIENT
    results: tuple[ItemResult, ...] = field(default_factory=tuple)
    # Per scan, when the mover can tell (empty: it cannot, or nothing is done yet).
    item_progress: tuple[ItemProgress, ...] = ()
    # A task still running but retrying a fault (Globus `nice_status`, e.g. PERMISSION_DENIED):
    # its code; `error` and `error_class` then describe it. A failed task: its fatal error's
    # code (e.g. CANCELED), when the mover knows it.
    fault: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed", "lost")


@runtime_checkable
class Mover(Protocol):
    """Runs batches of copies or deletes."""

    name: str
    max_items_per_task: int
    max_active_tasks: int
    finishes_locally: bool  # True: the work happens in this process (drained by --once)

    def new_submission_id(self) -> str:
        """A fresh id to persist before `submit` (Globus: `get_submission_id`)."""
        ...

    def submit(self, request: TaskRequest) -> str:
        """Start the task; idempotent on `request.submission_id`. Returns the task id."""
        ...

    def poll(self, task_id: str) -> TaskStatus:
        """Status and progress; a task this mover no longer knows is `lost`."""
        ...

    def find_task(self, request: TaskRequest) -> str | None:
        """The task id `request.submission_id` became, if the mover has one (None: it has none).

        Asked after a crash left a submission unanswered, before deciding whether to send it
        again. Raises if the mover cannot tell (then nothing may be assumed either way).
        """
        ...

    def knows(self, task_id: str) -> bool:
        """Can `poll` answer per scan for this task without being told its request? False for a
        task submitted by another process to a mover that must be told (Globus): the executor
        then rebuilds the request from the store and calls `track`."""
        ...

    def track(self, task_id: str, request: TaskRequest) -> None:
        """Be told which scans a task carries (a mover that never needs telling ignores it)."""
        ...

    def cancel(self, task_id: str) -> None:
        """Ask a task to stop (a finished or unknown task is left as it is)."""
        ...

    def keep_holds_in(self, book: HoldBook) -> None:
        """Keep the waits the service asked for (`Retry-After`) in `book`, so that they outlive
        this process (a mover whose service asks for none ignores it)."""
        ...

    def close(self, *, wait: bool = True) -> None:
        """Stop accepting work; with `wait=False`, work running in this process stops before
        its next file (a mover whose tasks run elsewhere has nothing to stop)."""
        ...

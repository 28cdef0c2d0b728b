"""Where a tape endpoint's jobs run: the one seam between bundling logic and the machine.

A tape endpoint (`kind = "tape"`) builds, verifies, lists and recalls bundles by running job
scripts that call `htar` and `hsi`. The bundling logic is the same everywhere; only the runner
differs: `local` runs the script here (the demo, tests, and sites with HPSS clients installed),
`sfapi` submits it to NERSC's `xfer` QOS through the Superfacility API.

Contract every runner keeps:
- `submit(name, script)` starts one job. `name` is deterministic (derived from the bundle) and is
  persisted by the caller *before* submitting; the returned job id right after. A runner never
  keeps state a restart would lose: after a crash the caller finds the job again by `find(name)`.
- `status(job_id)` reports the job's state; `JobState.terminal` and `JobState.ok` decide what the
  caller does. Only `COMPLETED` with exit code 0 is a success.
- `cancel(job_id)` ends a job bl931 gave up on (a stalled task, `engine/task_watch.py`); its
  outcome is still read and judged like any other.
- `command(argv)` runs one short command (e.g. `hsi ls`) and returns its exit code and output;
  it is used for reachability checks and for the last look before a prune.
Failures to reach the runner raise `EndpointUnavailable` (transient) rather than returning a
state that could be mistaken for the job's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from engine.retry_holds import HoldBook


class JobState(StrEnum):
    """Slurm job states, as `sacct`/the Superfacility API report them."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETING = "COMPLETING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    NODE_FAIL = "NODE_FAIL"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    PREEMPTED = "PREEMPTED"

    @property
    def terminal(self) -> bool:
        return self not in (JobState.PENDING, JobState.RUNNING, JobState.COMPLETING)


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One answer about one job."""

    job_id: str
    state: JobState
    exit_code: int | None = None
    output: str = ""

    @property
    def ok(self) -> bool:
        """A job counts as succeeded only when it COMPLETED *and* exited 0."""
        return self.state is JobState.COMPLETED and self.exit_code == 0


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The outcome of one short command run through the runner."""

    returncode: int
    stdout: str
    stderr: str = ""


@runtime_checkable
class TapeRunner(Protocol):
    """Runs a tape endpoint's job scripts (see the module docstring for the contract)."""

    name: str

    def submit(self, name: str, script: str) -> str:
        """Start a job running `script` (a bash script); return its job id."""
        ...

    def status(self, job_id: str) -> JobStatus:
        """The job's current state (and exit code and output once it ended)."""
        ...

    def find(self, name: str) -> str | None:
        """The id of a job submitted earlier under `name`, or None if there is none."""
        ...

    def command(self, argv: list[str]) -> CommandResult:
        """Run one short command (e.g. `["hsi", "ls", path]`) and return its result."""
        ...

    def cancel(self, job_id: str) -> None:
        """Ask for the job to be ended (it then ends CANCELLED and its bundle is not counted)."""
        ...

    def close(self) -> None:
        """Release connections; the runner is not used afterwards."""
        ...

    def keep_holds_in(self, book: HoldBook) -> None:
        """Keep the waits the remote API asked for (`Retry-After`) in `book`, and honour those
        an earlier process was asked for (`engine.retry_holds`); a local runner has none."""
        ...


class _HasRunner(Protocol):
    @property
    def runner(self) -> TapeRunner: ...


class RunnerHolds:
    """Mixin for a tape mover: its runner keeps the waits its API asked for in the store."""

    endpoint: _HasRunner

    def keep_holds_in(self, book: HoldBook) -> None:
        self.endpoint.runner.keep_holds_in(book)

"""The `sfapi` tape runner: job scripts run on Perlmutter's `xfer` QOS via NERSC's Superfacility API.

Built on the real `sfapi_client` (sync `Client`), with these choices of ours:
- one HTTP attempt per call: the library retries 429/502/503/504 and connection errors up to ten
  times with exponential waits (`_sync/client.py`, `MAX_RETRY`), blocking a pass for a minute and
  ignoring `Retry-After`. Here a failure becomes `EndpointUnavailable` (transient) at once and the
  engine's per-action backoff applies; a `Retry-After` is honoured by holding every call until it
  is over (nothing is sent meanwhile);
- a job's state is read with `sacct` (`compute.job(id, command=sacct)`), which also gives the exit
  code. `sfapi_client`'s `TERMINAL_STATES` (`_jobs.py`) lacks NODE_FAIL, BOOT_FAIL and DEADLINE,
  so `Job.complete()` never returns on them; it is not used. Every Slurm state is mapped
  explicitly (`_STATE`); a state that cannot be read is an error, never a success;
- `find(name)` asks `sacct --name` through the `utilities/command` endpoint (the jobs list of the
  API filters by id, user or partition only), looking back `find_days`; a failure to ask is an
  error, never "no such job" (which would let the caller submit a duplicate);
- credentials come from `tape_sfapi_settings.load_credentials`; the key is revealed only to the
  library's constructor and never appears in a log line, an exception or the state store.
"""

from __future__ import annotations

import logging
import math
import shlex
import time
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pydantic
import tenacity

from engine.clock import SYSTEM_CLOCK, Clock
from engine.errors import ConfigError, EndpointUnavailable, TerminalError
from engine.model import ErrorClass
from engine.retry_holds import Hold
from engine.storage.tape_runner import CommandResult, JobState, JobStatus
from engine.storage.tape_sfapi_settings import (
    SfapiCredentials,
    SfapiSettings,
    check_job_name,
    load_credentials,
    xfer_script,
)

if TYPE_CHECKING:
    from engine.config import Config
    from engine.retry_holds import HoldBook

with warnings.catch_warnings():
    # authlib warns that its httpx integration prefers `httpx2`; sfapi_client uses httpx.
    warnings.simplefilter("ignore")
    from authlib.integrations.base_client.errors import OAuthError
    from sfapi_client import Client
    from sfapi_client.compute import Compute
    from sfapi_client.exceptions import ClientKeyError, SfApiError
    from sfapi_client.jobs import JobCommand
    from sfapi_client.jobs import JobState as SfJobState

log = logging.getLogger(__name__)

# Every state `sfapi_client` models (`_jobs.py::JobState`, Slurm's squeue/sacct states) mapped
# to the runner protocol's. Held or requeued jobs are PENDING (they will run again or need
# someone); REVOKED (a federated sibling ran it elsewhere) counts as CANCELLED here.
_STATE: dict[SfJobState, JobState] = {
    SfJobState.PENDING: JobState.PENDING,
    SfJobState.RUNNING: JobState.RUNNING,
    SfJobState.COMPLETING: JobState.COMPLETING,
    SfJobState.COMPLETED: JobState.COMPLETED,
    SfJobState.FAILED: JobState.FAILED,
    SfJobState.CANCELLED: JobState.CANCELLED,
    SfJobState.TIMEOUT: JobState.TIMEOUT,
    SfJobState.NODE_FAIL: JobState.NODE_FAIL,
    SfJobState.BOOT_FAIL: JobState.BOOT_FAIL,
    SfJobState.DEADLINE: JobState.DEADLINE,
    SfJobState.OUT_OF_MEMORY: JobState.OUT_OF_MEMORY,
    SfJobState.PREEMPTED: JobState.PREEMPTED,
    SfJobState.CONFIGURING: JobState.RUNNING,
    SfJobState.RESIZING: JobState.RUNNING,
    SfJobState.SIGNALING: JobState.RUNNING,
    SfJobState.STAGE_OUT: JobState.COMPLETING,
    SfJobState.REQUEUED: JobState.PENDING,
    SfJobState.REQUEUE_FED: JobState.PENDING,
    SfJobState.REQUEUE_HOLD: JobState.PENDING,
    SfJobState.RESV_DEL_HOLD: JobState.PENDING,
    SfJobState.SPECIAL_EXIT: JobState.PENDING,
    SfJobState.SUSPENDED: JobState.PENDING,
    SfJobState.STOPPED: JobState.PENDING,
    SfJobState.REVOKED: JobState.CANCELLED,
}

_ONE_TRY = {"stop": tenacity.stop_after_attempt(1), "reraise": True}


class _OneTryClient(Client):
    """`sfapi_client.Client` making one attempt per request (see the module docstring)."""

    def get(self, url: str, params: dict[str, Any] | None = None) -> httpx.Response:
        return Client.get.retry_with(**_ONE_TRY)(self, url, params or {})

    def post(
        self, url: str, data: dict[str, Any] | None = None, json: dict[str, Any] | None = None
    ) -> httpx.Response:
        return Client.post.retry_with(**_ONE_TRY)(self, url, data, json)

    def delete(self, url: str) -> httpx.Response:
        return Client.delete.retry_with(**_ONE_TRY)(self, url)


class SfapiRunner:
    """Runs tape job scripts through the Superfacility API (see the module docstring).

    Args:
        endpoint: the tape endpoint's name (for messages and errors).
        settings: the endpoint's `[endpoints.<name>.sfapi]` table.
        credentials: the client id and private key (`load_credentials`).
        clock: decides when a `Retry-After` hold is over.
        sleep: waits between polls of an SFAPI task (tests pass a no-op).
    """

    name = "sfapi"

    def __init__(
        self,
        endpoint: str,
        settings: SfapiSettings,
        credentials: SfapiCredentials,
        *,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self._credentials = credentials
        self._clock = clock
        self._sleep = sleep
        self._client: Client | None = None
        self._compute: Compute | None = None
        self._hold_until: datetime | None = None
        self._book: HoldBook | None = None  # where the wait outlives this process

    # ---- the TapeRunner protocol ---------------------------------------------------------------

    def submit(self, name: str, script: str) -> str:
        """Submit `script` to the `xfer` QOS as job `name`; return Slurm's job id.

        A submit that raises may still have started a job (the answer was lost): the caller
        looks for it with `find(name)` before submitting again.
        """
        text = xfer_script(name, script, self.settings)
        job = self._call(f"submitting job {name}", lambda c: c.submit_job(text))
        job_id = str(job.jobid)
        log.info("%s: submitted SFAPI job %s as Slurm job %s", self.endpoint, name, job_id)
        return job_id

    def status(self, job_id: str) -> JobStatus:
        """The job's state from `sacct`, with its exit code and output once it ended."""
        what = f"reading the state of job {job_id}"
        job = self._call(what, lambda c: c.job(job_id, command=JobCommand.sacct))
        if job.state is None or job.state not in _STATE:
            raise EndpointUnavailable(self.endpoint, f"{what}: SFAPI gave no readable state")
        state = _STATE[job.state]
        if not state.terminal:
            return JobStatus(job_id, state)
        return JobStatus(job_id, state, _exit_code(job.exitcode), self._output(job_id))

    def find(self, name: str) -> str | None:
        """The newest job named `name` in the last `find_days` days (sacct), or None."""
        check_job_name(name)
        argv = [
            "sacct",
            f"--name={name}",
            f"--starttime=now-{self.settings.find_days}days",
            "-X",
            "-n",
            "-P",
            "--format=JobID,State",
        ]
        result = self.command(argv)
        if result.returncode != 0:
            raise EndpointUnavailable(
                self.endpoint,
                f"looking for job {name} (sacct) failed with exit {result.returncode}: "
                f"{result.stderr.strip()[:200]}",
            )
        ids = [line.split("|", 1)[0].strip() for line in result.stdout.splitlines()]
        numeric = [job_id for job_id in ids if job_id.isdigit()]
        return max(numeric, key=int) if numeric else None

    def command(self, argv: list[str]) -> CommandResult:
        """Run one short command on a login node (`utilities/command`) and wait for it."""
        line = " ".join(shlex.quote(arg) for arg in argv)
        what = f"running `{argv[0]}`" if argv else "running a command"
        task = self._call(what, lambda c: c.run_task(line))
        # Bounded by a number of polls (timeout / poll interval), not by reading a clock here.
        polls_left = max(
            1, math.ceil(self.settings.command_timeout_seconds / self.settings.poll_seconds)
        )
        while True:
            self._call(what, lambda _c: task.update())
            status = getattr(task.status, "value", task.status)
            if status == "COMPLETED":
                break
            if status in ("FAILED", "CANCELLED"):
                raise EndpointUnavailable(self.endpoint, f"{what}: the SFAPI task {status}")
            polls_left -= 1
            if polls_left <= 0:
                raise EndpointUnavailable(self.endpoint, f"{what}: no answer from SFAPI in time")
            self._sleep(self.settings.poll_seconds)
        result = task.result
        if result is None:
            raise EndpointUnavailable(self.endpoint, f"{what}: the SFAPI task has no result")
        code = result.exit_code
        if code is None:
            code = 0 if result.status == "ok" else 1
        return CommandResult(code, result.output or "", result.error or "")

    def cancel(self, job_id: str) -> None:
        """scancel through the API (`DELETE compute/jobs/<machine>/<id>`, as `Job.cancel`)."""
        if not job_id.isdigit():
            raise TerminalError(f"{self.endpoint}: {job_id!r} is not a Slurm job id")
        machine = self.settings.machine
        self._call(
            f"cancelling job {job_id}",
            lambda c: c.client.delete(f"compute/jobs/{machine}/{job_id}"),
        )
        log.warning("%s: asked SFAPI to cancel Slurm job %s", self.endpoint, job_id)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        self._compute = None

    def keep_holds_in(self, book: HoldBook) -> None:
        """SFAPI's `Retry-After` waits go in the state store (`engine.retry_holds`), so a new
        process (a restart, each `--once` pass) sends nothing before a wait asked of an earlier
        one is over."""
        self._book = book
        for hold in book.load():
            if hold.key == self._hold_key:
                self._hold_until = hold.until

    # ---- plumbing ------------------------------------------------------------------------------
    @property
    def _hold_key(self) -> str:
        return f"sfapi:{self.endpoint}"

    def _output(self, job_id: str) -> str:
        """The job's output file (its stdout and stderr: the `BL931 …` and `htar -tvf` lines
        the tape endpoint judges), or "" when the file is not there (verification then fails).

        A command endpoint that cannot be asked raises `EndpointUnavailable`: the job's outcome
        is then unknown, not failed, so the poll is repeated next pass. Judging it failed would
        bundle its scans again although the job may have made a good bundle (a duplicate).
        """
        result = self.command(["cat", self.settings.output_path(job_id)])
        if result.returncode != 0:
            log.warning(
                "%s: output of job %s not readable (exit %d): %s",
                self.endpoint,
                job_id,
                result.returncode,
                result.stderr.strip()[:200],
            )
            return ""
        return result.stdout

    def _connect(self) -> Compute:
        if self._compute is None:
            creds = self._credentials
            self._client = _OneTryClient(
                client_id=creds.client_id,
                secret=creds.private_key.reveal(),
                api_base_url=self.settings.api_base_url,
                token_url=self.settings.token_url,
            )
            compute = self._client.compute(self.settings.machine)
            # `check_auth` looks for `status` on the client, not the compute, so the library
            # never refuses a machine that is down: check it here.
            if getattr(compute.status, "value", compute.status) == "unavailable":
                raise EndpointUnavailable(
                    self.endpoint, f"{self.settings.machine} is unavailable: {compute.notes or ''}"
                )
            self._compute = compute
        return self._compute

    def _call(self, what: str, action: Callable[[Compute], Any]) -> Any:
        """Run one SFAPI action; every failure becomes an `EndpointUnavailable`."""
        now = self._clock.now()
        if self._hold_until is not None:
            if now < self._hold_until:
                left = (self._hold_until - now).total_seconds()
                raise EndpointUnavailable(
                    self.endpoint, f"{what}: SFAPI asked to wait (Retry-After), {left:.0f} s left"
                )
            self._hold_until = None
            if self._book is not None:
                self._book.drop(self._hold_key)
        try:
            return action(self._connect())
        except EndpointUnavailable:
            raise
        except Exception as exc:
            error = self._translate(what, exc)
            if error.error_class is not ErrorClass.TRANSIENT:
                self.close()  # a fresh client (and token) next time
            raise error from None

    def _translate(self, what: str, exc: Exception) -> EndpointUnavailable:
        human = ErrorClass.NEEDS_HUMAN
        if isinstance(exc, httpx.HTTPStatusError):
            code = exc.response.status_code
            if code in (401, 403):
                return EndpointUnavailable(
                    self.endpoint,
                    f"{what}: SFAPI refused the token (HTTP {code}); the client may have "
                    "expired: renew it in Iris",
                    error_class=human,
                )
            if code == 429 or code >= 500:
                self._note_retry_after(exc.response)
                return EndpointUnavailable(self.endpoint, f"{what}: SFAPI answered HTTP {code}")
            return EndpointUnavailable(
                self.endpoint, f"{what}: SFAPI answered HTTP {code}", error_class=human
            )
        if isinstance(exc, httpx.TransportError):
            return EndpointUnavailable(self.endpoint, f"{what}: {type(exc).__name__}")
        if isinstance(exc, OAuthError | ClientKeyError):
            error = getattr(exc, "error", None) or type(exc).__name__
            return EndpointUnavailable(
                self.endpoint,
                f"{what}: the SFAPI token was refused ({error}); the client may have expired "
                "or its key is wrong: renew it in Iris",
                error_class=human,
            )
        if isinstance(exc, SfApiError):
            message = str(getattr(exc, "message", "") or "")[:300]
            if "sbatch" in message.lower():  # the job itself was refused: a person must look
                return EndpointUnavailable(self.endpoint, f"{what}: {message}", error_class=human)
            # "Job not found" right after a submit is a known spurious answer (sfapi_client#93).
            return EndpointUnavailable(self.endpoint, f"{what}: {message}")
        if isinstance(exc, pydantic.ValidationError):
            return EndpointUnavailable(self.endpoint, f"{what}: SFAPI's answer was not readable")
        if isinstance(exc, ValueError):
            raise TerminalError(f"{self.endpoint}: {what}: {exc}") from None
        return EndpointUnavailable(self.endpoint, f"{what}: {type(exc).__name__}")

    def _note_retry_after(self, response: httpx.Response) -> None:
        try:
            seconds = float(response.headers.get("Retry-After", ""))
        except ValueError:
            return  # absent, or an HTTP date: the engine's backoff applies
        if seconds > 0:
            now = self._clock.now()
            self._hold_until = now + timedelta(seconds=seconds)
            if self._book is not None:
                self._book.put(Hold(self._hold_key, now, self._hold_until, "SFAPI calls"))
            log.warning("%s: SFAPI asked to wait %.0f s (Retry-After)", self.endpoint, seconds)


def build_runner(
    config: Config,
    name: str,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> SfapiRunner:
    """The runner of tape endpoint `name` (`runner = "sfapi"`), credentials loaded now.

    Raises:
        ConfigError: the endpoint has no `[endpoints.<name>.sfapi]` table, or its credentials
            are missing or unusable; names the key, never the key's content.
    """
    settings = config.endpoints[name].sfapi
    where = f"endpoints.{name}.sfapi"
    if settings is None:
        raise ConfigError('runner = "sfapi" needs this table (docs/hpss.md)', key=where)
    credentials = load_credentials(settings, environ=environ, where=where)
    return SfapiRunner(name, settings, credentials, clock=clock)


def _exit_code(exitcode: str | None) -> int | None:
    """Slurm's `exit:signal` as one number (128 + signal when killed), None if unreadable."""
    if not exitcode:
        return None
    code, _, signal = exitcode.partition(":")
    try:
        number, sig = int(code), int(signal or 0)
    except ValueError:
        return None
    return 128 + sig if sig and not number else number

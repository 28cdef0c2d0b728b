"""The `local` tape runner: job scripts run here with bash, `htar`/`hsi` from the shims.

`submit` runs the script to completion before it returns (a tape job here is a local tar, and
`--reconcile --once` must finish what it starts). Every job is a small JSON record in the
runner's job folder, written *before* bash starts and completed after it ends, so a restarted
process finds a job by its name (`find`) and reads its outcome (`status`); a record left
`RUNNING` by a process that died is reported `FAILED` (its bash died with it).

Job ids are `local-<n>`, numbered in the job folder (they survive a restart). PATH is prefixed
with the shim folder (or the endpoint's `tools` folder holding a real htar/hsi) and `HPSS_ROOT`
names the directory standing in for HPSS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import EndpointUnavailable
from engine.storage.tape_runner import CommandResult, JobState, JobStatus

if TYPE_CHECKING:
    from engine.retry_holds import HoldBook

SHIMS = Path(__file__).resolve().parent / "hpss_shims"
_TAIL = 20_000  # characters of a job's output kept


class LocalTapeRunner:
    """Runs tape job scripts with bash on this machine (see the module docstring)."""

    name = "local"

    def __init__(self, hpss_root: Path, jobs_dir: Path, tools: Path | None = None) -> None:
        self.hpss_root = hpss_root
        self.jobs_dir = jobs_dir
        self.tools = tools or SHIMS
        if tools is None and not os.access(SHIMS / "htar", os.X_OK):
            self.tools = self._wrappers()  # installed without the executable bit

    def _wrappers(self) -> Path:
        """`htar`/`hsi` scripts that run the shims with this interpreter."""
        folder = self.jobs_dir / "bin"
        folder.mkdir(parents=True, exist_ok=True)
        for tool in ("htar", "hsi"):
            path = folder / tool
            path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SHIMS / tool}" "$@"\n')
            path.chmod(0o755)
        return folder

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.tools}{os.pathsep}{env.get('PATH', '')}"
        env["HPSS_ROOT"] = str(self.hpss_root)
        return env

    def _record(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.json"

    def _write(self, job_id: str, record: dict[str, object]) -> None:
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.jobs_dir, prefix=".job-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
        os.replace(temp, self._record(job_id))

    def _next_id(self) -> str:
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        numbers = [
            int(p.stem.split("-", 1)[1])
            for p in self.jobs_dir.glob("local-*.json")
            if p.stem.split("-", 1)[1].isdigit()
        ]
        return f"local-{max(numbers, default=0) + 1}"

    def submit(self, name: str, script: str) -> str:
        if not self.hpss_root.is_dir():
            raise EndpointUnavailable("hpss", f"HPSS stand-in {self.hpss_root} is not a directory")
        job_id = self._next_id()
        self._write(job_id, {"name": name, "state": "RUNNING", "pid": os.getpid()})
        # From a file, not `bash -c`: a bundle of 10,000 members is a script larger than one
        # command-line argument may be (MAX_ARG_STRLEN, 128 KiB on Linux).
        script_path = self.jobs_dir / f"{job_id}.sh"
        script_path.write_text(script, "utf-8", errors="surrogateescape")
        done = subprocess.run(
            ["bash", str(script_path)],
            env=self._env(),
            capture_output=True,
            text=True,
            errors="surrogateescape",
            check=False,
        )
        output = (done.stdout + done.stderr)[-_TAIL:]
        state = "COMPLETED" if done.returncode == 0 else "FAILED"
        self._write(
            job_id, {"name": name, "state": state, "exit_code": done.returncode, "output": output}
        )
        return job_id

    def status(self, job_id: str) -> JobStatus:
        try:
            record = json.loads(self._record(job_id).read_text("utf-8"))
        except FileNotFoundError:
            return JobStatus(job_id, JobState.FAILED, None, "no such job")
        except (OSError, ValueError) as exc:
            raise EndpointUnavailable("hpss", f"job record {job_id} unreadable: {exc}") from exc
        state = JobState(record["state"])
        if state is JobState.RUNNING and record.get("pid") != os.getpid():
            # Its bash ran in a process that is gone: the job died with it.
            return JobStatus(job_id, JobState.FAILED, None, "the process running it died")
        return JobStatus(job_id, state, record.get("exit_code"), record.get("output", ""))

    def find(self, name: str) -> str | None:
        found = None
        for path in sorted(self.jobs_dir.glob("local-*.json"), key=lambda p: p.stat().st_mtime):
            try:
                if json.loads(path.read_text("utf-8")).get("name") == name:
                    found = path.stem
            except (OSError, ValueError):
                continue
        return found

    def command(self, argv: list[str]) -> CommandResult:
        try:
            done = subprocess.run(
                argv,
                env=self._env(),
                capture_output=True,
                text=True,
                errors="surrogateescape",
                timeout=600,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EndpointUnavailable("hpss", f"{argv[0]} failed to run: {exc}") from exc
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def cancel(self, job_id: str) -> None:
        return None  # a local job has ended by the time `submit` returns

    def close(self) -> None:
        return None

    def keep_holds_in(self, book: HoldBook) -> None:
        return None  # nothing here asks to wait

"""A fake NERSC Superfacility API (and its token endpoint) on 127.0.0.1, for the real `sfapi_client`.

The real `sfapi_client.Client` talks HTTP to this server, so tests exercise the library's own
token handling, task polling and job models. Submitted jobs really run: each job's script is run
with `bash` in its own temporary directory, with an extra PATH directory and environment the test
chooses (e.g. `htar`/`hsi` shims over a temporary "HPSS"). Jobs advance when their state is read,
never on a timer: the first `sacct` read sees PENDING, the second starts the script (RUNNING),
the third and later wait for it to end (unless `hold_jobs`) and see COMPLETED (exit 0) or FAILED
(nonzero exit), with `exitcode` as `exit:signal`.

Wire formats, from `sfapi_client` 0.6.0 (the library is the API's reference client):
- token: `POST /token`, form `grant_type=client_credentials` with a `private_key_jwt` client
  assertion (`_sync/client.py`: authlib `OAuth2Client` + `PrivateKeyJWT(token_url)`); the fake
  verifies the RS256 signature with the client's public key and `aud` = the token URL, and answers
  `{access_token, token_type, expires_in}`; a refused client gets RFC 6749 §5.2's 401
  `{"error": "invalid_client"}`;
- `GET status/{machine}` → the machine's status (`_models.AppRoutersStatusModelsStatus`),
  read by `Client.compute`;
- `POST compute/jobs/{machine}` (form `job`, `isPath`) → `{task_id, status: "OK"}`; the job id
  comes from polling `GET tasks/{id}`, whose `result` is a JSON *string* `{"status": "ok",
  "jobid": …}` or `{"status": "error", "error": …}` (`_sync/compute.py::submit_job`,
  `_models.Task`);
- `GET compute/jobs/{machine}?sacct=true&kwargs=jobid=…` → `{status: "OK", output: [rows]}`
  with sacct's lower-case column names (`_sync/jobs.py::_fetch_raw_state`,
  `_models/job_status_response_sacct.py`); `sacct=false` gives squeue rows of queued jobs only;
- `POST utilities/command/{machine}` (form `executable`) → `{task_id, status: "OK"}`; the task's
  result is `{"status": "ok"|"error", "output": stdout, "error": stderr, "exit_code": n}`
  (sfapi_client's live tests, `tests/test_compute.py::test_run_task_error`). A command whose
  first word is `sacct` is answered from the fake's job table (`--name`, `-P`, `--format`);
  others run with `bash -c` in the sandbox;
- task status values are lower case (`new`, `completed`, `failed`; `_models.TaskStatus`);
- errors: 401 for an unknown or revoked token (FastAPI's `{"detail": …}`), 429/5xx as set up,
  with `Retry-After` when given.

Fault knobs: `fail_next(n, status, retry_after=, route=)`, `next_job_ends(state, exit_code=,
run=)` (the next submitted job ends so, e.g. NODE_FAIL or COMPLETED with exit 3),
`refuse_client()` (the client expired: the token endpoint says invalid_client and issued tokens
are refused), `fail_commands(message)` (the command endpoint answers ERROR, e.g. HPSS down on
the login nodes), `lose_submit_answer()` (the job is created but the task poll answering its id
fails: a crash right after submit), `reject_submit(message)` (sbatch refuses the job),
`sacct_error` (sacct itself fails), `machine_status`, `hold_jobs`. `DELETE compute/jobs/{machine}/{id}`
cancels a job (it ends CANCELLED, its script killed). `calls` counts requests per route; `jobs` holds every job.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import subprocess
import tempfile
import threading
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

with warnings.catch_warnings():  # authlib asks for joserfc; its `jose` still verifies JWTs
    warnings.simplefilter("ignore")
    from authlib.jose import JoseError, jwt

API_PREFIX = "/api/v1.2"
TERMINAL = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "BOOT_FAIL",
    "DEADLINE",
    "OUT_OF_MEMORY",
    "PREEMPTED",
}


@dataclass
class FakeJob:
    """One Slurm job: its script, where it runs, and how far it got."""

    jobid: str
    name: str
    script: str
    workdir: Path
    state: str = "PENDING"
    exitcode: str = ""
    reads: int = 0
    forced: tuple[str, int, bool] | None = None  # (state, exit code, run the script first)
    process: subprocess.Popen[bytes] | None = None
    directives: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeTask:
    id: str
    kind: str  # "submit" | "command"
    payload: str
    status: str = "new"
    result: dict[str, Any] | None = None
    lose_answer: bool = False


class _Refused(Exception):
    def __init__(self, status: int, doc: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.doc, self.headers = status, doc, headers or {}


class FakeSfapi:
    """The fake service. Use as a context manager.

    Args:
        client_id: the client the token endpoint accepts.
        public_key_pem: that client's public key (it verifies the client assertion).
        extra_path: a directory put first on PATH for job scripts and commands.
        env: extra environment for job scripts and commands.
        output_dir: where job output files go (`--output` of the runner's scripts is honoured
            when it points inside this directory; else `<workdir>/slurm-<id>.out`).
    """

    def __init__(
        self,
        *,
        client_id: str,
        public_key_pem: str,
        extra_path: Path | None = None,
        env: dict[str, str] | None = None,
        machine: str = "perlmutter",
    ) -> None:
        self.client_id = client_id
        self.public_key_pem = public_key_pem
        self.extra_path = extra_path
        self.env = dict(env or {})
        self.machine = machine
        self.machine_status = "active"
        self.hold_jobs = False  # RUNNING jobs are not waited for: they end when their script does
        self.sandbox = Path(tempfile.mkdtemp(prefix="fake-sfapi-"))
        self.jobs: dict[str, FakeJob] = {}
        self.tasks: dict[str, FakeTask] = {}
        self.tokens: set[str] = set()
        self.issued: list[str] = []  # every access token ever issued (tests look for leaks)
        self.calls: Counter[str] = Counter()
        self.token_forms: list[dict[str, str]] = []
        self._next_jobid = 41_000_000
        self._faults: list[tuple[str | None, int, int | None]] = []  # (route, status, retry)
        self._job_outcomes: list[tuple[str, int, bool]] = []
        self._refused = False
        self._command_error: str | None = None
        self.sacct_error: str | None = None  # `sacct` exits 1 with this on stderr (slurmdbd down)
        self._lose_submit_answer = False
        self._reject_submit: str | None = None
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_base_url(self) -> str:
        return self.url + API_PREFIX

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    def start(self) -> FakeSfapi:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        return self

    def stop(self) -> None:
        for job in self.jobs.values():
            if job.process is not None and job.process.poll() is None:
                job.process.kill()
                job.process.wait()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSfapi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- knobs

    def fail_next(
        self, n: int, status: int, *, retry_after: int | None = None, route: str | None = None
    ) -> None:
        """The next `n` API requests (whose path contains `route`, if given) answer `status`."""
        with self._lock:
            self._faults.extend([(route, status, retry_after)] * n)

    def next_job_ends(self, state: str, *, exit_code: int = 0, run: bool = True) -> None:
        """The next submitted job ends in `state` with `exit_code` (after running its script,
        unless `run` is False: e.g. NODE_FAIL before it started)."""
        with self._lock:
            self._job_outcomes.append((state, exit_code, run))

    def refuse_client(self) -> None:
        """The client expired (Iris): no new token, and tokens already issued are refused."""
        with self._lock:
            self._refused = True
            self.tokens.clear()

    def fail_commands(self, message: str | None) -> None:
        """The command endpoint answers ERROR with `message` (None: it works again)."""
        self._command_error = message

    def lose_submit_answer(self) -> None:
        """The next submit creates its job, but the poll that would carry its id fails (500)."""
        self._lose_submit_answer = True

    def reject_submit(self, message: str) -> None:
        """sbatch refuses the next submission (the task ends with an error result)."""
        self._reject_submit = message

    def jobs_named(self, name: str) -> list[FakeJob]:
        return [job for job in self.jobs.values() if job.name == name]

    # ---------------------------------------------------------------- request handling

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], form: dict[str, str], auth: str
    ) -> tuple[int, Any, dict[str, str]]:
        if path == "/token":
            self.calls["token"] += 1
            return self._token(form)
        if not path.startswith(API_PREFIX + "/"):
            raise _Refused(404, {"detail": "Not Found"})
        route = path[len(API_PREFIX) + 1 :]
        with self._lock:
            self.calls[f"{method} {route.split('/')[0]}"] += 1
            for i, (match, status, retry) in enumerate(self._faults):
                if match is None or match in route:
                    del self._faults[i]
                    headers = {"Retry-After": str(retry)} if retry is not None else {}
                    raise _Refused(status, {"detail": f"fault {status}"}, headers)
        if route == f"status/{self.machine}":  # public: no token needed
            return 200, self._status(), {}
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            raise _Refused(401, {"detail": "Could not validate credentials"})
        if method == "POST" and route == f"compute/jobs/{self.machine}":
            return 200, self._new_task("submit", form.get("job", "")), {}
        if method == "GET" and route == f"compute/jobs/{self.machine}":
            return 200, self._job_rows(query), {}
        if method == "POST" and route == f"utilities/command/{self.machine}":
            if self._command_error is not None:
                return 200, {"task_id": "", "status": "ERROR", "error": self._command_error}, {}
            return 200, self._new_task("command", form.get("executable", "")), {}
        if method == "DELETE" and route.startswith(f"compute/jobs/{self.machine}/"):
            # scancel: sfapi_client's `Job.cancel` sends this and reads no body
            # (`_sync/jobs.py`); an unknown job id is a 404.
            return 200, self._cancel(route.rsplit("/", 1)[1]), {}
        if method == "GET" and route.startswith("tasks/"):
            return 200, self._poll_task(route.split("/", 1)[1]), {}
        raise _Refused(404, {"detail": "Not Found"})

    def _token(self, form: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        self.token_forms.append(dict(form))
        if form.get("grant_type") != "client_credentials":
            raise _Refused(400, {"error": "unsupported_grant_type"})
        invalid = _Refused(401, {"error": "invalid_client", "error_description": "Bad client"})
        if self._refused:
            raise invalid
        try:
            claims = jwt.decode(form.get("client_assertion", ""), self.public_key_pem)
            claims.validate()
        except (JoseError, ValueError):
            raise invalid from None
        if claims.get("iss") != self.client_id or claims.get("sub") != self.client_id:
            raise invalid
        if claims.get("aud") != self.token_url:
            raise invalid
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        self.issued.append(token)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 600}, {}

    def _status(self) -> dict[str, Any]:
        return {
            "name": self.machine,
            "full_name": self.machine.capitalize(),
            "description": f"System is {self.machine_status}",
            "system_type": "compute",
            "notes": [],
            "status": self.machine_status,
            "updated_at": "2026-01-01T00:00:00-08:00",
        }

    def _new_task(self, kind: str, payload: str) -> dict[str, Any]:
        task = FakeTask(uuid.uuid4().hex[:8], kind, payload)
        with self._lock:
            self.tasks[task.id] = task
        return {"task_id": task.id, "status": "OK", "error": None}

    def _poll_task(self, task_id: str) -> dict[str, Any]:
        with self._lock:
            task = self.tasks.get(task_id)
            if task is None:
                raise _Refused(404, {"detail": "Task not found"})
            if task.status == "new":
                task.status = "completed"
                task.result = self._run_submit(task) if task.kind == "submit" else None
                if task.kind == "submit" and task.lose_answer:
                    task.lose_answer = False
                    raise _Refused(500, {"detail": "Internal Server Error"})
            if task.result is None and task.kind == "command":
                task.result = self._run_command(task.payload)
            return {"id": task.id, "status": task.status, "result": json.dumps(task.result)}

    def _run_submit(self, task: FakeTask) -> dict[str, Any]:
        if self._reject_submit is not None:
            message, self._reject_submit = self._reject_submit, None
            return {"status": "error", "error": f"sbatch: error: {message}"}
        directives = _directives(task.payload)
        self._next_jobid += 1
        jobid = str(self._next_jobid)
        workdir = self.sandbox / f"job-{jobid}"
        workdir.mkdir()
        job = FakeJob(jobid, directives.get("job-name", "sbatch"), task.payload, workdir)
        job.directives = directives
        if self._job_outcomes:
            job.forced = self._job_outcomes.pop(0)
        self.jobs[jobid] = job
        if self._lose_submit_answer:
            self._lose_submit_answer = False
            task.lose_answer = True
        return {"status": "ok", "jobid": jobid}

    def _environ(self) -> dict[str, str]:
        import os

        env = {**os.environ, **self.env}
        if self.extra_path is not None:
            env["PATH"] = f"{self.extra_path}:{env.get('PATH', '')}"
        return env

    def _output_file(self, job: FakeJob) -> Path:
        wanted = job.directives.get("output", "").replace("%j", job.jobid)
        return Path(wanted) if wanted else job.workdir / f"slurm-{job.jobid}.out"

    def _advance(self, job: FakeJob) -> None:
        """One read of the job's state moves it along (see the module docstring)."""
        job.reads += 1
        if job.state in TERMINAL:
            return
        if job.reads == 1:
            return  # PENDING
        forced = job.forced
        if job.state == "PENDING":
            if forced is not None and not forced[2]:
                job.state, job.exitcode = forced[0], f"{forced[1]}:0"
                return
            script = job.workdir / "script.sh"
            script.write_text(job.script)
            out = self._output_file(job)
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("wb") as handle:
                job.process = subprocess.Popen(
                    ["bash", str(script)],
                    cwd=job.workdir,
                    env=self._environ(),
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                )
            job.state = "RUNNING"
            return
        assert job.process is not None
        if not self.hold_jobs:
            job.process.wait(timeout=60)
        code = job.process.poll()
        if code is None:
            return
        if forced is not None:
            job.state, job.exitcode = forced[0], f"{forced[1]}:0"
        else:  # Slurm: a batch script exiting nonzero ends the job FAILED
            job.state, job.exitcode = ("COMPLETED" if code == 0 else "FAILED"), f"{code}:0"

    def _cancel(self, jobid: str) -> dict[str, Any]:
        with self._lock:
            job = self.jobs.get(jobid)
            if job is None:
                raise _Refused(404, {"detail": f"Job {jobid} not found"})
            self.calls["scancel"] += 1
            if job.state not in TERMINAL:
                if job.process is not None and job.process.poll() is None:
                    job.process.kill()
                    job.process.wait()
                job.state, job.exitcode = "CANCELLED", "0:15"
        return {"status": "OK", "output": "", "error": None}

    def _job_rows(self, query: dict[str, list[str]]) -> dict[str, Any]:
        sacct = query.get("sacct", ["false"])[-1].lower() == "true"
        wanted: set[str] | None = None
        for kwarg in query.get("kwargs", []):
            key, _, value = kwarg.partition("=")
            if key == "jobid":
                wanted = set(value.split(","))
        rows = []
        with self._lock:
            for job in self.jobs.values():
                if wanted is not None and job.jobid not in wanted:
                    continue
                self._advance(job)
                if sacct:
                    rows.append(
                        {
                            "jobid": job.jobid,
                            "jobname": job.name,
                            "state": job.state,
                            "exitcode": job.exitcode or "0:0",
                            "qos": job.directives.get("qos", ""),
                        }
                    )
                elif job.state not in TERMINAL:  # squeue shows queued and running jobs only
                    rows.append({"jobid": job.jobid, "name": job.name, "state": job.state})
        return {"status": "OK", "output": rows, "error": None}

    def _run_command(self, executable: str) -> dict[str, Any]:
        argv = shlex.split(executable)
        if argv and argv[0] == "sacct":
            return self._sacct(argv[1:])
        done = subprocess.run(
            ["bash", "-c", executable],
            cwd=self.sandbox,
            env=self._environ(),
            capture_output=True,
            timeout=60,
        )
        return {
            "status": "ok" if done.returncode == 0 else "error",
            "output": done.stdout.decode(errors="replace"),
            "error": done.stderr.decode(errors="replace"),
            "exit_code": done.returncode,
        }

    def _sacct(self, args: list[str]) -> dict[str, Any]:
        """`sacct --name=N -X -n -P --format=JobID,State` over the fake's jobs."""
        if self.sacct_error is not None:
            return {"status": "error", "output": "", "error": self.sacct_error, "exit_code": 1}
        name = next((a.split("=", 1)[1] for a in args if a.startswith("--name=")), None)
        fields = next(
            (a.split("=", 1)[1] for a in args if a.startswith("--format=")), "JobID,State"
        )
        lines = []
        for job in self.jobs.values():
            if name is not None and job.name not in name.split(","):
                continue
            values = {"jobid": job.jobid, "state": job.state, "jobname": job.name}
            lines.append("|".join(values.get(f.lower(), "") for f in fields.split(",")))
        output = "".join(line + "\n" for line in lines)
        return {"status": "ok", "output": output, "error": "", "exit_code": 0}


def _directives(script: str) -> dict[str, str]:
    """The script's `#SBATCH --long=value` directives (Slurm reads them up to the first command)."""
    found: dict[str, str] = {}
    for line in script.splitlines()[1:]:
        text = line.strip()
        if not text.startswith("#"):
            if text:
                break
            continue
        match = re.match(r"#SBATCH\s+--([\w-]+)=(\S+)", text)
        if match:
            found[match.group(1)] = match.group(2)
    return found


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSfapi
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()} if raw else {}
        headers: dict[str, str] = {}
        try:
            status, doc, headers = self.fake.handle(
                method, parts.path, query, form, self.headers.get("Authorization", "")
            )
        except _Refused as exc:
            status, doc, headers = exc.status, exc.doc, exc.headers
        payload = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

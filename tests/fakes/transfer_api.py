"""A fake Globus Transfer API (and token endpoint) served on 127.0.0.1, for the real globus-sdk.

The real `globus_sdk.TransferClient` and `globus_sdk.ClientApp` talk HTTP to this server, so
tests exercise the SDK's own request building, pagination, retries and error parsing. Each
collection maps to a temporary directory: a transfer task really copies files (checking
`external_checksum`s when `verify_checksum` is set, preserving mtimes) and a delete task
really removes them. Tasks advance when polled (`get_task`), never on a timer, so tests are
deterministic and need no sleeps.

It reproduces the parts of Transfer's behaviour that bl931 relies on (the Transfer docs' "Task
Behavior" page, docs.globus.org/api/transfer/task_behavior, and globus-sdk 4 docstrings):
- `submission_id` de-duplication: the same id returns the same task with code "Duplicate";
- `operation/ls` with `limit`/`offset` paging, capped at `max_ls_entries` per call, a `total`
  so a client can tell a partial answer from a complete one, and `filter` on `name`/`type`;
  every call re-reads the whole directory (`ls_entries_read` counts it);
- ConsentRequired (403 with `required_scopes`) for a GCSv5 mapped collection when the token
  was issued without that collection's `data_access` dependency;
- queuing: 3 transfer and 3 delete tasks per identity run at once, the rest stay ACTIVE with
  `nice_status` "Queued" and make no progress;
- `skip_source_errors` skips only source-side PERMISSION_DENIED, FILE_NOT_FOUND and
  AMBIGUOUS_PATH (into `task/<id>/skipped_errors`); an `external_checksum` mismatch fails the
  whole task; a destination checksum mismatch (VERIFY_CHECKSUM) is retried; any other fault
  keeps the task ACTIVE and retrying with `nice_status` naming it. Every fault is an event in
  `task/<id>/event_list`;
- deadlines: a transfer without one gets 24 h, pushed to 72 h after its latest progress; a
  user deadline or a delete's (24 h) is fixed; a task past its deadline ends FAILED/EXPIRED;
- 429/503 answers carry `Retry-After`;
- delete tasks remove exactly their `delete_item` paths: a folder only with `recursive`,
  a missing path is skipped with `ignore_missing` and a fault without it;
- `task_list` with the `type`, `status`, `task_id` and `label` filters (`~` pattern, `=` exact).

Fault knobs: `fail_next(route, n, status, retry_after)`, `deny_consent(collection)`,
`unmap_identity(collection)`, `fault_collection(collection, code)` (tasks touching it stay ACTIVE
with that `nice_status`), `ls_partial`, `fail_next_task(...)` (optionally part-way, e.g. a
delete task that removed two scans and then ended FAILED with PERMISSION_DENIED),
`stall_next_task(...)`, `corrupt_next_copy` / `corrupt_copies`, `finish(task_id)` (a task runs to its end
unpolled), `advance_clock(hours=...)` (the service's time passes: deadlines fall behind it), and
`calls` counts requests per route.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"
LS_MAX = 100_000  # the real service's ceiling per listing call
# Task Behavior, "Queuing": "The Transfer backend will only work on 3 transfer tasks and 3 delete
# tasks per user at a time. Additional tasks will be queued".
TASKS_AT_ONCE = 3
# Task Behavior, "Skippable Errors": with `skip_source_errors`, paths hitting these errors "on the
# source collection" are skipped; nothing else is.
SKIPPABLE = ("PERMISSION_DENIED", "FILE_NOT_FOUND", "AMBIGUOUS_PATH")
# A destination checksum mismatch is retried by Transfer; the fake gives up (the task FAILs with
# VERIFY_CHECKSUM) after this many attempts of one file.
VERIFY_ATTEMPTS = 3
_ALGORITHMS = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}


def data_access_scope(collection: str) -> str:
    return f"https://auth.globus.org/scopes/{collection}/data_access"


@dataclass
class FakeCollection:
    """One collection: its id, the directory behind its path `/`, and its kind."""

    id: str
    root: Path
    display_name: str
    entity_type: str = "GCSv5_mapped_collection"
    high_assurance: bool = False

    @property
    def needs_data_access(self) -> bool:
        return self.entity_type == "GCSv5_mapped_collection" and not self.high_assurance


@dataclass
class FakeTask:
    """A submitted transfer or delete task and how far it has got."""

    task_id: str
    kind: str  # "TRANSFER" | "DELETE"
    body: dict[str, Any]
    pending: list[dict[str, Any]]
    files: int
    label: str | None
    request_time: str
    deadline: str | None
    status: str = "ACTIVE"
    nice_status: str | None = "Queued"
    fatal_error: dict[str, str] | None = None
    completion_time: str | None = None
    files_transferred: int = 0
    files_skipped: int = 0
    bytes_transferred: int = 0
    bytes_checksummed: int = 0
    successful: list[dict[str, Any]] = field(default_factory=list)
    skipped_errors: list[dict[str, Any]] = field(default_factory=list)
    forced_outcome: dict[str, Any] | None = None
    deleted: list[str] = field(default_factory=list)  # paths a delete task removed
    events: list[dict[str, Any]] = field(default_factory=list)  # newest last
    user_deadline: bool = False  # the request carried a deadline (never extended)
    verify_failures: Counter[str] = field(default_factory=Counter)


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.doc = {"code": code, "message": message, "request_id": uuid.uuid4().hex[:9], **extra}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _mtime_text(mtime: float) -> str:
    return datetime.fromtimestamp(int(mtime), UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")


def _file_checksum(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FakeTransferAPI:
    """The fake service: state, knobs and the HTTP server. Use as a context manager.

    Args:
        client_id: the only client the token endpoint accepts.
        client_secret: its secret (the fake never echoes it).
        files_per_poll: how many files a task processes per `get_task` (None: all at once).
        page_size: entries per page of `successful_transfers` / `skipped_errors`.
        clock: the service's time (request, completion and event times, deadlines); tests
            pass a `FakeClock`, default the system's.
    """

    def __init__(
        self,
        *,
        client_id: str = "11111111-2222-3333-4444-555555555555",
        client_secret: str = "fake-client-secret",
        files_per_poll: int | None = None,
        page_size: int = 100,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._base_clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        # How far the service's clock runs ahead of `clock` (`advance_clock`): a test that
        # drives bl931 through its CLI (the system's clock) lets the service's time pass so,
        # never by sleeping.
        self.clock_ahead = timedelta(0)
        self.client_id = client_id
        self.client_secret = client_secret
        self.files_per_poll = files_per_poll
        self.page_size = page_size
        self.max_ls_entries = LS_MAX
        self.ls_partial = False  # ls answers short of its `total` (a truncated answer)
        self.corrupt_next_copy = False  # the next copied file's bytes differ from the source
        self.corrupt_copies = 0  # so many further copies arrive corrupted (retries included)
        self.ls_entries_read = 0  # directory entries the service read to answer `ls` calls
        # (collection, path) -> `operation_ls` calls answered for it (pages included).
        self.ls_paths: Counter[tuple[str, str]] = Counter()
        # This many cancels are accepted without stopping their task at once (bl931 must not
        # take a cancel request for the task's end).
        self.cancels_linger = 0
        self.collections: dict[str, FakeCollection] = {}
        self.tasks: dict[str, FakeTask] = {}
        self.submissions: dict[str, str] = {}
        self.tokens: dict[str, str] = {}  # access token -> scope string requested
        self.token_requests: list[str] = []
        self.calls: Counter[str] = Counter()
        self._faults: dict[str, list[tuple[int, str, int]]] = {}
        self._collection_faults: dict[str, tuple[str, str]] = {}
        self._consent_denied: set[str] = set()
        self._unmapped: set[str] = set()
        # Collections whose storage refuses writes to this client (a read-only mount, an ACL
        # granting read only): `operation_mkdir` is refused there.
        self.read_only: set[str] = set()
        self._next_task_outcomes: list[dict[str, Any]] = []
        self._ls_hooks: list[list[Any]] = []  # [collection, path, listings to skip, action]
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def clock(self) -> datetime:
        """The service's time: request, completion and event times, deadlines."""
        return self._base_clock() + self.clock_ahead

    def advance_clock(self, **delta: float) -> None:
        """Let the service's time pass (`hours=2`): a task whose deadline is now behind it
        ends FAILED/EXPIRED at its next poll, as Transfer ends it (Task Events)."""
        with self._lock:
            self.clock_ahead += timedelta(**delta)

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def environ(self) -> dict[str, str]:
        """Environment for `build_globus`: credentials and base URLs pointing here."""
        return {
            "GLOBUS_CLIENT_ID": self.client_id,
            "GLOBUS_CLIENT_SECRET": self.client_secret,
            "GLOBUS_SDK_SERVICE_URL_TRANSFER": self.url + "/",
            "GLOBUS_SDK_SERVICE_URL_AUTH": self.url + "/",
        }

    def start(self) -> FakeTransferAPI:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeTransferAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- setup and knobs

    def add_collection(
        self,
        root: Path,
        *,
        collection_id: str | None = None,
        display_name: str = "fake collection",
        entity_type: str = "GCSv5_mapped_collection",
        high_assurance: bool = False,
    ) -> str:
        """Serve `root` as a collection; returns its id."""
        cid = collection_id or str(uuid.uuid4())
        root.mkdir(parents=True, exist_ok=True)
        self.collections[cid] = FakeCollection(cid, root, display_name, entity_type, high_assurance)
        return cid

    def fail_next(self, route: str, n: int = 1, status: int = 503, retry_after: int = 0) -> None:
        """The next `n` requests to `route` answer `status`; a 429 or 503 carries
        `Retry-After: retry_after` (seconds), as Transfer's throttling answers do."""
        code = {429: "RequestThrottled", 503: "ServiceUnavailable"}.get(status, "ServerError")
        with self._lock:
            self._faults.setdefault(route, []).extend([(status, code, retry_after)] * n)

    def fault_collection(
        self, collection: str, code: str = "PERMISSION_DENIED", description: str = ""
    ) -> None:
        """Every task reading or writing `collection` hits `code` and keeps retrying.

        Task Behavior, "Errors": Transfer "categorizes the error, emits an event to the task's
        event list" and, unless the error is skippable or fatal, retries: the task stays ACTIVE
        and its `nice_status` names the error (a queued task shows "error information" instead
        of "Queued" when it hit an error within the past 15 minutes). `clear_collection_fault`
        lets such tasks go on.
        """
        with self._lock:
            self._collection_faults[collection] = (code, description or code.lower())

    def clear_collection_fault(self, collection: str) -> None:
        with self._lock:
            self._collection_faults.pop(collection, None)

    def clear_faults(self, *, tasks: bool = False) -> None:
        """Drop queued route failures (`fail_next`); with `tasks`, also the armed task outcomes
        (`fail_next_task`, `stall_next_task`) and a pending `corrupt_next_copy`."""
        with self._lock:
            self._faults.clear()
            self._collection_faults.clear()
            if tasks:
                self._next_task_outcomes.clear()
                self.corrupt_next_copy = False
                self.corrupt_copies = 0

    def deny_consent(self, collection: str) -> None:
        """Every operation on `collection` answers 403 ConsentRequired, whatever the token."""
        self._consent_denied.add(collection)

    def unmap_identity(self, collection: str, *, unmapped: bool = True) -> None:
        """The collection has no identity mapping for the client (403 PermissionDenied);
        `unmapped=False` restores the mapping."""
        if unmapped:
            self._unmapped.add(collection)
        else:
            self._unmapped.discard(collection)

    def fail_next_task(
        self,
        nice_status: str = "PERMISSION_DENIED",
        description: str = "permission denied",
        *,
        after_items: int = 0,
        kind: str | None = None,
    ) -> None:
        """The next submitted task (of `kind`, "TRANSFER" or "DELETE", if given) ends FAILED
        with the fatal error `nice_status`, after doing its first `after_items` items.

        With `after_items`, a delete task really removes those paths first: a task that
        fails part-way leaves its earlier items done, and Transfer's answer does not say
        which (a finished task's document carries only counters and `fatal_error`).
        """
        self._next_task_outcomes.append(
            {
                "status": "FAILED",
                "nice_status": nice_status,
                "description": description,
                "after": after_items,
                "kind": kind,
            }
        )

    def stall_next_task(self, nice_status: str = "ENDPOINT_ERROR") -> None:
        """The next submitted task sits INACTIVE (e.g. an endpoint down or expired credentials)."""
        self._next_task_outcomes.append(
            {"status": "INACTIVE", "nice_status": nice_status, "after": 0, "kind": None}
        )

    def finish(self, task_id: str) -> None:
        """Run a task to its end now, as Transfer does while nobody polls it."""
        with self._lock:
            task = self.tasks[task_id]
            for _ in range(len(task.pending) + VERIFY_ATTEMPTS + 1):  # a stall stays as it is
                self._advance(task, queued=False)

    def step(self, task_id: str, files: int = 1) -> None:
        """Let a task do its next `files` items now, as Transfer does between two polls."""
        with self._lock:
            task = self.tasks[task_id]
            saved, self.files_per_poll = self.files_per_poll, files
            try:
                self._advance(task)
            finally:
                self.files_per_poll = saved

    def before_ls(
        self, collection: str, path: str, action: Callable[[], None], *, skip: int = 0
    ) -> None:
        """Run `action` once, right before answering an `operation_ls` of `path` on
        `collection`, after `skip` such listings were answered untouched (the world changing
        between two listings of one pass: the observation's and the last look's)."""
        with self._lock:
            self._ls_hooks.append([collection, path.rstrip("/") or "/", skip, action])

    def _run_ls_hooks(self, collection: str, path: str) -> None:
        due: list[Callable[[], None]] = []
        with self._lock:
            for hook in list(self._ls_hooks):
                if (hook[0], hook[1]) != (collection, path.rstrip("/") or "/"):
                    continue
                if hook[2] > 0:
                    hook[2] -= 1
                    continue
                self._ls_hooks.remove(hook)
                due.append(hook[3])
        for action in due:
            action()

    def expire_tokens(self) -> None:
        """Invalidate every issued token (the SDK must fetch a new one)."""
        with self._lock:
            self.tokens.clear()

    def path_of(self, collection: str, path: str) -> Path:
        """The local file behind a collection path (refuses anything escaping the root)."""
        coll = self.collections[collection]
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise _ApiError(400, "ClientError.BadRequest", f"bad path {path!r}")
        return coll.root.joinpath(*parts)

    # ---------------------------------------------------------------- request handling

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: dict[str, Any] | None,
        headers: dict[str, str],
        form: dict[str, str],
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        route, args = _route(method, path)
        with self._lock:
            self.calls[route] += 1
            pending = self._faults.get(route)
            if pending:
                status, code, retry_after = pending.pop(0)
                extra = {"Retry-After": str(retry_after)} if status in (429, 503) else {}
                return status, {"code": code, "message": f"fake {status}"}, extra
        if route == "token":
            return 200, self._token(headers, form), {}
        if route == "unknown":
            raise _ApiError(404, "ClientError.NotFound", f"no route {method} {path}")
        token = headers.get("authorization", "").removeprefix("Bearer ").strip()
        with self._lock:
            scope = self.tokens.get(token)
        if scope is None:
            raise _ApiError(401, "AuthenticationFailed", "Token is not active")
        handler = getattr(self, f"_route_{route}")
        return 200, handler(scope, query, body, *args), {}

    def _token(self, headers: dict[str, str], form: dict[str, str]) -> dict[str, Any]:
        basic = headers.get("authorization", "").removeprefix("Basic ").strip()
        try:
            cid, _, secret = base64.b64decode(basic).decode().partition(":")
        except ValueError:
            cid, secret = "", ""
        if cid != self.client_id or secret != self.client_secret:
            raise _ApiError(401, "UNAUTHORIZED", "invalid_client", error="invalid_client")
        requested = form.get("scope", "")
        token = "fake-token-" + uuid.uuid4().hex
        with self._lock:
            self.tokens[token] = requested
            self.token_requests.append(requested)
        return {
            "access_token": token,
            "expires_in": 172800,
            "resource_server": "transfer.api.globus.org",
            "scope": TRANSFER_SCOPE,
            "token_type": "Bearer",
            "other_tokens": [],
        }

    def _check_access(self, scope: str, collection: str) -> FakeCollection:
        coll = self.collections.get(collection)
        if coll is None:
            raise _ApiError(404, "EndpointNotFound", f"No such collection {collection}")
        if collection in self._unmapped:
            raise _ApiError(
                403,
                "PermissionDenied",
                f"No identity mapping for {self.client_id}@clients.auth.globus.org on "
                f"collection {collection}",
            )
        if collection in self._consent_denied or (
            coll.needs_data_access and data_access_scope(collection) not in scope
        ):
            raise _ApiError(
                403,
                "ConsentRequired",
                "Missing required data_access consent",
                required_scopes=[f"{TRANSFER_SCOPE}[*{data_access_scope(collection)}]"],
                authorization_parameters={
                    "session_message": "Missing required data_access consent",
                    "required_scopes": [f"{TRANSFER_SCOPE}[*{data_access_scope(collection)}]"],
                },
            )
        return coll

    # ---------------------------------------------------------------- routes

    def _route_submission_id(self, scope: str, query: dict[str, str], body: Any) -> dict[str, Any]:
        return {"DATA_TYPE": "submission_id", "value": str(uuid.uuid4())}

    def _route_endpoint(
        self, scope: str, query: dict[str, str], body: Any, cid: str
    ) -> dict[str, Any]:
        coll = self.collections.get(cid)
        if coll is None:
            raise _ApiError(404, "EndpointNotFound", f"No such collection {cid}")
        return {
            "DATA_TYPE": "endpoint",
            "id": cid,
            "display_name": coll.display_name,
            "entity_type": coll.entity_type,
            "high_assurance": coll.high_assurance,
            "gcs_version": "5.4.80",
        }

    def _route_ls(self, scope: str, query: dict[str, str], body: Any, cid: str) -> dict[str, Any]:
        coll = self._check_access(scope, cid)
        path = query.get("path", "/")
        target = self.path_of(coll.id, path)
        self._run_ls_hooks(cid, path)
        if not target.is_dir():
            raise _ApiError(
                404, "ClientError.NotFound", f"Path not found, Error (list) {path}: No such file"
            )
        limit = min(int(query.get("limit", LS_MAX)), self.max_ls_entries)
        offset = int(query.get("offset", 0))
        names = sorted(os.listdir(target))
        # Offset paging gives the service no cursor: it reads the whole directory for every
        # page (see the project's notes on Transfer's `operation_ls`).
        with self._lock:
            self.ls_entries_read += len(names)
            self.ls_paths[(cid, path.rstrip("/") or "/")] += 1
        show_hidden = query.get("show_hidden", "1") != "0"
        if not show_hidden:
            names = [n for n in names if not n.startswith(".")]
        for clause in (c for c in query.get("filter", "").split("/") if c):
            names = [n for n in names if _ls_filter_matches(target / n, clause)]
        page = names[offset : offset + limit]
        if self.ls_partial:
            page = page[: len(page) // 2]
        return {
            "DATA_TYPE": "file_list",
            "DATA": [_entry(target / name) for name in page],
            "path": path if path.endswith("/") else path + "/",
            "absolute_path": path,
            "endpoint": cid,
            "length": len(page),
            "total": len(names),
            "offset": offset,
            "limit": limit,
            "rename_supported": True,
            "symlink_supported": False,
        }

    def _route_stat(self, scope: str, query: dict[str, str], body: Any, cid: str) -> dict[str, Any]:
        coll = self._check_access(scope, cid)
        path = query.get("path", "/")
        target = self.path_of(coll.id, path)
        if not target.exists():
            raise _ApiError(404, "NotFound", f"Path not found {path}: No such file or directory")
        return _entry(target)

    def _route_mkdir(
        self, scope: str, query: dict[str, str], body: Any, cid: str
    ) -> dict[str, Any]:
        """`POST /operation/endpoint/<id>/mkdir` with `{"DATA_TYPE": "mkdir", "path": …}`.

        Sources: globus-sdk `TransferClient.operation_mkdir` (the route and body) and the
        Transfer docs' "Make Directory" (answer `mkdir_result`, code `DirectoryCreated`; a path
        that exists: 502 `ExternalError.MkdirFailed.Exists`, the code globus-cli's
        `mkdir --exist-ok` tests for). A path the client may not write is refused with the
        403 `PermissionDenied` this fake answers for other access refusals; bl931 treats any
        refusal as "not writable" and prints its code and message.
        """
        coll = self._check_access(scope, cid)
        path = str((body or {}).get("path", ""))
        target = self.path_of(coll.id, path)
        if cid in self.read_only:
            raise _ApiError(403, "PermissionDenied", f"Permission denied: mkdir {path}")
        if target.exists():
            raise _ApiError(502, "ExternalError.MkdirFailed.Exists", f"Path already exists {path}")
        if not target.parent.is_dir():
            raise _ApiError(
                502, "ExternalError.MkdirFailed.NotFound", f"Parent of {path} does not exist"
            )
        target.mkdir()
        return {
            "DATA_TYPE": "mkdir_result",
            "code": "DirectoryCreated",
            "message": "The directory was created successfully",
            "request_id": uuid.uuid4().hex[:9],
            "resource": f"/operation/endpoint/{cid}/mkdir",
        }

    def _route_transfer(self, scope: str, query: dict[str, str], body: Any) -> dict[str, Any]:
        src, dst = body["source_endpoint"], body["destination_endpoint"]
        self._check_access(scope, src)
        self._check_access(scope, dst)
        items = [i for i in body.get("DATA", []) if i.get("DATA_TYPE") == "transfer_item"]
        return self._accept("TRANSFER", body, items)

    def _route_delete(self, scope: str, query: dict[str, str], body: Any) -> dict[str, Any]:
        self._check_access(scope, body["endpoint"])
        items = [i for i in body.get("DATA", []) if i.get("DATA_TYPE") == "delete_item"]
        return self._accept("DELETE", body, items)

    def _accept(
        self, kind: str, body: dict[str, Any], items: list[dict[str, Any]]
    ) -> dict[str, Any]:
        sid = body.get("submission_id")
        if not sid:
            raise _ApiError(400, "ClientError.BadRequest", "submission_id is required")
        if not items:
            raise _ApiError(400, "ClientError.BadRequest", "A task needs at least one item")
        with self._lock:
            if sid in self.submissions:
                return {
                    "DATA_TYPE": f"{kind.lower()}_result",
                    "code": "Duplicate",
                    "message": "A task with that submission id was already accepted",
                    "task_id": self.submissions[sid],
                    "submission_id": sid,
                    "request_id": uuid.uuid4().hex[:9],
                    "resource": f"/{kind.lower()}",
                }
            task_id = str(uuid.uuid4())
            task = FakeTask(
                task_id=task_id,
                kind=kind,
                body=body,
                pending=list(items),
                files=len(items),
                label=body.get("label"),
                request_time=_iso(self.clock()),
                deadline=_iso(self._deadline_of(kind, body)),
                user_deadline=bool(body.get("deadline")),
            )
            for index, outcome in enumerate(self._next_task_outcomes):
                if outcome["kind"] in (None, kind):
                    task.forced_outcome = self._next_task_outcomes.pop(index)
                    break
            self.tasks[task_id] = task
            self.submissions[sid] = task_id
        return {
            "DATA_TYPE": f"{kind.lower()}_result",
            "code": "Accepted",
            "message": "The transfer has been accepted and a task has been created and queued "
            "for execution",
            "task_id": task_id,
            "submission_id": sid,
            "request_id": uuid.uuid4().hex[:9],
            "resource": f"/{kind.lower()}",
        }

    def _deadline_of(self, kind: str, body: dict[str, Any]) -> datetime:
        """Task Behavior, "Deadlines": a user deadline is kept as given; otherwise "The deadline
        starts at 24 hours after submission" (transfers: extended while they progress; "Delete
        tasks default to 24 hours and do not have their deadlines automatically extended")."""
        given = body.get("deadline")
        if given:
            parsed = datetime.fromisoformat(str(given).replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        return self.clock() + timedelta(hours=24)

    def _route_task(self, scope: str, query: dict[str, str], body: Any, tid: str) -> dict[str, Any]:
        task = self._task(tid)
        with self._lock:
            self._advance(task)
            return _task_doc(task, self.clock())

    def _route_event_list(
        self, scope: str, query: dict[str, str], body: Any, tid: str
    ) -> dict[str, Any]:
        """`GET /task/<id>/event_list`, newest first, offset paging (globus-sdk
        `TransferClient.task_event_list`: "List events (for example, faults and errors) for a
        given Task")."""
        task = self._task(tid)
        with self._lock:
            events = list(reversed(task.events))
        offset = int(query.get("offset", 0))
        limit = min(int(query.get("limit", 10)), 1000)
        page = events[offset : offset + limit]
        return {
            "DATA_TYPE": "event_list",
            "DATA": page,
            "length": len(page),
            "limit": limit,
            "offset": offset,
            "total": len(events),
        }

    def _route_cancel(
        self, scope: str, query: dict[str, str], body: Any, tid: str
    ) -> dict[str, Any]:
        """`POST /task/<task_id>/cancel`, as Transfer answers it.

        Sources: globus-sdk `TransferClient.cancel_task` ("Cancel a task which is still
        running", `POST /task/<task_id>/cancel`, Transfer docs "Cancel task by id"); its test
        fixture `globus_sdk/testing/data/transfer/cancel_task.py` (a `result` document with
        code "Canceled"); the Transfer docs' task fields: a cancelled task ends FAILED ("The
        task or one of its subtasks failed, expired, or was canceled") with a
        `completion_time`. A task already finished cannot be cancelled: the answer is a
        `result` with code "TaskComplete", and the task stays as it ended (a SUCCEEDED delete
        stays SUCCEEDED). Items done before the cancel stay done: nothing is undone.
        """
        task = self._task(tid)
        with self._lock:
            self.calls[
                "cancel_done" if task.status in ("SUCCEEDED", "FAILED") else "cancel_run"
            ] += 1
            if task.status in ("SUCCEEDED", "FAILED"):
                return {"DATA_TYPE": "result", "code": "TaskComplete", "message": "done already"}
            if self.cancels_linger > 0:
                # A cancel that has not stopped its task yet (the code is the fake's own): a
                # task has ended only when its document says so (status FAILED, with a
                # `completion_time`: Transfer docs, "Task Fields"), not when a cancel returns.
                self.cancels_linger -= 1
                return {
                    "DATA_TYPE": "result",
                    "code": "CancelAccepted",
                    "message": "The cancel request was accepted; the task has not stopped yet",
                }
            task.status, task.nice_status = "FAILED", None
            task.fatal_error = {"code": "CANCELED", "description": "canceled"}
            task.completion_time = _iso(self.clock())
            task.pending.clear()
        return {"DATA_TYPE": "result", "code": "Canceled", "message": "The task has been canceled"}

    def _route_task_list(self, scope: str, query: dict[str, str], body: Any) -> dict[str, Any]:
        """The owner's tasks, newest first, narrowed by `filter` (offset paging).

        Filter clauses are `key:value` joined by `/`, list values comma-separated (globus-sdk
        `TransferClient` "Filter Formatting"). `label` takes `~pattern` (case-insensitive, `*`
        wildcards), `=exact`, and their negations `!~pattern` and `!exact`, as globus-cli's
        `task list --filter-label/--filter-not-label [--exact]` sends them.
        """
        clauses = [c for c in query.get("filter", "").split("/") if c]
        with self._lock:
            tasks = sorted(self.tasks.values(), key=lambda t: t.request_time, reverse=True)
        for clause in clauses:
            key, _, value = clause.partition(":")
            tasks = [t for t in tasks if _task_matches(t, key, value)]
        offset = int(query.get("offset", 0))
        limit = min(int(query.get("limit", 10)), 1000)
        page = tasks[offset : offset + limit]
        return {
            "DATA_TYPE": "task_list",
            "DATA": [_task_doc(t, self.clock()) for t in page],
            "length": len(page),
            "limit": limit,
            "offset": offset,
            "total": len(tasks),
        }

    def _route_successful_transfers(
        self, scope: str, query: dict[str, str], body: Any, tid: str
    ) -> dict[str, Any]:
        return self._page("successful_transfers", self._task(tid).successful, query)

    def _route_skipped_errors(
        self, scope: str, query: dict[str, str], body: Any, tid: str
    ) -> dict[str, Any]:
        return self._page("skipped_errors", self._task(tid).skipped_errors, query)

    def _task(self, tid: str) -> FakeTask:
        task = self.tasks.get(tid)
        if task is None:
            raise _ApiError(404, "TaskNotFound", f"Task {tid} not found")
        return task

    def _page(self, kind: str, rows: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
        start = int(query.get("marker") or 0)
        end = start + self.page_size
        return {
            "DATA_TYPE": kind,
            "marker": start,
            "next_marker": end if end < len(rows) else None,
            "DATA": rows[start:end],
        }

    # ---------------------------------------------------------------- task execution

    def _advance(self, task: FakeTask, *, queued: bool = True) -> None:
        """Run some of the task's pending items (called on each poll; `queued=False` ignores
        the per-identity limit, for `finish`)."""
        if task.status not in ("ACTIVE", "INACTIVE"):
            return
        now = self.clock()
        if task.deadline and now > _parse_iso(task.deadline):
            # Task Events: a task whose deadline passed ends with the EXPIRED fatal error.
            self._end(task, "EXPIRED", f"the task's deadline {task.deadline} passed")
            return
        outcome = task.forced_outcome
        done = task.files - len(task.pending)
        if outcome is not None and done >= outcome["after"]:
            self._force(task, outcome)
            return
        fault = self._collection_fault(task)
        if fault is not None:
            code, description = fault
            task.nice_status = code
            self._event(task, code, description, f"collection fault: {description}")
            return
        if queued and not self._may_run(task):
            task.nice_status = "Queued"
            return
        task.nice_status = "OK"
        budget = self.files_per_poll if self.files_per_poll is not None else len(task.pending)
        if outcome is not None:
            budget = min(budget, outcome["after"] - done)
        progressed = False
        while task.pending and budget > 0:
            item = task.pending[0]
            budget -= 1
            if task.kind == "TRANSFER":
                if not self._transfer_one(task, item):
                    return
                progressed = True
                continue
            failure = self._delete(task, item)
            task.pending.pop(0)
            if failure is not None:
                self._end(task, *failure)
                return
            progressed = True
        if progressed and task.kind == "TRANSFER" and not task.user_deadline:
            # "If the transfer is making progress, it will regularly have its deadline pushed
            # to 72 hours after its most recent successfully completed batch of work."
            task.deadline = _iso(now + timedelta(hours=72))
        if outcome is not None and task.status == "ACTIVE":
            if not task.pending or task.files - len(task.pending) >= outcome["after"]:
                self._force(task, outcome)
            return
        if not task.pending:
            task.status, task.nice_status = "SUCCEEDED", None
            task.completion_time = _iso(now)

    def _transfer_one(self, task: FakeTask, item: dict[str, Any]) -> bool:
        """Copy the first pending item; False when the task cannot go on now (it failed, or it
        retries this item at a later poll)."""
        fault = self._copy(task, item)
        if fault is None:
            task.pending.pop(0)
            return True
        code, details, side = fault
        self._event(task, code, details, _event_details(item, details))
        if code in SKIPPABLE and side == "source" and task.body.get("skip_source_errors"):
            task.pending.pop(0)
            task.skipped_errors.append(
                {
                    "DATA_TYPE": "skipped_error",
                    "error_code": code,
                    "error_details": details,
                    "error_time": _iso(self.clock()),
                    "source_path": item["source_path"],
                    "destination_path": item["destination_path"],
                    "is_directory": False,
                    "is_delete_destination_extra": False,
                    "checksum_algorithm": item.get("checksum_algorithm"),
                    "external_checksum": item.get("external_checksum"),
                }
            )
            return True
        if code == "CHECKSUM_MISMATCH":
            # globus-sdk `TransferData.add_item`, `external_checksum`: "The checksum will be
            # verified after the data transfer and a failure will cause the entire task to
            # fail." The fatal error says what failed; only the event names the file.
            self._end(task, code, details)
            return False
        if code == "VERIFY_CHECKSUM":
            # A destination checksum mismatch is retried by Transfer (Task Behavior, "Retry
            # Behavior"); a file that keeps failing ends the task.
            task.verify_failures[item["source_path"]] += 1
            if task.verify_failures[item["source_path"]] >= VERIFY_ATTEMPTS:
                self._end(task, code, details)
                return False
        # Anything else is retried: the task stays ACTIVE, its nice_status names the fault.
        task.nice_status = code
        return False

    def _event(self, task: FakeTask, code: str, description: str, details: str) -> None:
        """An error event as `task_event_list` returns it (Transfer docs, "Event document":
        `code`, `is_error`, `description`, `details`, `time`)."""
        task.events.append(
            {
                "DATA_TYPE": "event",
                "code": code,
                "is_error": True,
                "description": description,
                "details": details,
                "time": _iso(self.clock()),
            }
        )

    def _end(self, task: FakeTask, code: str, description: str) -> None:
        task.status, task.nice_status = "FAILED", None
        task.fatal_error = {"code": code, "description": description}
        task.completion_time = _iso(self.clock())
        task.pending.clear()

    def _collection_fault(self, task: FakeTask) -> tuple[str, str] | None:
        body = task.body
        for collection in (body.get("source_endpoint"), body.get("destination_endpoint")):
            fault = self._collection_faults.get(str(collection))
            if fault is not None:
                return fault
        fault = self._collection_faults.get(str(body.get("endpoint")))
        return fault

    def _may_run(self, task: FakeTask) -> bool:
        """Is `task` among the first 3 working tasks of its kind (by submission)? Tasks
        "backing off from an error" (a collection fault here) leave their place to others."""
        working = [
            t
            for t in self.tasks.values()
            if t.kind == task.kind
            and t.status == "ACTIVE"
            and t.forced_outcome is None
            and self._collection_fault(t) is None
        ]
        return task in working[:TASKS_AT_ONCE] or task.forced_outcome is not None

    def _force(self, task: FakeTask, outcome: dict[str, Any]) -> None:
        """End (or stall) a task the way a knob asked.

        A FAILED task's document, as Transfer shows it (docs.globus.org/api/transfer/task,
        "Task Fields"): `fatal_error` is "an object with code and description strings from
        the fatal event" (e.g. PERMISSION_DENIED, or EXPIRED for a task whose deadline passed:
        Transfer docs, "Task Events"); `nice_status` is null once the task is finished; and
        `completion_time` is set. Nothing says which items were done before the fault.
        """
        if outcome["status"] == "FAILED":
            self._end(task, outcome["nice_status"], outcome["description"])
            return
        task.status, task.nice_status = outcome["status"], outcome["nice_status"]

    def _copy(self, task: FakeTask, item: dict[str, Any]) -> tuple[str, str, str] | None:
        """Copy one item; a fault is (code, details, "source" | "destination")."""
        body = task.body
        src = self.path_of(body["source_endpoint"], item["source_path"])
        dst = self.path_of(body["destination_endpoint"], item["destination_path"])
        if not src.is_file():
            return (
                "FILE_NOT_FOUND",
                f"No such file or directory: {item['source_path']}",
                "source",
            )
        algorithm = _ALGORITHMS.get(str(item.get("checksum_algorithm") or "MD5").upper(), "md5")
        source_sum = _file_checksum(src, algorithm)
        expected = item.get("external_checksum")
        if expected and expected.lower() != source_sum:
            return (
                "CHECKSUM_MISMATCH",
                f"source checksum {source_sum} does not match external checksum {expected} "
                f"for {item['source_path']}",
                "source",
            )
        stat = src.stat()
        # globus-sdk `TransferData` "Sync Levels": "When files match, no data transfer will
        # occur"; with 3/"checksum", "If source and destination contents differ, as determined
        # by a checksum of their contents, do the transfer". A file skipped so is left as it
        # is (its mtime too: only a transferred file gets `preserve_timestamp`).
        if (
            body.get("sync_level") in (3, "checksum")
            and dst.is_file()
            and _file_checksum(dst, algorithm) == source_sum
        ):
            task.files_skipped += 1
            return None
        dst.parent.mkdir(parents=True, exist_ok=True)
        partial = dst.with_name(f".{dst.name}.fake-partial")
        shutil.copyfile(src, partial)
        if self.corrupt_next_copy or self.corrupt_copies > 0:
            if self.corrupt_next_copy:
                self.corrupt_next_copy = False
            else:
                self.corrupt_copies -= 1
            with partial.open("ab") as handle:
                handle.write(b"\0corrupt")
        if body.get("verify_checksum") and _file_checksum(partial, algorithm) != source_sum:
            partial.unlink()
            return (
                "VERIFY_CHECKSUM",
                f"checksum verification failed at the destination for {item['destination_path']}",
                "destination",
            )
        os.replace(partial, dst)
        if body.get("preserve_timestamp"):
            os.utime(dst, (stat.st_atime, stat.st_mtime))
        task.files_transferred += 1
        task.bytes_transferred += stat.st_size
        task.bytes_checksummed += stat.st_size if body.get("verify_checksum") else 0
        task.successful.append(
            {
                "DATA_TYPE": "successful_transfer",
                "source_path": item["source_path"],
                "destination_path": item["destination_path"],
            }
        )
        return None

    def _delete(self, task: FakeTask, item: dict[str, Any]) -> tuple[str, str] | None:
        """Delete one `delete_item` path, as Transfer does.

        Sources: globus-sdk `DeleteData` (`ignore_missing`: "Ignore nonexistent files and
        directories instead of treating them as errors"; `add_item`: "If any of the paths are
        directories, `recursive` must be set True ... Symlinks will never be followed, only
        deleted"), and the Transfer docs' delete fields (`recursive`, `ignore_missing`,
        `interpret_globs`, default false). Only the listed path goes: a file's folder stays,
        even when it is left empty (Transfer has no "remove the folder if empty").
        """
        target = self.path_of(task.body["endpoint"], item["path"])
        if not target.exists() and not target.is_symlink():
            if task.body.get("ignore_missing"):
                return None
            return "FILE_NOT_FOUND", f"No such file or directory: {item['path']}"
        if target.is_dir() and not target.is_symlink():
            if not task.body.get("recursive"):
                return "NOT_A_FILE", f"{item['path']} is a directory; recursive is not set"
            shutil.rmtree(target)
        else:
            target.unlink()
        task.files_transferred += 1
        task.deleted.append(item["path"])
        return None


def _entry(path: Path) -> dict[str, Any]:
    info = path.lstat()
    kind = "dir" if path.is_dir() else "file"
    return {
        "DATA_TYPE": "file",
        "name": path.name,
        "type": kind,
        "size": info.st_size if kind == "file" else 4096,
        "last_modified": _mtime_text(info.st_mtime),
        "permissions": "0644",
        "user": "alsdev",
        "group": "als",
        "link_target": None,
    }


def _event_details(item: dict[str, Any], message: str) -> str:
    """An error event's `details` text, naming the file it is about."""
    return (
        f"Error ({item.get('DATA_TYPE', 'transfer_item')})\n"
        f"Source: {item.get('source_path')}\nDestination: {item.get('destination_path')}\n"
        f"Message: {message}"
    )


def _ls_filter_matches(path: Path, clause: str) -> bool:
    """One `operation_ls` filter clause: `name:~glob`, `name:=exact` (or `name:exact`),
    `name:!~glob`, `type:file|dir` (Transfer docs, "List directory contents": filter)."""
    key, _, value = clause.partition(":")
    if key == "type":
        kind = "dir" if path.is_dir() else "file"
        return kind in value.split(",")
    if key != "name":
        raise _ApiError(400, "ClientError.BadRequest", f"unsupported filter {key!r}")
    negated = value.startswith("!")
    value = value.removeprefix("!")
    if value.startswith("~"):
        found = fnmatchcase(path.name, value[1:])
    else:
        found = path.name in value.removeprefix("=").split(",")
    return found != negated


def _task_doc(task: FakeTask, now: datetime) -> dict[str, Any]:
    elapsed = max(now.timestamp() - _parse_iso(task.request_time).timestamp(), 1.0)
    return {
        "DATA_TYPE": "task",
        "task_id": task.task_id,
        "type": task.kind,
        "status": task.status,
        "nice_status": task.nice_status,
        "label": task.label,
        "source_endpoint_id": task.body.get("source_endpoint"),
        "destination_endpoint_id": task.body.get("destination_endpoint", task.body.get("endpoint")),
        "request_time": task.request_time,
        "completion_time": task.completion_time,
        "deadline": task.deadline,
        "files": task.files,
        "files_transferred": task.files_transferred,
        "files_skipped": task.files_skipped,
        "directories": 0,
        "bytes_transferred": task.bytes_transferred,
        "bytes_checksummed": task.bytes_checksummed,
        "effective_bytes_per_second": int(task.bytes_transferred / elapsed),
        "fatal_error": task.fatal_error,
        "faults": len(task.skipped_errors),
        "subtasks_skipped_errors": len(task.skipped_errors),
        "subtasks_succeeded": task.files_transferred,
        "verify_checksum": bool(task.body.get("verify_checksum")),
        "sync_level": task.body.get("sync_level"),
        "preserve_timestamp": bool(task.body.get("preserve_timestamp")),
        "skip_source_errors": bool(task.body.get("skip_source_errors")),
        "is_paused": False,
    }


def _task_matches(task: FakeTask, key: str, value: str) -> bool:
    if key == "type":
        return task.kind in value.split(",")
    if key == "status":
        return task.status in value.split(",")
    if key == "task_id":
        return task.task_id in value.split(",")
    if key == "label":
        return any(_label_matches(task.label or "", v) for v in value.split(","))
    raise _ApiError(400, "ClientError.BadRequest", f"unsupported filter {key!r}")


def _label_matches(label: str, condition: str) -> bool:
    negated = condition.startswith("!")
    condition = condition.removeprefix("!")
    if condition.startswith("~"):
        pattern = re.escape(condition[1:].lower()).replace(r"\*", ".*")
        found = re.fullmatch(pattern, label.lower()) is not None
    else:
        found = label == condition.removeprefix("=")
    return found != negated


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"/v2/oauth2/token"), "token"),
    ("GET", re.compile(r"/v0\.10/submission_id"), "submission_id"),
    ("POST", re.compile(r"/v0\.10/transfer"), "transfer"),
    ("POST", re.compile(r"/v0\.10/delete"), "delete"),
    ("GET", re.compile(r"/v0\.10/task_list"), "task_list"),
    ("GET", re.compile(r"/v0\.10/task/([^/]+)/successful_transfers"), "successful_transfers"),
    ("GET", re.compile(r"/v0\.10/task/([^/]+)/skipped_errors"), "skipped_errors"),
    ("GET", re.compile(r"/v0\.10/task/([^/]+)/event_list"), "event_list"),
    ("POST", re.compile(r"/v0\.10/task/([^/]+)/cancel"), "cancel"),
    ("GET", re.compile(r"/v0\.10/task/([^/]+)"), "task"),
    ("GET", re.compile(r"/v0\.10/operation/endpoint/([^/]+)/ls"), "ls"),
    ("GET", re.compile(r"/v0\.10/operation/endpoint/([^/]+)/stat"), "stat"),
    ("POST", re.compile(r"/v0\.10/operation/endpoint/([^/]+)/mkdir"), "mkdir"),
    ("GET", re.compile(r"/v0\.10/endpoint/([^/]+)"), "endpoint"),
]


def _route(method: str, path: str) -> tuple[str, tuple[str, ...]]:
    for verb, pattern, name in _ROUTES:
        match = pattern.fullmatch(path.rstrip("/"))
        if verb == method and match:
            return name, match.groups()
    return "unknown", ()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTransferAPI
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid 40 ms stalls

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: dict[str, Any] | None = None
        form: dict[str, str] = {}
        content_type = self.headers.get("Content-Type", "")
        if raw and "json" in content_type:
            body = json.loads(raw)
        elif raw:
            form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        extra: dict[str, str] = {}
        try:
            status, doc, extra = self.fake.handle(method, parts.path, query, body, headers, form)
        except _ApiError as exc:
            status, doc = exc.status, exc.doc
        payload = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

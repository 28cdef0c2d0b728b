"""A fake SciCat backend (`/api/v3`) on 127.0.0.1, reproducing the behaviours a client must handle.

Reproduced from the backend's source (see the project's SciCat reference notes):
- `Datasets` routes are case-insensitive; pids contain `/` and arrive as `%2F`;
- `POST /auth/login` → 201 with `id`; a wrong password → 401;
- tokens are JWTs whose `exp` is `token_ttl_seconds` after login by the fake's `clock`; the login
  answer carries `expires_in` and `ttl` (`src/auth/auth.service.ts`);
- a missing, unknown or expired token makes the request *anonymous* (backend ≤ 5.1, e.g. the Feb 2026
  snapshot after v4.27): the dataset list answers `200` with published datasets only, GET by pid 403
  "Unauthorized access", POST/PATCH 403 "Forbidden resource". With `expired_status = 401` (backend
  ≥ 5.2) an expired token is 401 `SESSION_EXPIRED` instead, also on a login request carrying it;
- `GET /auth/whoami` (JwtAuthGuard) answers the user and its `currentGroups`, or 401 when the
  token is missing, unknown or expired (never anonymous);
- permissions (`src/casl/casl-ability.factory.ts`, `src/datasets/datasets.controller.ts`): creating
  with a pid needs `CREATE_DATASET_WITH_PID_GROUPS` (and the dataset's `ownerGroup`) or
  `CREATE_DATASET_PRIVILEGED_GROUPS` (any group), else 403 "Unauthorized to create this dataset"; with
  `DATASET_CREATION_VALIDATION_ENABLED` a pid not matching `DATASET_CREATION_VALIDATION_REGEX` is 400
  "PID is not following required standards"; a dataset whose `ownerGroup`/`accessGroups` the user is
  not in is invisible in lists and 403 "Unauthorized access" on GET, 403 "Unauthorized to update this
  dataset" on PATCH (the lifecycle route also allows `UPDATE_DATASET_LIFECYCLE_GROUPS`);
- `POST /Datasets` with an existing pid → 409 "A dataset with pid X already exists!";
- validation failures → 400 with `message` holding a JSON *string*; unknown fields are rejected;
- `POST /Datasets/{pid}/origdatablocks` adds the block's size and file count to the dataset;
- `PATCH /Datasets/{pid}` is partial, rejects `pid`/`type`, and replaces `datasetlifecycle` whole;
  `PATCH /Datasets/{pid}/datasetlifecycle` merges;
- `GET /Datasets?filter=` with `where` (equality on dotted paths, `inq`, `nin`, `and`, `or`) and
  `limits` (skip, limit, order). Since v4.27 `WherePipe` (`src/common/pipes/filter.pipe.ts`) first
  turns every leaf *string* value that `new Date(s)` accepts into a Date (V8's lenient parser, ported
  in `tests.fakes.v8_date`); members of a list (`inq`) are left alone. A Date never equals a stored
  string, so `{"creationLocation": "/ALS/9.3.1"}` finds nothing. `where_dates = False` is v4.26.

Failure knobs: `expire_tokens()`, `fail_next(n, status, html=…, match=…)`, `lose_response(match)`
(the request is processed, the answer replaced by a proxy's HTML 502), `stop()`.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.v8_date import js_date_accepts

DATASET_FIELDS = frozenset(
    [
        "pid",
        "owner",
        "ownerEmail",
        "orcidOfOwner",
        "contactEmail",
        "sourceFolder",
        "sourceFolderHost",
        "size",
        "packedSize",
        "numberOfFiles",
        "numberOfFilesArchived",
        "creationTime",
        "type",
        "validationStatus",
        "keywords",
        "description",
        "datasetName",
        "classification",
        "license",
        "version",
        "isPublished",
        "ownerGroup",
        "accessGroups",
        "instrumentGroup",
        "techniques",
        "sharedWith",
        "datasetlifecycle",
        "scientificMetadata",
        "comment",
        "dataQualityMetrics",
        "principalInvestigator",
        "endTime",
        "creationLocation",
        "dataFormat",
        "proposalId",
        "sampleId",
        "instrumentId",
        "history",
    ]
)
RAW_REQUIRED = (
    "owner",
    "ownerGroup",
    "contactEmail",
    "sourceFolder",
    "creationTime",
    "type",
    "creationLocation",
    "principalInvestigator",
)
LIFECYCLE_FIELDS = frozenset(
    [
        "archivable",
        "retrievable",
        "publishable",
        "dateOfDiskPurging",
        "archiveRetentionTime",
        "dateOfPublishing",
        "publishedOn",
        "isOnCentralDisk",
        "archiveStatusMessage",
        "retrieveStatusMessage",
        "archiveReturnMessage",
        "retrieveReturnMessage",
        "exportedTo",
        "retrieveIntegrityCheck",
        "storageLocation",
    ]
)
LIFECYCLE_DEFAULTS: dict[str, Any] = {
    "archivable": True,
    "retrievable": False,
    "publishable": False,
    "isOnCentralDisk": True,
    "archiveStatusMessage": "datasetCreated",
    "retrieveStatusMessage": "",
    "retrieveIntegrityCheck": False,
}
DATAFILE_REQUIRED = ("path", "size", "time")
HTML_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


class _Reply(Exception):
    def __init__(self, status: int, body: Any = None, *, html: bool = False) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.html = html


def _error(status: int, message: str, error: str = "") -> _Reply:
    return _Reply(status, {"statusCode": status, "message": message, "error": error})


def _validation(errors: list[dict[str, Any]]) -> _Reply:
    return _Reply(400, {"statusCode": 400, "message": json.dumps(errors), "error": "Bad Request"})


def _unknown(names: list[str]) -> list[dict[str, Any]]:
    return [
        {"property": n, "constraints": {"whitelistValidation": f"property {n} should not exist"}}
        for n in names
    ]


@dataclass(frozen=True)
class JsDate:
    """A `where` string the backend turned into a Date (it matches no stored string)."""

    text: str


def _where_pipe(value: Any) -> Any:
    """`WherePipe.applyTransform`: object values that are date-like strings become Dates.

    `transformDeep` applies `valueFn` to the values of object keys only; array members pass through.
    """
    if isinstance(value, list):
        return [_where_pipe(item) if isinstance(item, dict | list) else item for item in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            item = _where_pipe(item)
            if isinstance(item, str) and js_date_accepts(item):
                item = JsDate(item)
            out[key] = item
        return out
    return value


def _matches(doc: dict[str, Any], where: dict[str, Any]) -> bool:
    for key, condition in where.items():
        if key in ("and", "or"):
            if not isinstance(condition, list):
                raise _error(400, f"{key} needs a list", "Bad Request")
            results = (_matches(doc, part) for part in condition)
            if not (all(results) if key == "and" else any(results)):
                return False
            continue
        value = _dig(doc, key)
        if isinstance(condition, dict) and set(condition) <= {"inq", "nin"} and condition:
            if "inq" in condition and value not in condition["inq"]:
                return False
            if "nin" in condition and value in condition["nin"]:
                return False
        elif isinstance(condition, JsDate) or value != condition:
            return False
    return True


def _dig(doc: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


@dataclass
class _Failure:
    remaining: int
    status: int
    html: bool
    match: re.Pattern[str] | None
    process_first: bool = False
    body: Any = None


@dataclass
class Request:
    method: str
    path: str  # decoded
    raw_path: str  # as sent (pids with %2F)
    query: dict[str, list[str]]
    authorized: bool
    status: int = 0


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@dataclass
class FakeScicat:
    """The fake backend. Use as a context manager, or `start()` / `stop()`."""

    users: dict[str, str] = field(default_factory=lambda: {"ingestor": "ingestor-password"})
    expired_status: int = 401  # 401 SESSION_EXPIRED (backend ≥ 5.2) or 403: anonymous (≤ 5.1)
    clock: Callable[[], datetime] | None = None  # tokens expire by it (never without one)
    token_ttl_seconds: int = 3600  # JWT_EXPIRES_IN
    login_expiry_fields: bool = True  # the login answer carries expires_in / ttl
    where_dates: bool = True  # WherePipe's date conversion (v4.27+); False: v4.26
    groups: dict[str, set[str]] = field(default_factory=lambda: {"ingestor": {"als-9.3.1"}})
    create_with_pid_groups: set[str] = field(default_factory=lambda: {"als-9.3.1"})
    privileged_groups: set[str] = field(default_factory=set)  # CREATE_DATASET_PRIVILEGED_GROUPS
    lifecycle_groups: set[str] = field(default_factory=set)  # UPDATE_DATASET_LIFECYCLE_GROUPS
    pid_pattern: str | None = None  # DATASET_CREATION_VALIDATION_REGEX (validation enabled)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    datablocks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # token → user
    token_expiry: dict[str, float] = field(default_factory=dict)  # token → exp (epoch seconds)
    expired: set[str] = field(default_factory=set)
    _failures: list[_Failure] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeScicat:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # One request per connection: `stop()` then really refuses the next request.
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, payload, content_type = fake._handle(
                    method, self.path, self.headers.get("Authorization"), raw
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down: later requests get "connection refused"."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeScicat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/v3"

    # ---- knobs ----------------------------------------------------------------------------

    def issue_token(self, user: str = "ingestor") -> str:
        """A JWT (`header.payload.signature`) whose payload holds `exp` when the fake has a clock."""
        with self._lock:
            payload: dict[str, Any] = {"username": user, "jti": secrets.token_hex(8)}
            if self.clock is not None:
                issued = self.clock().timestamp()
                payload["iat"] = int(issued)
                payload["exp"] = int(issued) + self.token_ttl_seconds
            header = _b64({"alg": "HS256", "typ": "JWT"})
            token = f"{header}.{_b64(payload)}.{secrets.token_urlsafe(24)}"
            self.tokens[token] = user
            if "exp" in payload:
                self.token_expiry[token] = payload["exp"]
            return token

    def _is_expired(self, token: str) -> bool:
        if token in self.expired:
            return True
        exp = self.token_expiry.get(token)
        return exp is not None and self.clock is not None and self.clock().timestamp() >= exp

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired."""
        with self._lock:
            self.expired.update(self.tokens)

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        html: bool = False,
        match: str | None = None,
        body: Any = None,
    ) -> None:
        """The next `count` requests (matching `"METHOD /path"` if given) answer `status`/`body`."""
        with self._lock:
            pattern = re.compile(match, re.IGNORECASE) if match else None
            self._failures.append(_Failure(count, status, html, pattern, body=body))

    def lose_response(self, match: str, count: int = 1) -> None:
        """Process the matching request, then answer with a proxy's HTML 502 (a lost response)."""
        with self._lock:
            pattern = re.compile(match, re.IGNORECASE)
            self._failures.append(_Failure(count, 502, True, pattern, process_first=True))

    def count(self, method: str, pattern: str) -> int:
        regex = re.compile(pattern, re.IGNORECASE)
        return sum(1 for r in self.requests if r.method == method and regex.fullmatch(r.path))

    # ---- request handling -----------------------------------------------------------------

    def _handle(
        self, method: str, target: str, authorization: str | None, raw: bytes
    ) -> tuple[int, bytes, str]:
        parts = urlsplit(target)
        path = parts.path
        query = parse_qs(parts.query)
        token = None
        if authorization and authorization.startswith("Bearer "):
            token = authorization.removeprefix("Bearer ").strip()
        token = token or (query.get("access_token") or [None])[0]
        with self._lock:
            record = Request(method, unquote(path), path, query, token in self.tokens)
            self.requests.append(record)
            failure = self._take_failure(f"{method} {unquote(path)}")
        if failure is not None and not failure.process_first:
            record.status = failure.status
            canned = failure.body if failure.body is not None else {"statusCode": failure.status}
            return self._encode(_Reply(failure.status, canned, html=failure.html))
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            reply = _error(400, "Unexpected token in JSON", "Bad Request")
        else:
            try:
                with self._lock:
                    reply = _Reply(200, self._route(method, path, query, token, body))
            except _Reply as answer:
                reply = answer
        if failure is not None:
            reply = _Reply(failure.status, None, html=True)
        record.status = reply.status
        return self._encode(reply)

    def _take_failure(self, request_line: str) -> _Failure | None:
        for failure in self._failures:
            if failure.remaining > 0 and (
                failure.match is None or failure.match.search(request_line)
            ):
                failure.remaining -= 1
                return failure
        return None

    @staticmethod
    def _encode(reply: _Reply) -> tuple[int, bytes, str]:
        if reply.html:
            return reply.status, HTML_PAGE, "text/html"
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        return reply.status, payload, "application/json; charset=utf-8"

    def _authenticate(self, token: str | None) -> str | None:
        """The user, or None: the request runs as anonymous (no, unknown or expired token)."""
        if token is None or token not in self.tokens:
            return None
        if self._is_expired(token):
            if self.expired_status == 401:
                raise _error(401, "SESSION_EXPIRED", "Unauthorized")
            return None
        return self.tokens[token]

    def _groups(self, user: str | None) -> set[str]:
        return set(self.groups.get(user, set())) if user else set()

    def _can_read(self, user: str | None, dataset: dict[str, Any]) -> bool:
        if dataset.get("isPublished"):
            return True
        mine = self._groups(user)
        return (
            dataset.get("ownerGroup") in mine
            or bool(mine & set(dataset.get("accessGroups") or []))
            or bool(mine & self.lifecycle_groups)  # those groups may read any dataset
        )

    def _readable(self, user: str | None, pid: str) -> dict[str, Any]:
        dataset = self.datasets.get(pid)
        if dataset is None:
            raise _error(404, f"Dataset {pid} not found", "Not Found")
        if not self._can_read(user, dataset):
            raise _error(403, "Unauthorized access", "Forbidden")
        return dataset

    def _writable(self, user: str | None, pid: str, *, lifecycle: bool = False) -> dict[str, Any]:
        if user is None:
            raise _error(403, "Forbidden resource", "Forbidden")
        dataset = self.datasets.get(pid)
        if dataset is None:
            raise _error(404, f"Dataset {pid} not found", "Not Found")
        mine = self._groups(user)
        if dataset.get("ownerGroup") not in mine and not (
            lifecycle and mine & self.lifecycle_groups
        ):
            raise _error(403, "Unauthorized to update this dataset", "Forbidden")
        return dataset

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        token: str | None,
        body: Any,
    ) -> Any:
        match = re.fullmatch(r"/api/v3/(?P<rest>.*)", path)
        if match is None:
            raise _error(404, f"Cannot {method} {path}", "Not Found")
        rest = match["rest"]
        if method == "POST" and rest.lower() == "auth/login":
            return self._login(token, body)
        user = self._authenticate(token)
        if method == "GET" and rest.lower() == "auth/whoami":
            # JwtAuthGuard (src/auth/auth.controller.ts): no anonymous fallback here.
            if user is None:
                raise _error(401, "Unauthorized")
            return {"username": user, "currentGroups": sorted(self._groups(user))}
        segments = rest.split("/")
        if segments[0].lower() != "datasets":
            raise _error(404, f"Cannot {method} {path}", "Not Found")
        if len(segments) == 1:
            if method == "POST":
                return self._create(user, body)
            if method == "GET":
                return self._find(user, query)
        pid = unquote(segments[1]) if len(segments) > 1 else ""
        sub = "/".join(segments[2:]).lower()
        if len(segments) == 2:
            if method == "GET":
                return self._readable(user, pid)
            if method == "PATCH":
                return self._patch(self._writable(user, pid), body)
        if sub == "origdatablocks":
            if method == "POST":
                return self._add_datablock(self._writable(user, pid), body)
            if method == "GET":
                self._readable(user, pid)
                return self.datablocks.get(pid, [])
        if sub == "datasetlifecycle" and method == "PATCH":
            return self._merge_lifecycle(self._writable(user, pid, lifecycle=True), body)
        raise _error(404, f"Cannot {method} {path}", "Not Found")

    def _login(self, token: str | None, body: Any) -> Any:
        if token is not None and self._is_expired(token) and self.expired_status == 401:
            raise _error(401, "SESSION_EXPIRED", "Unauthorized")
        if not isinstance(body, dict) or self.users.get(body.get("username", "")) != body.get(
            "password"
        ):
            raise _error(401, "Unauthorized")
        fresh = self.issue_token(body["username"])
        answer: dict[str, Any] = {"id": fresh, "access_token": fresh, "userId": body["username"]}
        if self.login_expiry_fields:
            answer |= {"expires_in": self.token_ttl_seconds, "ttl": self.token_ttl_seconds}
        raise _Reply(201, answer)

    def _create(self, user: str | None, body: Any) -> Any:
        if user is None:
            raise _error(403, "Forbidden resource", "Forbidden")
        if not isinstance(body, dict):
            raise _validation([{"property": "body", "constraints": {"isObject": "expected"}}])
        errors = _unknown(sorted(set(body) - DATASET_FIELDS))
        errors += [
            {"property": f, "constraints": {"isDefined": f"{f} should not be null or undefined"}}
            for f in RAW_REQUIRED
            if body.get(f) in (None, "")
        ]
        if errors:
            raise _validation(errors)
        mine = self._groups(user)
        owner_may = body.get("ownerGroup") in mine
        may_create = bool(mine & self.privileged_groups) or (
            owner_may and (not body.get("pid") or bool(mine & self.create_with_pid_groups))
        )
        if not may_create:
            raise _error(403, "Unauthorized to create this dataset", "Forbidden")
        if self.pid_pattern and body.get("pid") and not re.search(self.pid_pattern, body["pid"]):
            raise _error(400, "PID is not following required standards", "Bad Request")
        pid = body.get("pid") or f"20.500.12269/{uuid.uuid4()}"
        if pid in self.datasets:
            raise _error(409, f"A dataset with pid {pid} already exists!", "Conflict")
        dataset = {"size": 0, "numberOfFiles": 0, **body, "pid": pid}
        dataset["datasetlifecycle"] = {**LIFECYCLE_DEFAULTS, **body.get("datasetlifecycle", {})}
        self.datasets[pid] = dataset
        raise _Reply(201, dataset)

    def _find(self, user: str | None, query: dict[str, list[str]]) -> Any:
        raw = (query.get("filter") or ["{}"])[0]
        try:
            spec = json.loads(raw)
        except json.JSONDecodeError:
            raise _error(400, "filter is not valid JSON", "Bad Request") from None
        where = spec.get("where") or {}
        if self.where_dates:
            where = _where_pipe(where)
        found = [
            d for d in self.datasets.values() if self._can_read(user, d) and _matches(d, where)
        ]
        limits = spec.get("limits") or {}
        if limits.get("order"):
            key, _, direction = str(limits["order"]).partition(":")
            found.sort(key=lambda d: str(_dig(d, key)), reverse=direction == "desc")
        skip = int(limits.get("skip", 0))
        limit = int(limits.get("limit", 0)) or len(found)
        return found[skip : skip + limit]

    def _patch(self, dataset: dict[str, Any], body: Any) -> Any:
        pid = dataset["pid"]
        if not isinstance(body, dict):
            raise _validation([{"property": "body", "constraints": {"isObject": "expected"}}])
        forbidden = sorted(set(body) & {"pid", "type"})
        unknown = sorted(set(body) - DATASET_FIELDS)
        if forbidden or unknown:
            raise _validation(_unknown(forbidden + unknown))
        updated = {**dataset, **body}
        if "datasetlifecycle" in body:
            updated["datasetlifecycle"] = {**LIFECYCLE_DEFAULTS, **body["datasetlifecycle"]}
        self.datasets[pid] = updated
        return updated

    def _merge_lifecycle(self, dataset: dict[str, Any], body: Any) -> Any:
        unknown = sorted(set(body or {}) - LIFECYCLE_FIELDS)
        if unknown:
            raise _validation(_unknown(unknown))
        dataset["datasetlifecycle"] = {**dataset.get("datasetlifecycle", {}), **body}
        return dataset

    def _add_datablock(self, dataset: dict[str, Any], body: Any) -> Any:
        pid = dataset["pid"]
        errors: list[dict[str, Any]] = []
        if not isinstance(body, dict) or not isinstance(body.get("dataFileList"), list):
            raise _validation([{"property": "dataFileList", "constraints": {"isArray": "x"}}])
        errors += _unknown(sorted(set(body) - {"size", "chkAlg", "dataFileList", "packedSize"}))
        if "chkAlg" in body and not isinstance(body["chkAlg"], str):
            errors.append({"property": "chkAlg", "constraints": {"isString": "must be a string"}})
        for i, entry in enumerate(body["dataFileList"]):
            for name in DATAFILE_REQUIRED:
                if name not in entry:
                    errors.append(
                        {
                            "property": f"dataFileList.{i}.{name}",
                            "constraints": {"isDefined": f"{name} should not be empty"},
                        }
                    )
        if errors:
            raise _validation(errors)
        block = {
            "id": str(uuid.uuid4()),
            "datasetId": pid,
            "ownerGroup": dataset["ownerGroup"],
            **body,
        }
        self.datablocks.setdefault(pid, []).append(block)
        dataset["size"] = dataset.get("size", 0) + int(body.get("size", 0))
        dataset["numberOfFiles"] = dataset.get("numberOfFiles", 0) + len(body["dataFileList"])
        raise _Reply(201, block)

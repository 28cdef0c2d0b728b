"""A fake SciCat backend (`/api/v3`) on 127.0.0.1, reproducing the behaviours a client must handle.

Reproduced from the backend's source (see the project's SciCat reference notes):
- `Datasets` routes are case-insensitive; pids contain `/` and arrive as `%2F`;
- `POST /auth/login` → 201 with `id`; a wrong password → 401;
- a missing or unknown token → 403; an expired one → 401 `SESSION_EXPIRED` (backend ≥ 5.2) or 403
  (before), per `expired_status`; a login request carrying an expired token is refused too;
- `POST /Datasets` with an existing pid → 409 "A dataset with pid X already exists!";
- validation failures → 400 with `message` holding a JSON *string*; unknown fields are rejected;
- `POST /Datasets/{pid}/origdatablocks` adds the block's size and file count to the dataset;
- `PATCH /Datasets/{pid}` is partial, rejects `pid`/`type`, and replaces `datasetlifecycle` whole;
  `PATCH /Datasets/{pid}/datasetlifecycle` merges;
- `GET /Datasets?filter=` with `where` (equality on dotted paths) and `limits` (skip, limit, order).

Failure knobs: `expire_tokens()`, `fail_next(n, status, html=…, match=…)`, `lose_response(match)`
(the request is processed, the answer replaced by a proxy's HTML 502), `stop()`.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

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


@dataclass
class FakeScicat:
    """The fake backend. Use as a context manager, or `start()` / `stop()`."""

    users: dict[str, str] = field(default_factory=lambda: {"ingestor": "ingestor-password"})
    expired_status: int = 401  # 401 SESSION_EXPIRED (backend ≥ 5.2) or 403 (≤ 5.1)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    datablocks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # token → user
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
        with self._lock:
            token = secrets.token_urlsafe(24)
            self.tokens[token] = user
            return token

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

    def _authenticate(self, token: str | None) -> str:
        if token is None or token not in self.tokens:
            raise _error(403, "Forbidden resource", "Forbidden")
        if token in self.expired:
            if self.expired_status == 401:
                raise _error(401, "SESSION_EXPIRED", "Unauthorized")
            raise _error(403, "Forbidden resource", "Forbidden")
        return self.tokens[token]

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
        self._authenticate(token)
        segments = rest.split("/")
        if segments[0].lower() != "datasets":
            raise _error(404, f"Cannot {method} {path}", "Not Found")
        if len(segments) == 1:
            if method == "POST":
                return self._create(body)
            if method == "GET":
                return self._find(query)
        pid = unquote(segments[1]) if len(segments) > 1 else ""
        sub = "/".join(segments[2:]).lower()
        if len(segments) == 2:
            if method == "GET":
                return self._get(pid)
            if method == "PATCH":
                return self._patch(pid, body)
        if sub == "origdatablocks":
            if method == "POST":
                return self._add_datablock(pid, body)
            if method == "GET":
                self._get(pid)
                return self.datablocks.get(pid, [])
        if sub == "datasetlifecycle" and method == "PATCH":
            return self._merge_lifecycle(pid, body)
        raise _error(404, f"Cannot {method} {path}", "Not Found")

    def _login(self, token: str | None, body: Any) -> Any:
        if token is not None and token in self.expired and self.expired_status == 401:
            raise _error(401, "SESSION_EXPIRED", "Unauthorized")
        if not isinstance(body, dict) or self.users.get(body.get("username", "")) != body.get(
            "password"
        ):
            raise _error(401, "Unauthorized")
        fresh = self.issue_token(body["username"])
        raise _Reply(201, {"id": fresh, "access_token": fresh, "userId": body["username"]})

    def _create(self, body: Any) -> Any:
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
        pid = body.get("pid") or f"20.500.12269/{uuid.uuid4()}"
        if pid in self.datasets:
            raise _error(409, f"A dataset with pid {pid} already exists!", "Conflict")
        dataset = {"size": 0, "numberOfFiles": 0, **body, "pid": pid}
        dataset["datasetlifecycle"] = {**LIFECYCLE_DEFAULTS, **body.get("datasetlifecycle", {})}
        self.datasets[pid] = dataset
        raise _Reply(201, dataset)

    def _find(self, query: dict[str, list[str]]) -> Any:
        raw = (query.get("filter") or ["{}"])[0]
        try:
            spec = json.loads(raw)
        except json.JSONDecodeError:
            raise _error(400, "filter is not valid JSON", "Bad Request") from None
        where = spec.get("where") or {}
        found = [
            d for d in self.datasets.values() if all(_dig(d, k) == v for k, v in where.items())
        ]
        limits = spec.get("limits") or {}
        if limits.get("order"):
            key, _, direction = str(limits["order"]).partition(":")
            found.sort(key=lambda d: str(_dig(d, key)), reverse=direction == "desc")
        skip = int(limits.get("skip", 0))
        limit = int(limits.get("limit", 0)) or len(found)
        return found[skip : skip + limit]

    def _get(self, pid: str) -> Any:
        if pid not in self.datasets:
            raise _error(404, f"Dataset {pid} not found", "Not Found")
        return self.datasets[pid]

    def _patch(self, pid: str, body: Any) -> Any:
        dataset = self._get(pid)
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

    def _merge_lifecycle(self, pid: str, body: Any) -> Any:
        dataset = self._get(pid)
        unknown = sorted(set(body or {}) - LIFECYCLE_FIELDS)
        if unknown:
            raise _validation(_unknown(unknown))
        dataset["datasetlifecycle"] = {**dataset.get("datasetlifecycle", {}), **body}
        return dataset

    def _add_datablock(self, pid: str, body: Any) -> Any:
        dataset = self._get(pid)
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

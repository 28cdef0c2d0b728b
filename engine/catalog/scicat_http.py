"""The wire to SciCat: pyscicat's client, with status codes and classified errors.

pyscicat 0.4.8 raises `ScicatCommError` without a status code, turns a proxy's HTML page into a
`JSONDecodeError`, puts the token in every URL (`?access_token=`, which lands in access logs and
in urllib3's debug log) and re-sends an expired token when it logs in again. This module keeps
pyscicat's client, models and URL handling but:

- sends the token only in the `Authorization` header;
- returns the HTTP status so 400 / 401 / 403 / 404 / 409 / 5xx can be told apart;
- logs in with a fresh client (no stale header) and classifies login failures;
- never lets a secret into an exception message or a log line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import requests
from pydantic import BaseModel
from pyscicat.client import ScicatClient

from engine.errors import NeedsHumanError, TerminalError, TransientError

log = logging.getLogger(__name__)


class NotFound(Exception):
    """HTTP 404: the dataset does not exist (a normal answer to a look-up)."""


class Conflict(Exception):
    """HTTP 409: e.g. "A dataset with pid X already exists!"."""


class AuthRejected(Exception):
    """HTTP 401/403: the token is missing, invalid, expired — or the account may not do this."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason}".strip())
        self.status = status
        self.reason = reason


class Redactor:
    """Replaces secret values in any text that might reach a log or an exception."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def add(self, secret: str | None) -> None:
        """Also redact `secret` (a token obtained by logging in)."""
        if secret and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class HeaderTokenClient(ScicatClient):
    """pyscicat's `ScicatClient`, sending its token in the Authorization header only.

    Bodies may be pyscicat models or plain dicts (partial PATCH bodies, which pyscicat's own
    update methods cannot send). Requests share one connection pool.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_seconds: float | None = None,
    ) -> None:
        self._session = requests.Session()
        self.login_ttl_seconds: float | None = None
        super().__init__(
            base_url,
            token=token,
            username=username,
            password=password,
            timeout_seconds=timeout_seconds,
            auto_login=False,
        )

    def _send_to_scicat(
        self, cmd: str, endpoint: str, data: BaseModel | dict[str, Any] | None = None
    ) -> requests.Response:
        url = "/".join(s.strip("/") for s in [self._base_url, endpoint])
        body = data.model_dump(exclude_none=True) if isinstance(data, BaseModel) else data
        return self._session.request(
            method=cmd,
            url=url,
            json=body,
            headers=self._headers,
            timeout=self._timeout_seconds,
        )

    def login(self) -> None:
        """`POST auth/login` without any (possibly expired) Authorization header.

        Raises:
            AuthRejected: wrong username or password.
            TransientError / TerminalError: the backend failed or answered oddly.
        """
        url = "/".join(s.strip("/") for s in [self._base_url, "auth/login"])
        response = self._session.post(
            url,
            json={"username": self._username, "password": self._password},
            timeout=self._timeout_seconds,
        )
        if response.status_code in (401, 403):
            raise AuthRejected(response.status_code, error_message(response))
        answer = decode(response, "log in")
        token = (
            (answer.get("id") or answer.get("access_token")) if isinstance(answer, dict) else None
        )
        if not isinstance(token, str) or not token:
            raise TerminalError("SciCat login answered without a token (`id`)")
        # `expires_in` / `ttl`: seconds the token lives (src/auth/auth.service.ts, JWT_EXPIRES_IN).
        ttl = answer.get("expires_in", answer.get("ttl"))
        self.login_ttl_seconds = float(ttl) if isinstance(ttl, int | float) and ttl > 0 else None
        self._token = token
        self._headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self._session.close()


def error_message(response: requests.Response) -> str:
    """The backend's `message` (or a short note when the body is not JSON)."""
    try:
        body = response.json()
    except ValueError:
        return "(non-JSON answer, probably a proxy page)"
    if isinstance(body, dict):
        message = body.get("message", body.get("error", ""))
        return message if isinstance(message, str) else json.dumps(message)
    return str(body)[:200]


def validation_details(message: str) -> list[str]:
    """Field-by-field lines from a 400 `message`.

    SciCat returns its validation errors as a JSON *string* inside `message`: a list of
    `{"property": …, "constraints": {…}}` objects (class-validator), or of plain strings.
    """
    try:
        parsed: Any = json.loads(message)
    except ValueError:
        return [message] if message else []
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list):
        return [str(parsed)]
    lines: list[str] = []
    for item in parsed:
        if isinstance(item, dict):
            field = item.get("property", "?")
            constraints = item.get("constraints") or {}
            reasons = (
                "; ".join(str(v) for v in constraints.values())
                if isinstance(constraints, dict)
                else str(constraints)
            )
            lines.append(f"{field}: {reasons or 'invalid'}")
            for child in item.get("children") or []:
                if isinstance(child, dict):
                    lines.extend(
                        f"{field}.{line}" for line in validation_details(json.dumps([child]))
                    )
        else:
            lines.append(str(item))
    return lines


def decode(response: requests.Response, operation: str) -> Any:
    """The JSON answer of a successful call, or the classified error.

    Raises:
        NotFound: 404.  Conflict: 409.  AuthRejected: 401/403.
        TerminalError: 400 (listed field by field) and other 4xx the backend will always refuse.
        TransientError: 408/429/5xx, or a 2xx whose body is not JSON (an HTML proxy page).
    """
    status = response.status_code
    if 200 <= status < 300:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise TransientError(
                f"SciCat {operation}: HTTP {status} with a non-JSON body (a proxy error page?)"
            ) from None
    message = error_message(response)
    if status == 404:
        raise NotFound(message)
    if status == 409:
        raise Conflict(message)
    if status in (401, 403):
        raise AuthRejected(status, message)
    if status == 400:
        details = validation_details(message) or ["(no details)"]
        raise TerminalError(
            f"SciCat rejected {operation} (HTTP 400):\n" + "\n".join(f"  {d}" for d in details)
        )
    if status in (408, 429) or status >= 500:
        raise TransientError(f"SciCat {operation}: HTTP {status} {message}".rstrip())
    raise TerminalError(f"SciCat {operation}: HTTP {status} {message}".rstrip())


def classify_network_error(exc: requests.RequestException, url: str, operation: str) -> Exception:
    """A connection failure or timeout as a TransientError (never quoting the request URL)."""
    if isinstance(exc, requests.Timeout):
        return TransientError(f"SciCat {operation}: no answer from {url} in time")
    if isinstance(exc, requests.ConnectionError):
        return TransientError(f"SciCat {operation}: cannot reach {url}")
    return TransientError(f"SciCat {operation}: request failed ({type(exc).__name__})")


def permission_error(operation: str, who: str, rejected: AuthRejected, relogged: bool) -> Exception:
    if relogged:
        text = (
            f"SciCat refused {operation} for {who} even after logging in again "
            f"({rejected}); the account may lack permission for this"
        )
    else:
        text = (
            f"SciCat refused {operation} with the configured token ({rejected}); set a fresh "
            "SCICAT_TOKEN, or SCICAT_USERNAME and SCICAT_PASSWORD so bl931 can log in again"
        )
    return NeedsHumanError(text)

"""One logged-in SciCat session: refreshed before it expires, and every refusal explained.

A SciCat token is a JWT that lives `JWT_EXPIRES_IN` seconds. What an expired one gets depends on the
backend version: up to 5.1 the request runs as *anonymous* — the dataset list answers `200` with
only published datasets, a GET by pid 403, a write 403 — and from 5.2 it is 401 `SESSION_EXPIRED`.
An anonymous list is indistinguishable from "nothing registered", so the session is refreshed
*before* it expires: from the login answer's `expires_in`/`ttl`, else from the JWT's `exp`.

A 403 means either "this session is not (or no longer) authenticated" or "this account may not do
that" (e.g. a dataset owned by another group). `GET /auth/whoami` tells them apart (it is guarded
by the JWT itself, so it answers 401 for an anonymous session): a session that whoami rejects is
logged in again once (with credentials) and the request retried; a 403 with a valid session is a
permission answer, explained by the caller's `refusal` (naming the backend setting to change).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import requests

from engine.catalog.scicat_http import (
    AuthRejected,
    HeaderTokenClient,
    NotFound,
    Redactor,
    classify_network_error,
    decode,
    permission_error,
)
from engine.clock import Clock
from engine.errors import Bl931Error, NeedsHumanError
from engine.secrets import Secret

log = logging.getLogger(__name__)

Refusal = Callable[[AuthRejected], Bl931Error]


def jwt_expiry(token: str) -> datetime | None:
    """The `exp` of a JWT (unverified: only to know when to log in again), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = payload.get("exp") if isinstance(payload, dict) else None
        return datetime.fromtimestamp(float(exp)).astimezone() if exp is not None else None
    except (ValueError, TypeError, OverflowError):
        return None


class ScicatSession:
    """Calls to one SciCat backend with a session kept alive and refusals classified."""

    def __init__(
        self,
        url: str,
        *,
        token: Secret | None,
        username: Secret | None,
        password: Secret | None,
        timeout_seconds: float,
        clock: Clock,
        redact: Redactor,
    ) -> None:
        self.url = url
        self._token = token
        self._username = username
        self._password = password
        self.timeout_seconds = timeout_seconds
        self.clock = clock
        self.redact = redact
        self._client: HeaderTokenClient | None = None
        self._expires_at: datetime | None = None
        self._margin = timedelta(seconds=60)
        self.logged_in_at: datetime | None = None

    @property
    def can_login(self) -> bool:
        return self._username is not None and self._password is not None

    @property
    def who(self) -> str:
        return f"user {self._username.reveal()!r}" if self._username else "the token"

    # ---- the session ------------------------------------------------------------------------

    def _stale(self) -> bool:
        return self._expires_at is not None and self.clock.now() >= self._expires_at - self._margin

    def _set_expiry(self, expires_at: datetime | None, ttl: float | None) -> None:
        self._expires_at = expires_at
        if ttl:
            self._margin = timedelta(seconds=min(300.0, max(1.0, ttl / 10)))

    def client(self) -> HeaderTokenClient:
        """The current client, logging in (again) first when the session is about to expire."""
        if self._client is not None and not self._stale():
            return self._client
        if self._client is None and self._token is not None:
            expiry = jwt_expiry(self._token.reveal())
            if expiry is None or self.clock.now() < expiry - self._margin or not self.can_login:
                if expiry is not None and self.clock.now() >= expiry and not self.can_login:
                    raise NeedsHumanError(
                        f"SCICAT_TOKEN expired at {expiry.isoformat()}; set a fresh SCICAT_TOKEN, "
                        "or SCICAT_USERNAME and SCICAT_PASSWORD so bl931 can log in itself"
                    )
                self._client = HeaderTokenClient(
                    self.url, token=self._token.reveal(), timeout_seconds=self.timeout_seconds
                )
                self._set_expiry(expiry, None)
                return self._client
        if not self.can_login:
            assert self._client is not None
            return self._client  # a static token near its expiry: use it while it lasts
        return self.login()

    def login(self) -> HeaderTokenClient:
        """A fresh client, logged in (not `client.login()`: pyscicat would re-send the old token).

        Raises:
            NeedsHumanError: the backend refused the username or password.
            TransientError: the backend could not be reached.
        """
        assert self._username is not None and self._password is not None
        self.close()
        client = HeaderTokenClient(
            self.url,
            username=self._username.reveal(),
            password=self._password.reveal(),
            timeout_seconds=self.timeout_seconds,
        )
        try:
            client.login()
        except AuthRejected as rejected:
            raise NeedsHumanError(
                f"SciCat refused the login of user {self._username.reveal()!r} "
                f"({self.redact(str(rejected))}); check SCICAT_USERNAME and SCICAT_PASSWORD"
            ) from None
        except requests.RequestException as exc:
            raise classify_network_error(exc, self.url, "log in") from None
        self.redact.add(client._token)
        now = self.clock.now()
        ttl = client.login_ttl_seconds
        expiry = now + timedelta(seconds=ttl) if ttl else jwt_expiry(client._token or "")
        if ttl is None and expiry is not None:
            ttl = (expiry - now).total_seconds()
        self._set_expiry(expiry, ttl)
        self.logged_in_at = now
        self._client = client
        log.info(
            "logged in to SciCat at %s%s",
            self.url,
            f" (session until {expiry.isoformat()})" if expiry else "",
        )
        return client

    def authenticated(self) -> dict[str, Any] | None:
        """`GET /auth/whoami`: the account (with `currentGroups`), or None for an anonymous session."""
        try:
            response = self.client()._send_to_scicat("get", "auth/whoami")
        except requests.RequestException as exc:
            raise classify_network_error(exc, self.url, "who am I") from None
        try:
            answer = decode(response, "who am I")
        except AuthRejected:
            return None
        except NotFound:
            # A backend without the route: the session cannot be told apart, so it is taken as
            # valid (expiry is still renewed ahead of time) and its groups as unknown.
            log.debug("SciCat has no /auth/whoami; the session is taken as valid")
            return {}
        return answer if isinstance(answer, dict) else {}

    # ---- calls ------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        endpoint: str,
        body: Any = None,
        *,
        operation: str,
        refusal: Refusal | None = None,
    ) -> Any:
        """One API call; a rejected session is logged in again once.

        Raises:
            NotFound, Conflict: answers the caller handles.
            NeedsHumanError: a refusal with a valid session (`refusal` explains it), or a session
                that cannot be renewed.
            TransientError / TerminalError: everything else.
        """
        relogged = False
        client = self.client()
        while True:
            try:
                response = client._send_to_scicat(method, endpoint, body)
            except requests.RequestException as exc:
                raise classify_network_error(exc, self.url, operation) from None
            try:
                return decode(response, operation)
            except AuthRejected as rejected:
                if rejected.status == 403 and self.authenticated() is not None:
                    # The session is valid: the account may not do this.
                    raise (refusal or self._default_refusal(operation))(rejected) from None
                if relogged or not self.can_login:
                    raise permission_error(operation, self.who, rejected, relogged) from None
                log.warning(
                    "SciCat refused the session during %s (%s); logging in again",
                    operation,
                    self.redact(str(rejected)),
                )
                client = self.login()
                relogged = True

    def _default_refusal(self, operation: str) -> Refusal:
        return lambda rejected: NeedsHumanError(
            f"SciCat refused {operation} for {self.who} with a valid session ({rejected}); "
            "the account lacks a permission for this (see the SciCat admin settings in "
            "docs/catalog.md)"
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

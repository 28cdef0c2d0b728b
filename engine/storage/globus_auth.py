"""Globus credentials, the shared authenticated session, and error classification.

A service account (a confidential client) authenticates with client credentials through
`globus_sdk.ClientApp`, with tokens kept in memory only: a token cached on disk without the
`data_access` dependencies would be silently reused after a restart. Every GCSv5 mapped
collection in the config has its `data_access` scope requested *before* the token that is used
for data operations is obtained, because adding a scope once a token is cached does not fetch a
new token (see the library notes on the ClientApp gotcha).

Every SDK exception leaving this package is translated into the engine's hierarchy
(`TransientError`, `NeedsHumanError`, `TerminalError`) by `translate_error`, with messages that
name the collection and say what to do. The client secret never appears in a message.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import globus_sdk
from globus_sdk.transport import RequestsTransport, RetryConfig

from engine.clock import SYSTEM_CLOCK, Clock
from engine.config import Config
from engine.errors import Bl931Error, ConfigError, NeedsHumanError, TerminalError, TransientError
from engine.retry_holds import Hold, HoldBook
from engine.secrets import Secret, lookup

log = logging.getLogger(__name__)

CLIENT_ID_VAR = "GLOBUS_CLIENT_ID"
CLIENT_SECRET_VAR = "GLOBUS_CLIENT_SECRET"
TRANSFER_URL_VAR = "GLOBUS_SDK_SERVICE_URL_TRANSFER"
AUTH_URL_VAR = "GLOBUS_SDK_SERVICE_URL_AUTH"

# globus-sdk retries 429/5xx itself; keep that short so the engine's per-action backoff governs.
SDK_MAX_RETRIES = 2
SDK_MAX_SLEEP = 5.0
DOCS_HINT = "see docs/globus.md"
# The Retry-After key of every Transfer task call (submission ids, submits, polls, events,
# skipped errors, cancels, task lists); a listing's key is its collection.
TASK_CALLS = "tasks"
_SCOPE_COLLECTION = re.compile(r"scopes/([0-9a-fA-F-]{36})/data_access")


@dataclass(frozen=True)
class GlobusCredentials:
    """A confidential client's id and secret (the secret stays a `Secret` until handed over)."""

    client_id: str
    client_secret: Secret


def load_credentials(config: Config, environ: Mapping[str, str] | None = None) -> GlobusCredentials:
    """Client credentials from the environment, else from `[globus] secrets_file`.

    Raises:
        ConfigError: either value is missing; the message names the variables and the file option.
    """
    secrets_file = config.globus.secrets_file
    client_id = lookup(CLIENT_ID_VAR, secrets_file=secrets_file, environ=environ)
    client_secret = lookup(CLIENT_SECRET_VAR, secrets_file=secrets_file, environ=environ)
    missing = [
        name
        for name, value in ((CLIENT_ID_VAR, client_id), (CLIENT_SECRET_VAR, client_secret))
        if value is None
    ]
    if missing or client_id is None or client_secret is None:
        where = (
            f"the environment or the secrets file {secrets_file}"
            if secrets_file is not None
            else "the environment (or set `[globus] secrets_file` to an owner-only TOML file "
            "holding them)"
        )
        raise ConfigError(
            f"Globus endpoints need confidential client credentials: {', '.join(missing)} "
            f"not set in {where}",
            key="globus",
        )
    return GlobusCredentials(client_id=client_id.reveal(), client_secret=client_secret)


class GlobusSession:
    """One `ClientApp` (one token) shared by every Transfer client of a backend.

    Args:
        credentials: the confidential client.
        collections: collection id → endpoint name, for every Globus endpoint in the config;
            used to request `data_access` scopes up front and to name collections in errors.
        environ: where `GLOBUS_SDK_SERVICE_URL_TRANSFER` / `_AUTH` are read (None: globus-sdk
            reads the process environment itself).
        max_retries: bound on globus-sdk's own retries of 429/5xx/connection errors.
        max_sleep: longest sleep between those retries, in seconds.
    """

    def __init__(
        self,
        credentials: GlobusCredentials,
        collections: Mapping[str, str],
        *,
        environ: Mapping[str, str] | None = None,
        max_retries: int = SDK_MAX_RETRIES,
        max_sleep: float = SDK_MAX_SLEEP,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.client_id = credentials.client_id
        self._clock = clock
        # Retry-After beyond the SDK's own capped sleep: key (a collection, or TASK_CALLS) →
        # the hold (no call before its `until`), kept in `hold_book` when one is given.
        self._holds: dict[str, Hold] = {}
        self._hold_book: HoldBook | None = None
        self.collections = dict(collections)
        self._secret = credentials.client_secret
        env = environ if environ is not None else {}
        self._transfer_url = env.get(TRANSFER_URL_VAR) or None
        auth_url = env.get(AUTH_URL_VAR) or None
        self._max_retries = max_retries
        self._max_sleep = max_sleep
        login_client = globus_sdk.ConfidentialAppAuthClient(
            client_id=credentials.client_id,
            client_secret=credentials.client_secret.reveal(),
            app_name="bl931",
            base_url=auth_url,
            retry_config=self._retry_config(),
        )
        self._login_client = login_client
        self.app = globus_sdk.ClientApp(
            "bl931",
            login_client=login_client,
            config=globus_sdk.GlobusAppConfig(token_storage="memory"),
        )
        self._clients: list[globus_sdk.TransferClient] = []
        self._scopes_ready = False
        self._lock = threading.Lock()

    def _retry_config(self) -> RetryConfig:
        return RetryConfig(max_retries=self._max_retries, max_sleep=self._max_sleep)

    def transfer_client(self, timeout: float) -> globus_sdk.TransferClient:
        """A Transfer client on the shared app, with its own HTTP timeout (tape needs longer)."""
        client = globus_sdk.TransferClient(
            app=self.app,
            base_url=self._transfer_url,
            transport=RequestsTransport(http_timeout=timeout),
            retry_config=self._retry_config(),
        )
        self._clients.append(client)
        return client

    def ensure_scopes(self, client: globus_sdk.TransferClient) -> None:
        """Request `data_access` for every GCSv5 mapped collection before any data operation.

        Which collections need it is read from Transfer (`get_endpoint`: a non-high-assurance
        `GCSv5_mapped_collection`); guest and high-assurance collections must not have it
        ("Unknown Scope"). That lookup itself needs a token, so once the scopes are added the
        app logs in again (`force=True`): the cached token would otherwise be reused without
        them. Runs once per session.
        """
        if self._scopes_ready:
            return
        with self._lock:
            if self._scopes_ready:
                return
            mapped: list[str] = []
            for collection, name in self.collections.items():
                try:
                    doc = client.get_endpoint(collection)
                except Exception as exc:
                    raise translate_error(
                        exc, f"looking up collection {collection} ({name})", self
                    ) from exc
                if doc.get("entity_type") == "GCSv5_mapped_collection" and not doc.get(
                    "high_assurance"
                ):
                    mapped.append(collection)
            if mapped:
                client.add_app_data_access_scope(mapped)
                try:
                    self.app.login(force=True)
                except Exception as exc:
                    raise translate_error(exc, "requesting a token", self) from exc
                log.info(
                    "Globus token requested with data_access for %d collection(s)", len(mapped)
                )
            self._scopes_ready = True

    def keep_holds_in(self, book: HoldBook) -> None:
        """Keep `Retry-After` holds in `book` (the state store's), and honour those it holds
        already: a wait Globus asked of an earlier process is not over because this one is new."""
        try:
            held = book.load()
        except Exception as exc:  # an unreadable book must not stop the pass
            log.warning("reading the Retry-After holds failed: %s", exc)
            held = []
        now = self._clock.now()
        over = [hold.key for hold in held if hold.until <= now or now < hold.since]
        with self._lock:
            self._hold_book = book
            for hold in held:
                known = self._holds.get(hold.key)
                if hold.key not in over and (known is None or known.until < hold.until):
                    self._holds[hold.key] = hold
        for key in over:
            try:
                book.drop(key)
            except Exception as exc:
                log.warning("clearing the Retry-After hold for %s failed: %s", key, exc)

    def wait_out(self, key: str, what: str) -> None:
        """Refuse a call Globus asked us to hold back (`Retry-After` not over yet).

        Raises:
            TransientError: the wait is not over; says how long is left. Nothing is sent, and
                calls for other keys (other collections) go on.
        """
        with self._lock:
            hold = self._holds.get(key)
        if hold is None:
            return
        now = self._clock.now()
        left = (hold.until - now).total_seconds()
        # A clock set back before the hold began would stretch the wait: it is over then.
        if left <= 0 or now < hold.since:
            self._drop_hold(key)
            return
        raise TransientError(
            f"{what}: Globus asked to wait (Retry-After, when {hold.what}); {left:.0f} s left "
            f"(until {hold.until.isoformat()}), not asked before"
        )

    def note_retry_after(self, key: str, exc: BaseException, what: str = "") -> None:
        """After a 429/503 the SDK gave up on (it sleeps at most `max_sleep` per retry),
        remember its `Retry-After` so no call for `key` is sent before it is over, by this
        process or (with a hold book) the next one."""
        if not isinstance(exc, globus_sdk.GlobusAPIError) or exc.http_status not in (429, 503):
            return
        try:
            seconds = float(exc.headers.get("Retry-After", ""))
        except (TypeError, ValueError):
            return  # absent, or an HTTP date: the engine's backoff applies
        if not seconds > 0:
            return
        now = self._clock.now()
        hold = Hold(key, now, now + timedelta(seconds=seconds), what or key)
        with self._lock:
            self._holds[key] = hold
            book = self._hold_book
        log.warning("Globus asked to wait %.0f s (Retry-After) for %s", seconds, hold.what)
        if book is not None:
            try:
                book.put(hold)
            except Exception as exc2:  # kept in memory at least
                log.warning("recording the Retry-After hold for %s failed: %s", key, exc2)

    def _drop_hold(self, key: str) -> None:
        with self._lock:
            self._holds.pop(key, None)
            book = self._hold_book
        if book is not None:
            try:
                book.drop(key)
            except Exception as exc:
                log.warning("clearing the Retry-After hold for %s failed: %s", key, exc)

    def name_of(self, collection: str) -> str:
        """`name (collection uuid)` for messages."""
        name = self.collections.get(collection)
        return f"{name} (collection {collection})" if name else f"collection {collection}"

    def scrub(self, text: str) -> str:
        """Remove the client secret from text that will be logged or raised."""
        secret = self._secret.reveal()
        return text.replace(secret, "***") if secret else text

    def close(self) -> None:
        """Close every client, the transports built for them (a client does not close a
        transport it was handed), and the app with its login client."""
        for client in self._clients:
            client.close()
            client.transport.close()
        self._clients.clear()
        self.app.close()
        self._login_client.close()


def _collections_in(exc: globus_sdk.GlobusAPIError, session: GlobusSession | None) -> list[str]:
    found: list[str] = []
    scopes: Iterable[str] = exc.info.consent_required.required_scopes or []
    for scope in scopes:
        found.extend(_SCOPE_COLLECTION.findall(scope))
    if not found and session is not None:
        found = [c for c in session.collections if c in (exc.message or "")]
    return found


def translate_error(exc: BaseException, what: str, session: GlobusSession | None) -> Bl931Error:
    """Classify an exception from globus-sdk into the engine's error hierarchy.

    Args:
        exc: what globus-sdk raised.
        what: the operation, for the message ("listing cfs:/raw/2026").
        session: names collections and scrubs the secret (may be None).

    Returns:
        `TransientError` for 429, 5xx and network failures (worth retrying with backoff);
        `NeedsHumanError` for consent, authentication (401) and 403s (identity mapping, ACLs,
        which only an administrator can fix); `TerminalError` for any other 4xx.
    """
    if isinstance(exc, Bl931Error):
        return exc

    def clean(text: str) -> str:
        return session.scrub(text) if session is not None else text

    client_hint = (
        f"{session.client_id}@clients.auth.globus.org" if session is not None else "the client"
    )
    if isinstance(exc, globus_sdk.GlobusAPIError):
        status, code = exc.http_status, exc.code or "Error"
        message = clean(" ".join(str(exc.message or exc.text or "").split()))[:500]
        detail = f"{what}: Globus answered {status} {code}: {message}"
        if status == 429 or status >= 500:
            return TransientError(detail)
        if isinstance(exc, globus_sdk.AuthAPIError) or status == 401:
            return NeedsHumanError(
                f"{detail}. The confidential client's credentials were refused or have expired: "
                f"check {CLIENT_ID_VAR} / {CLIENT_SECRET_VAR} (or the secrets file) against the "
                f"client registered at app.globus.org; {DOCS_HINT}"
            )
        collections = _collections_in(exc, session)
        named = (
            ", ".join(session.name_of(c) for c in collections)
            if session is not None and collections
            else ", ".join(collections) or "the collection"
        )
        if code == "ConsentRequired":
            return NeedsHumanError(
                f"{what}: {named} requires data_access consent that the client's token does "
                f"not carry. Make sure {client_hint} is allowed on it (storage gateway allows "
                f"the clients.auth.globus.org domain and an identity mapping exists), then "
                f"restart so the token is requested again; {DOCS_HINT}"
            )
        if status == 403:
            return NeedsHumanError(
                f"{detail}. {named} refused {client_hint}: its GCS administrator must add an "
                f"identity mapping (mapped collection) or an ACL (guest collection) for it; "
                f"{DOCS_HINT}"
            )
        return TerminalError(detail)
    if isinstance(exc, globus_sdk.NetworkError):
        return TransientError(
            f"{what}: cannot reach Globus ({type(exc).__name__}: {clean(str(exc))})"
        )
    if isinstance(exc, globus_sdk.GlobusSDKUsageError):
        return TerminalError(f"{what}: {clean(str(exc))}")
    return TransientError(f"{what}: {type(exc).__name__}: {clean(str(exc))}")

"""The SciCat catalog: scans registered as `RawDataset`s through pyscicat.

Each scan is one dataset plus one `OrigDatablock` listing its files. Its pid is derived once
(`dataset_pid`) and then kept in the state store (`engine.catalog.pid_book`): a scan's pid never
changes, whatever later happens to `pid_prefix`, the beamline name or `creation_location`.

Finding bl931's datasets. The backend (since v4.27, `WherePipe`) turns every *string* value in a
`where` filter that JavaScript's `new Date()` accepts into a Date — and V8 accepts "ALS 9.3.1",
"/ALS/9.3.1", "scan 1", "0001" — so an equality on such a string silently finds nothing. Every
`where` value bl931 sends is therefore a list (`inq`), whose members are left alone. Datasets are
found by fields that never change: the stored pid, and `scientificMetadata.scan_id` / `.beamline`
(never by the descriptive `creationLocation` or `sourceFolder`).

Registration is idempotent and crash-safe:

1. look the dataset up (by its pid; for a scan with no stored pid also by scan id and beamline);
2. if absent, create it with its lifecycle and *without* `size` (SciCat adds each datablock's size
   and file count to its dataset); a 409 (a create whose response was lost) is adopted; the pid is
   recorded in the state store as soon as the dataset exists;
3. post the datablock unless the dataset already has one — a crash between 2 and 3 is completed by
   the next call, never duplicated;
4. an adopted dataset always gets its lifecycle merged (`PATCH /Datasets/{pid}/datasetlifecycle`),
   so a create that crashed before its lifecycle is completed.

An observation that lists fewer of the scans the state store recorded as registered is not taken
as "not registered": the session is checked (`/auth/whoami`; an expired token reads as anonymous,
which lists only published datasets), and each missing pid is read directly — only a 404 proves a
dataset gone; a 403 is a dataset that belongs to another group (needs a person).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any
from urllib.parse import quote, quote_plus

from engine.catalog import scicat_refusals as refusals
from engine.catalog.base import Location
from engine.catalog.dataset import (
    SCAN_ID_KEY,
    compile_path_template,
    dataset_body,
    dataset_pid,
    lifecycle_body,
    locations_from_document,
    recorded_endpoints,
    replay_body,
    require_principal_investigator,
    scan_from_document,
    scan_id_of,
)
from engine.catalog.pid_book import MemoryPidBook, PidBook, PidSettings
from engine.catalog.scicat_http import NotFound, Redactor
from engine.catalog.scicat_observe import registered_datasets
from engine.catalog.scicat_session import ScicatSession
from engine.catalog.scicat_write import (
    create_dataset,
    ensure_datablock,
    merge_lifecycle,
    patch_locations,
)
from engine.clock import Clock, as_clock
from engine.config import CatalogConfig
from engine.errors import (
    Bl931Error,
    CatalogUnavailable,
    ConfigError,
    TerminalError,
)
from engine.model import CatalogView, Scan
from engine.secrets import Secret, lookup

log = logging.getLogger(__name__)


class ScicatCatalog:
    """A `Catalog` backed by a SciCat backend's `/api/v3` routes."""

    name = "scicat"

    def __init__(
        self,
        config: CatalogConfig,
        *,
        url: str,
        token: Secret | None,
        username: Secret | None,
        password: Secret | None,
        beamline: str,
        timeout_seconds: float | None = None,
        page_size: int = 1000,
        clock: Clock | None = None,
        pid_book: PidBook | None = None,
    ) -> None:
        """Nothing is contacted until the first call (login is lazy).

        Args:
            pid_book: where each scan's pid is kept (the state store's; in memory by default).

        Raises:
            ConfigError: neither a token nor a username and password, a bad `path_template`, or
                no principal investigator.
        """
        if token is None and (username is None or password is None):
            raise ConfigError(
                "the SciCat catalog needs SCICAT_TOKEN, or SCICAT_USERNAME and SCICAT_PASSWORD"
            )
        self.config = config
        self.url = url.rstrip("/")
        self.beamline = beamline
        self.timeout_seconds = timeout_seconds or config.timeout_seconds
        self.page_size = page_size
        self.clock = as_clock(clock)
        self.pid_book: PidBook = pid_book if pid_book is not None else MemoryPidBook()
        self.template = compile_path_template(config.path_template)
        require_principal_investigator(config, self.template)
        # The username is not secret (and redacting a short one would mangle every message).
        self._redact = Redactor([s.reveal() for s in (token, password) if s])
        self.session = ScicatSession(
            self.url,
            token=token,
            username=username,
            password=password,
            timeout_seconds=self.timeout_seconds,
            clock=self.clock,
            redact=self._redact,
        )
        self._account: dict[str, Any] | None = None  # whoami of the current session
        self._account_of: object = None

    @classmethod
    def from_environment(
        cls,
        config: CatalogConfig,
        environ: Mapping[str, str] | None = None,
        *,
        beamline: str = "9.3.1",
        clock: Clock | None = None,
    ) -> ScicatCatalog:
        """Build from `SCICAT_URL` and `SCICAT_TOKEN` or `SCICAT_USERNAME` / `SCICAT_PASSWORD`.

        Each is read from `environ` (default `os.environ`), else from `[catalog] secrets_file`.

        Raises:
            ConfigError: a variable is missing (the message names which), or the secrets file is
                unsafe or unreadable.
        """

        def get(name: str) -> Secret | None:
            return lookup(name, secrets_file=config.secrets_file, environ=environ)

        where = "in the environment" + (
            f" or in {config.secrets_file}" if config.secrets_file else ""
        )
        url = get("SCICAT_URL")
        if url is None:
            raise ConfigError(
                f'[catalog] kind = "scicat" needs SCICAT_URL {where} '
                "(e.g. https://scicat.example.org/api/v3)"
            )
        token, username, password = (
            get("SCICAT_TOKEN"),
            get("SCICAT_USERNAME"),
            get("SCICAT_PASSWORD"),
        )
        if token is None and (username is None or password is None):
            missing = [
                n
                for n, v in (("SCICAT_USERNAME", username), ("SCICAT_PASSWORD", password))
                if v is None
            ]
            raise ConfigError(
                f'[catalog] kind = "scicat" needs SCICAT_TOKEN, or SCICAT_USERNAME and '
                f"SCICAT_PASSWORD, {where} (missing: SCICAT_TOKEN, {', '.join(missing)})"
            )
        base = url.reveal().rstrip("/")
        if "/api/" not in base:
            base += "/api/v3"
        return cls(
            config,
            url=base,
            token=token,
            username=username,
            password=password,
            beamline=beamline,
            clock=clock,
        )

    # ---- transport ----------------------------------------------------------------------------

    @property
    def settings(self) -> PidSettings:
        """The settings new datasets are created with."""
        return PidSettings(self.config.pid_prefix, self.beamline, self.config.creation_location)

    def call(
        self,
        method: str,
        endpoint: str,
        body: Any = None,
        *,
        operation: str,
        refusal: Any = None,
    ) -> Any:
        """One API call through the session, secrets redacted from any error.

        Raises:
            NotFound, Conflict: answers the caller handles.
            TransientError / TerminalError / NeedsHumanError: everything else.
        """
        try:
            return self.session.call(method, endpoint, body, operation=operation, refusal=refusal)
        except Bl931Error as exc:
            exc.message = self._redact(exc.message)
            exc.args = (exc.message,)
            raise

    def account(self) -> dict[str, Any] | None:
        """The session's account (`/auth/whoami`, with `currentGroups`), once per session."""
        client = self.session.client()
        if self._account_of is not client:
            self._account = self.session.authenticated()
            self._account_of = client
        return self._account

    # ---- look-ups -----------------------------------------------------------------------------

    def _pid_of(self, scan_id: str) -> str:
        return self.pid_book.get(scan_id) or dataset_pid(
            scan_id, prefix=self.config.pid_prefix, beamline=self.beamline
        )

    def is_ours(self, doc: Mapping[str, Any], scan_id: str, recorded: Mapping[str, str]) -> bool:
        """Whether `doc` is the dataset bl931 made for `scan_id` (and not another deployment's)."""
        pid = str(doc.get("pid"))
        if scan_id in recorded:
            return pid == recorded[scan_id]
        metadata = doc.get("scientificMetadata") or {}
        made_for = (metadata.get("beamline") or {}).get("value", self.beamline)
        # The uuid part is derived from beamline and scan id whatever the prefix was.
        return pid == self._pid_of(scan_id) or pid.endswith(
            dataset_pid(scan_id, prefix="", beamline=str(made_for))
        )

    def _get_dataset(self, pid: str) -> dict[str, Any] | None:
        """The dataset, None on 404; a 403 with a valid session is another group's dataset."""
        try:
            found = self.call(
                "get",
                f"Datasets/{quote_plus(pid)}",
                operation="get dataset",
                refusal=lambda r: refusals.another_group(pid, self.session.who, r),
            )
        except NotFound:
            return None
        return found if isinstance(found, dict) and found else None

    def query(self, where: Mapping[str, Any], *, skip: int, limit: int) -> list[dict[str, Any]]:
        # pyscicat does not URL-encode filters (`+`, `&`, `#` break them), so encode here.
        filter_json = json.dumps(
            {"where": where, "limits": {"skip": skip, "limit": limit, "order": "pid:asc"}},
            separators=(",", ":"),
        )
        page = self.call(
            "get", f"Datasets?filter={quote(filter_json, safe='')}", operation="list datasets"
        )
        if not isinstance(page, list):
            raise TerminalError("SciCat list datasets: expected a JSON list")
        return [d for d in page if isinstance(d, dict)]

    def _find_existing(self, scan: Scan, pid: str | None = None) -> dict[str, Any] | None:
        """The scan's dataset if one exists: by its pid, then (no pid recorded) by scan id."""
        known = self._get_dataset(pid or self._pid_of(scan.id))
        if known is not None or self.pid_book.get(scan.id) is not None:
            return known
        where = {
            f"scientificMetadata.{SCAN_ID_KEY}.value": {"inq": [scan.id]},
            "scientificMetadata.beamline.value": {"inq": [self.beamline]},
        }
        for candidate in self.query(where, skip=0, limit=self.page_size):
            if scan_id_of(candidate) == scan.id and self.is_ours(candidate, scan.id, {}):
                return candidate
        return None

    def dataset(self, pid: str) -> dict[str, Any] | None:
        """One dataset by pid (None: 404). A 403 with a valid session raises needs-human."""
        return self._get_dataset(pid)

    def visible_datasets(self, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` datasets the account can see (any owner), for the start-up probe."""
        return self.query({}, skip=0, limit=limit)

    # ---- the Catalog protocol ---------------------------------------------------------------

    def observe(self, scans: Collection[str]) -> CatalogView:
        """The registered scans among `scans`: one query per page of bl931's datasets.

        Raises:
            CatalogUnavailable: SciCat could not be read, or listed fewer datasets than the state
                store recorded and the difference could not be explained (the class of the cause
                is kept).
        """
        wanted = scans if isinstance(scans, set | frozenset | dict) else set(scans)
        try:
            found = registered_datasets(self, wanted)
        except Bl931Error as exc:
            raise CatalogUnavailable(
                f"SciCat catalog at {self.url}: {exc.message}", error_class=exc.error_class
            ) from None
        locations: dict[str, frozenset[str]] = {}
        for scan_id, doc in found.items():
            if not doc.get("numberOfFiles"):
                # Created, but its datablock never arrived (a crash between the two):
                # reported as unregistered, so the next `register` completes it.
                log.info("SciCat: %s has no datablock yet; not registered", scan_id)
                continue
            locations[scan_id] = recorded_endpoints(doc)
        log.debug("SciCat: %d of %d scans registered", len(locations), len(wanted))
        return CatalogView(enabled=True, locations=locations)

    def register(self, scan: Scan, locations: Sequence[Location]) -> str:
        """Register the scan's dataset and datablock; adopt and complete an existing one.

        Returns:
            The dataset's pid.
        """
        body = dataset_body(
            scan, locations, self.config, beamline=self.beamline, template=self.template
        )
        body["pid"] = self._pid_of(scan.id)
        return self._register(scan, body, lifecycle_body(locations, self.config), locations)

    def replay(self, doc: Mapping[str, Any]) -> str:
        """Register a stored local document as it was recorded (back-fill).

        Its `sourceFolder`, dates, metadata and lifecycle are sent as stored; only the pid a
        scan was already registered with (if any) takes precedence over the document's.
        """
        scan = scan_from_document(doc)
        locations = locations_from_document(doc)
        body = replay_body(doc, self.config)
        body["pid"] = self.pid_book.get(scan.id) or str(doc.get("pid") or self._pid_of(scan.id))
        lifecycle = dict(doc.get("datasetlifecycle") or lifecycle_body(locations, self.config))
        return self._register(scan, body, lifecycle, locations)

    def _register(
        self,
        scan: Scan,
        body: dict[str, Any],
        lifecycle: Mapping[str, Any],
        locations: Sequence[Location],
    ) -> str:
        existing = self._find_existing(scan, str(body["pid"]))
        if existing is None:
            pid, existing = create_dataset(self, scan, body, lifecycle)
        else:
            pid = str(existing["pid"])
            log.info("SciCat: %s already registered as %s; adopting it", scan.id, pid)
        self.pid_book.record(scan.id, pid, self.settings, self.clock.now())
        ensure_datablock(self, scan, pid, fresh=existing is None)
        if existing is not None:
            if recorded_endpoints(existing) != {loc.endpoint for loc in locations}:
                patch_locations(self, scan, pid, existing, locations)
            else:
                merge_lifecycle(self, pid, lifecycle)
        return pid

    def update_locations(self, scan: Scan, locations: Sequence[Location]) -> None:
        """Record the current locations (scientificMetadata) and lifecycle of a registered scan.

        Raises:
            TerminalError: the scan has no dataset.
        """
        current = self._find_existing(scan)
        if current is None:
            pid = self._pid_of(scan.id)
            raise TerminalError(f"{scan.id}: not registered in SciCat (no dataset {pid})")
        pid = str(current["pid"])
        self.pid_book.record(scan.id, pid, self.settings, self.clock.now())
        patch_locations(self, scan, pid, current, locations)

    def flush(self) -> None:
        """Nothing to do: every SciCat call is durable when it returns."""

    def close(self) -> None:
        self.session.close()

"""The SciCat catalog: scans registered as `RawDataset`s through pyscicat.

Each scan is one dataset with a deterministic pid (`engine.catalog.dataset.dataset_pid`) plus one
`OrigDatablock` listing its files. Registration is idempotent and crash-safe:

1. look the dataset up (by pid, then by `sourceFolder` + scan id);
2. if absent, create it *without* `size`: SciCat adds each datablock's size and file count to its
   dataset, so creating with `size` set would count the bytes twice; a 409 ("already exists",
   a create whose response was lost) is adopted;
3. post the datablock unless the dataset already has one — a crash between 2 and 3 is completed by
   the next call, never duplicated;
4. merge the lifecycle (`PATCH /Datasets/{pid}/datasetlifecycle`).

Tokens: an expired token is 401 `SESSION_EXPIRED` on backend ≥ 5.2 and 403 before; a missing or
bad token is 403. On either, bl931 logs in again once with a fresh client (when it has a username
and password); a second refusal is a needs-human permission error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any
from urllib.parse import quote, quote_plus

import requests
from pydantic import ValidationError
from pyscicat.model import CreateDatasetOrigDatablockDto, DataFile, RawDataset

from engine.catalog.base import Location
from engine.catalog.dataset import (
    compile_path_template,
    datablock_body,
    dataset_body,
    dataset_pid,
    lifecycle_body,
    recorded_endpoints,
    scan_id_of,
    scientific_metadata,
    source_folder,
    source_location,
)
from engine.catalog.scicat_http import (
    AuthRejected,
    Conflict,
    HeaderTokenClient,
    NotFound,
    Redactor,
    classify_network_error,
    decode,
    permission_error,
)
from engine.config import CatalogConfig
from engine.errors import (
    Bl931Error,
    CatalogUnavailable,
    ConfigError,
    NeedsHumanError,
    TerminalError,
)
from engine.model import CatalogView, Scan
from engine.secrets import Secret, lookup

log = logging.getLogger(__name__)


class OrigDatablockBody(CreateDatasetOrigDatablockDto):
    """pyscicat's datablock DTO with `chkAlg` as the string the backend expects (int in 0.4.8)."""

    chkAlg: str | None = None


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
    ) -> None:
        """Nothing is contacted until the first call (login is lazy).

        Raises:
            ConfigError: neither a token nor a username and password, or a bad `path_template`.
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
        self._token = token
        self._username = username
        self._password = password
        self._template = compile_path_template(config.path_template)
        # The username is not secret (and redacting a short one would mangle every message).
        self._redact = Redactor([s.reveal() for s in (token, password) if s])
        self._client: HeaderTokenClient | None = None
        self._pids: dict[str, str] = {}  # scan id → pid, learnt from observe/register

    @classmethod
    def from_environment(
        cls,
        config: CatalogConfig,
        environ: Mapping[str, str] | None = None,
        *,
        beamline: str = "9.3.1",
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
        )

    # ---- transport ----------------------------------------------------------------------------

    @property
    def _can_login(self) -> bool:
        return self._username is not None and self._password is not None

    def _connect(self, *, fresh_login: bool) -> HeaderTokenClient:
        if self._client is not None and not fresh_login:
            return self._client
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._token is not None and not fresh_login:
            client = HeaderTokenClient(
                self.url, token=self._token.reveal(), timeout_seconds=self.timeout_seconds
            )
        else:
            assert self._username is not None and self._password is not None
            # A new client, not `client.login()`: pyscicat would re-send the expired token.
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
                    f"({self._redact(str(rejected))}); check SCICAT_USERNAME and SCICAT_PASSWORD"
                ) from None
            except requests.RequestException as exc:
                raise classify_network_error(exc, self.url, "log in") from None
            self._redact.add(client._token)
            log.info("logged in to SciCat at %s", self.url)
        self._client = client
        return client

    def _call(
        self,
        method: str,
        endpoint: str,
        body: Any = None,
        *,
        operation: str,
    ) -> Any:
        """One API call: logs in (again, once) as needed and classifies every failure.

        Raises:
            NotFound, Conflict: answers the caller handles.
            TransientError / TerminalError / NeedsHumanError: everything else, secrets redacted.
        """
        try:
            return self._call_unredacted(method, endpoint, body, operation=operation)
        except Bl931Error as exc:
            exc.message = self._redact(exc.message)
            exc.args = (exc.message,)
            raise

    def _call_unredacted(self, method: str, endpoint: str, body: Any, *, operation: str) -> Any:
        relogged = self._client is None and self._token is None
        client = self._connect(fresh_login=False)
        while True:
            try:
                response = client._send_to_scicat(method, endpoint, body)
            except requests.RequestException as exc:
                raise classify_network_error(exc, self.url, operation) from None
            try:
                return decode(response, operation)
            except AuthRejected as rejected:
                if relogged or not self._can_login:
                    who = f"user {self._username.reveal()!r}" if self._username else "the token"
                    raise permission_error(operation, who, rejected, relogged) from None
                log.warning(
                    "SciCat refused the session during %s (%s); logging in again",
                    operation,
                    self._redact(str(rejected)),
                )
                client = self._connect(fresh_login=True)
                relogged = True

    # ---- look-ups -----------------------------------------------------------------------------

    def _pid_of(self, scan: Scan) -> str:
        return self._pids.get(scan.id) or dataset_pid(
            scan.id, prefix=self.config.pid_prefix, beamline=self.beamline
        )

    def _get_dataset(self, pid: str) -> dict[str, Any] | None:
        try:
            found = self._call("get", f"Datasets/{quote_plus(pid)}", operation="get dataset")
        except NotFound:
            return None
        return found if isinstance(found, dict) and found else None

    def _query(self, where: Mapping[str, Any], *, skip: int, limit: int) -> list[dict[str, Any]]:
        # pyscicat does not URL-encode filters (`+`, `&`, `#` break them), so encode here.
        filter_json = json.dumps(
            {"where": where, "limits": {"skip": skip, "limit": limit, "order": "pid:asc"}},
            separators=(",", ":"),
        )
        page = self._call(
            "get", f"Datasets?filter={quote(filter_json, safe='')}", operation="list datasets"
        )
        if not isinstance(page, list):
            raise TerminalError("SciCat list datasets: expected a JSON list")
        return [d for d in page if isinstance(d, dict)]

    def _find_existing(self, scan: Scan, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """The scan's dataset if one exists: by pid first, then by sourceFolder and scan id."""
        known = self._get_dataset(self._pid_of(scan))
        if known is not None:
            return known
        where = {
            "sourceFolder": body["sourceFolder"],
            "creationLocation": self.config.creation_location,
        }
        for candidate in self._query(where, skip=0, limit=self.page_size):
            if scan_id_of(candidate) == scan.id:
                return candidate
        return None

    # ---- the Catalog protocol ---------------------------------------------------------------

    def observe(self, scans: Collection[str]) -> CatalogView:
        """The registered scans among `scans`: one query per page of this beamline's datasets.

        Raises:
            CatalogUnavailable: SciCat could not be read (the class of the cause is kept).
        """
        wanted = scans if isinstance(scans, set | frozenset | dict) else set(scans)
        locations: dict[str, frozenset[str]] = {}
        where = {"creationLocation": self.config.creation_location}
        skip = 0
        try:
            while True:
                page = self._query(where, skip=skip, limit=self.page_size)
                for doc in page:
                    scan_id = scan_id_of(doc)
                    if scan_id is None or scan_id not in wanted:
                        continue
                    self._pids[scan_id] = str(doc.get("pid"))
                    if not doc.get("numberOfFiles"):
                        # Created, but its datablock never arrived (a crash between the two):
                        # reported as unregistered, so the next `register` completes it.
                        log.info("SciCat: %s has no datablock yet; not registered", scan_id)
                        continue
                    locations[scan_id] = recorded_endpoints(doc)
                if len(page) < self.page_size:
                    break
                skip += self.page_size
        except Bl931Error as exc:
            raise CatalogUnavailable(
                f"SciCat catalog at {self.url}: {exc.message}", error_class=exc.error_class
            ) from None
        log.debug("SciCat: %d of %d scans registered", len(locations), len(wanted))
        return CatalogView(enabled=True, locations=locations)

    def register(self, scan: Scan, locations: Sequence[Location]) -> str:
        """Register the scan's dataset and datablock; adopt and complete an existing one.

        Returns:
            The dataset's pid.
        """
        body = dataset_body(
            scan, locations, self.config, beamline=self.beamline, template=self._template
        )
        existing = self._find_existing(scan, body)
        if existing is None:
            pid, existing = self._create(scan, body)
        else:
            pid = str(existing["pid"])
            log.info("SciCat: %s already registered as %s; adopting it", scan.id, pid)
        self._pids[scan.id] = pid
        self._ensure_datablock(scan, pid, fresh=existing is None)
        if existing is None:
            self._patch_lifecycle(pid, locations)
        elif recorded_endpoints(existing) != {loc.endpoint for loc in locations}:
            self._patch_locations(scan, pid, existing, locations)
        return pid

    def _create(self, scan: Scan, body: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        try:
            model = RawDataset.model_validate(body)
        except ValidationError as exc:
            fields = "\n".join(
                f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise TerminalError(f"{scan.id}: the dataset is invalid:\n{fields}") from None
        try:
            created = self._call("post", "Datasets", model, operation="create dataset")
        except Conflict:
            # Created before a crash or a lost response: adopt it, then complete it.
            adopted = self._get_dataset(str(body["pid"]))
            if adopted is None:
                raise TerminalError(
                    f"{scan.id}: SciCat says {body['pid']} exists but does not return it"
                ) from None
            log.info("SciCat: %s existed already (409); adopting it", body["pid"])
            return str(adopted["pid"]), adopted
        pid = str(created["pid"]) if isinstance(created, dict) and "pid" in created else body["pid"]
        log.info("SciCat: registered %s as %s", scan.id, pid)
        return pid, None

    def _ensure_datablock(self, scan: Scan, pid: str, *, fresh: bool) -> None:
        if not scan.files:
            return
        path = f"Datasets/{quote_plus(pid)}/origdatablocks"
        if not fresh:
            blocks = self._call("get", path, operation="list datablocks")
            if blocks:
                return
            log.info("SciCat: completing %s (created before its datablock)", pid)
        block = datablock_body(scan)
        model = OrigDatablockBody(
            size=block["size"],
            chkAlg=block["chkAlg"],
            dataFileList=[DataFile(**entry) for entry in block["dataFileList"]],
        )
        self._call("post", path, model, operation="create datablock")

    def _patch_lifecycle(self, pid: str, locations: Sequence[Location]) -> None:
        # The sub-route merges; `PATCH /Datasets/{pid}` with `datasetlifecycle` would replace it.
        self._call(
            "patch",
            f"Datasets/{quote_plus(pid)}/datasetlifecycle",
            lifecycle_body(locations, self.config),
            operation="update lifecycle",
        )

    def _patch_locations(
        self, scan: Scan, pid: str, current: Mapping[str, Any], locations: Sequence[Location]
    ) -> None:
        fields = self._template.extract(scan.id) if self._template else {}
        ours = scientific_metadata(scan, locations, fields, beamline=self.beamline)
        # A PATCH replaces scientificMetadata whole: keep keys others wrote.
        merged = {**(current.get("scientificMetadata") or {}), **ours}
        self._call(
            "patch",
            f"Datasets/{quote_plus(pid)}",
            {"scientificMetadata": merged},
            operation="update locations",
        )
        self._patch_lifecycle(pid, locations)
        log.info(
            "SciCat: %s now at %s", scan.id, ", ".join(x.endpoint for x in locations) or "nowhere"
        )

    def update_locations(self, scan: Scan, locations: Sequence[Location]) -> None:
        """Record the current locations (scientificMetadata) and lifecycle of a registered scan.

        Raises:
            TerminalError: the scan has no dataset.
        """
        pid = self._pid_of(scan)
        current = self._get_dataset(pid)
        if current is None and locations:
            source = source_location(scan, locations, self.config)
            current = self._find_existing(scan, {"sourceFolder": source_folder(scan, source)})
        if current is None:
            raise TerminalError(f"{scan.id}: not registered in SciCat (no dataset {pid})")
        pid = str(current["pid"])
        self._pids[scan.id] = pid
        self._patch_locations(scan, pid, current, locations)

    def flush(self) -> None:
        """Nothing to do: every SciCat call is durable when it returns."""

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

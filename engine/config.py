# Over 400 lines: split pending: issue 15 (section models vs. cross-section policy validation).
"""TOML configuration → a validated, typed `Config`.

Every error names the file, the key path and what was expected. Beyond types, validation
checks the policy itself: endpoint names resolve, copies form no cycle, no retention
policy can ever delete a scan's last copy, and no two endpoints are the same storage as far as
their paths show (same path, a symlink to it, one inside the other).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine import config_errors, splash
from engine.errors import ConfigError
from engine.export_control import ExportControlConfig
from engine.model import ActionKind, Level
from engine.operators import APPROVER_ENTRY
from engine.storage.same_storage import Place, overlapping_places, remote_root, resolved
from engine.storage.tape_sfapi_settings import SfapiSettings

DEFAULT_LOCATIONS = (Path("bl931.toml"), Path("~/.config/bl931/config.toml"))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _as_written(cls, value: Any, info: ValidationInfo) -> Any:
        """TOML has types: `tape = "yes"` or `depth = "3"` is a mistake, not a true or a 3."""
        if info.field_name is None:
            return value
        wanted = set(get_args(cls.model_fields[info.field_name].annotation)) or {
            cls.model_fields[info.field_name].annotation
        }
        if bool in wanted and not isinstance(value, bool):
            raise PydanticCustomError("bool_type", "should be a boolean")
        if wanted & {int, float} and (isinstance(value, (bool, str))):
            kind = "int_type" if int in wanted else "float_type"
            raise PydanticCustomError(kind, "should be a number")
        return value


class BeamlineConfig(_Section):
    name: str = "9.3.1"


class StateConfig(_Section):
    path: Path = Path("~/.local/state/bl931/state.sqlite")


class InventoryConfig(_Section):
    endpoint: str = "dtn"
    scan: Literal["file", "directory"] = "file"
    depth: int = Field(default=1, ge=1, le=16)
    include: tuple[str, ...] = ("**/*",)
    exclude: tuple[str, ...] = ("**/.*", "**/*.tmp", "**/*.part")
    quiet_seconds: float = Field(default=30, ge=0)
    checksum: Literal["md5", "sha1", "sha256", "sha512", "blake2b"] = "md5"
    watch: Literal["inotify", "poll", "off"] = "inotify"
    done_marker: str | None = None
    rescan_minutes: float = Field(default=10, gt=0)


class EndpointConfig(_Section):
    kind: Literal["local", "globus", "tape"]
    path: Path | None = None
    collection: str | None = None
    root: str | None = None
    tape: bool = False
    # Outside the facility: an export-controlled scan is never copied here (engine/export_control.py).
    offsite: bool = False
    list_timeout_seconds: float | None = Field(default=None, gt=0)
    # The root must be a mount point, on the device recorded when its marker was written.
    mount: bool = False
    # kind = "tape" only (engine/storage/tape*.py; docs/hpss.md)
    runner: Literal["local", "sfapi"] = "local"
    sfapi: SfapiSettings | None = None  # runner = "sfapi": [endpoints.<name>.sfapi]
    bundle_by: Literal["cycle", "proposal", "month"] = "cycle"
    bundle_max_bytes: int = Field(default=2_000_000_000_000, gt=0)
    close_after_days: float = Field(default=14, ge=0)
    proposal_level: int = Field(default=3, ge=1, le=16)
    tools: Path | None = None

    @model_validator(mode="after")
    def _needs_location(self) -> EndpointConfig:
        if self.kind == "tape":
            if self.runner == "local" and self.path is None:
                raise ValueError(
                    'a tape endpoint with runner = "local" needs `path` (the directory that '
                    "stands in for HPSS)"
                )
            if self.runner == "sfapi" and not self.root:
                raise ValueError(
                    'a tape endpoint with runner = "sfapi" needs `root` (its HPSS directory)'
                )
            return self
        if self.kind == "local" and self.path is None:
            raise ValueError("a local endpoint needs `path` (the directory that holds its tree)")
        if self.kind == "globus" and (not self.collection or not self.root):
            raise ValueError("a globus endpoint needs `collection` (its UUID) and `root`")
        return self


class CopyConfig(_Section):
    from_: str = Field(alias="from")
    to: str


class RetentionConfig(_Section):
    keep_days: float = Field(ge=0)
    delete_requires: tuple[str, ...] = ()
    verify: Literal["size", "checksum"] = "checksum"

    @property
    def verify_level(self) -> Level:
        return Level.parse(self.verify)


class ApprovalConfig(_Section):
    required_for: tuple[ActionKind, ...] = (ActionKind.DELETE,)
    # Who may decide: user names and `@group` names (engine/operators.py). None: the service
    # user (the owner of the state store) alone.
    approvers: tuple[str, ...] | None = None
    # The group whose members may read the state store and reach the decision socket.
    readers_group: str | None = None
    # A delete (or replace) of more bytes than this runs only after two different approvers.
    second_approver_over_bytes: int | None = Field(default=None, ge=0)

    @field_validator("approvers")
    @classmethod
    def _approver_names(cls, entries: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for entry in entries or ():
            if not APPROVER_ENTRY.fullmatch(entry):
                raise ValueError(
                    f"{entry!r} is not a user name or @group name "
                    '(e.g. approvers = ["alice", "@bl931-ops"])'
                )
        return entries

    @field_validator("readers_group")
    @classmethod
    def _group_name(cls, name: str | None) -> str | None:
        if name is not None and (name.startswith("@") or not APPROVER_ENTRY.fullmatch(name)):
            raise ValueError(f'{name!r} is not a group name (e.g. readers_group = "bl931-ops")')
        return name


class SafetyConfig(_Section):
    max_missing_fraction: float = Field(default=0.1, gt=0, le=1)
    max_deletes_per_pass: int = Field(default=1000, ge=0)
    max_observation_age: float = Field(default=3600, gt=0)
    # Circuit breaker: after this many consecutive listing failures an endpoint is not listed
    # again for `endpoint_backoff_seconds`, doubling per further failure up to the maximum.
    endpoint_backoff_after: int = Field(default=3, ge=1)
    endpoint_backoff_seconds: float = Field(default=60, gt=0)
    endpoint_backoff_max_seconds: float = Field(default=1800, gt=0)
    # The service's steady passes re-read only local folders whose stat changed; every local
    # tree is read in full (every file stat'ed) at least this often (engine/incremental).
    full_walk_seconds: float = Field(default=3600, gt=0)
    # The service's steady passes list on Globus only the folders of scans that are not settled
    # plus a rolling slice, so that every settled scan is listed at least this often
    # (engine/incremental/remote_slice.py).
    reverify_days: float = Field(default=7, gt=0)


class RetryConfig(_Section):
    base_seconds: float = Field(default=30, gt=0)
    max_seconds: float = Field(default=3600, gt=0)


class GlobusConfig(_Section):
    max_items_per_task: int = Field(default=1000, ge=1)
    # Tasks of each kind (transfers; deletes) kept open per Globus identity: Transfer works on 3
    # transfer and 3 delete tasks per identity at a time and queues the rest.
    max_active_tasks: int = Field(default=3, ge=1)
    # Delete tasks only: a transfer carries no deadline (Transfer extends it while it works).
    deadline_hours: float = Field(default=24, gt=0)
    # An ACTIVE task retrying a fault only a person can clear (permission, not found, quota,
    # identity mapping) is cancelled after this long; its scans then need attention.
    persistent_fault_minutes: float = Field(default=60, gt=0)
    # A task that made no progress for this long is cancelled; its scans need attention.
    stall_hours: float = Field(default=12, gt=0)
    # Transfer slots kept for copies of new scans from the inventory endpoint (the real-time
    # leg); the others are shared by every other copy, route by route.
    realtime_slots: int = Field(default=1, ge=0)
    secrets_file: Path | None = None

    @model_validator(mode="after")
    def _slots_leave_room(self) -> GlobusConfig:
        if self.realtime_slots >= self.max_active_tasks:
            raise ValueError(
                f"realtime_slots ({self.realtime_slots}) must be less than max_active_tasks "
                f"({self.max_active_tasks}): other copies (a backlog, CFS → HPSS) need a slot"
            )
        return self


class CatalogConfig(_Section):
    kind: Literal["local", "scicat", "none"] = "local"
    path: Path = Path("~/.local/state/bl931/catalog.json")
    required_for_delete: bool = True
    secrets_file: Path | None = None
    owner: str = "bl931"
    owner_group: str = "als-9.3.1"
    access_groups: tuple[str, ...] = ()
    contact_email: str = "bl931@als.lbl.gov"
    principal_investigator: str = ""
    instrument: str = "ALS 9.3.1"
    instrument_pid: str | None = None
    retrievable_from_tape: bool = False
    creation_location: str = "ALS 9.3.1"
    data_format: str = ""
    keywords: tuple[str, ...] = ("ALS", "9.3.1", "tender X-ray spectroscopy")
    path_template: str | None = None
    source_endpoint: str | None = None
    pid_prefix: str = "bl931"
    timeout_seconds: float = Field(default=30, gt=0)


class ServiceConfig(_Section):
    interval_seconds: float = Field(default=60, gt=0)
    log_format: Literal["text", "json"] = "text"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)


class FlightCheckConfig(_Section):
    """`bl931tui --flight-check` (engine/flight_check.py): how long a leg may take, the canary."""

    timeout_seconds: float = Field(default=600, gt=0)
    poll_seconds: float = Field(default=2, gt=0)
    canary_bytes: int = Field(default=4096, ge=1, le=16 * 1024 * 1024)


class SplashConfig(_Section):
    """splash_flows' `config.yml`, the source of `from_splash` endpoints (engine/splash.py)."""

    config: Path | None = None


class Config(_Section):
    beamline: BeamlineConfig = BeamlineConfig()
    state: StateConfig = StateConfig()
    inventory: InventoryConfig = InventoryConfig()
    endpoints: dict[str, EndpointConfig]
    copy_: tuple[CopyConfig, ...] = Field(default=(), alias="copy")
    retention: dict[str, RetentionConfig] = {}
    approval: ApprovalConfig = ApprovalConfig()
    safety: SafetyConfig = SafetyConfig()
    retry: RetryConfig = RetryConfig()
    globus: GlobusConfig = GlobusConfig()
    catalog: CatalogConfig = CatalogConfig()
    service: ServiceConfig = ServiceConfig()
    flight_check: FlightCheckConfig = FlightCheckConfig()
    splash: SplashConfig = SplashConfig()
    export_control: ExportControlConfig | None = None  # None: the section is not configured
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("endpoints")
    @classmethod
    def _endpoint_names(cls, endpoints: dict[str, EndpointConfig]) -> dict[str, EndpointConfig]:
        if not endpoints:
            raise ValueError("at least one endpoint is needed")
        return endpoints

    @property
    def copies(self) -> tuple[CopyConfig, ...]:
        return self.copy_

    @property
    def inventory_endpoint(self) -> str:
        return self.inventory.endpoint

    def endpoint_order(self) -> list[str]:
        """Endpoints in make-before-break order: inventory first, then copy targets in order."""
        order = [self.inventory.endpoint]
        for edge in self.copy_:
            if edge.to not in order:
                order.append(edge.to)
        order.extend(name for name in self.endpoints if name not in order)
        return order

    def requires_approval(self, kind: ActionKind) -> bool:
        return kind in self.approval.required_for


def _validate_policy(config: Config) -> list[tuple[str, str]]:
    """Cross-key checks pydantic cannot express. Returns (key path, message) pairs."""
    problems: list[tuple[str, str]] = []
    names = set(config.endpoints)
    # A misspelt endpoint name is one problem, at its first use, listing the other keys using it.
    unknown: dict[str, tuple[int, list[str]]] = {}  # name → (its problem's index, other keys)

    def known(key: str, name: str) -> bool:
        if name in names:
            return True
        if name in unknown:
            unknown[name][1].append(key)
        else:
            unknown[name] = (len(problems), [])
            problems.append((key, ""))
        return False

    known("inventory.endpoint", config.inventory.endpoint)

    sources_of: dict[str, str] = {}
    for i, edge in enumerate(config.copy_):
        key = f"copy[{i}]"
        ok = known(f"{key}.from", edge.from_) & known(f"{key}.to", edge.to)
        if not ok:
            continue
        if edge.from_ == edge.to:
            problems.append((key, f"copies {edge.to!r} onto itself"))
        elif edge.to == config.inventory.endpoint:
            problems.append(
                (
                    f"{key}.to",
                    f"{edge.to!r} is the inventory endpoint; scans are never copied into it",
                )
            )
        elif edge.to in sources_of:
            problems.append(
                (f"{key}.to", f"{edge.to!r} already receives copies from {sources_of[edge.to]!r}")
            )
        else:
            sources_of[edge.to] = edge.from_

    # Every copy must be reachable from the inventory endpoint, and the copy graph acyclic.
    for target in sources_of:
        seen = {target}
        node = target
        while node in sources_of:
            node = sources_of[node]
            if node in seen:
                problems.append(("copy", f"copies form a cycle through {target!r}"))
                break
            seen.add(node)
        else:
            if node != config.inventory.endpoint:
                problems.append(
                    (
                        "copy",
                        f"copies into {target!r} start at {node!r}, which never receives scans",
                    )
                )

    holders = {config.inventory.endpoint, *sources_of}
    for name, rule in config.retention.items():
        key = f"retention.{name}"
        if not known(key, name):
            continue
        if name not in holders:
            problems.append((key, f"{name!r} never holds scans (no [[copy]] writes to it)"))
        if not rule.delete_requires:
            problems.append(
                (
                    f"{key}.delete_requires",
                    "is empty: a delete here could remove a scan's last copy; name the endpoints "
                    "that must hold a verified copy first",
                )
            )
        for required in rule.delete_requires:
            if not known(f"{key}.delete_requires", required):
                continue
            if required == name:
                problems.append((f"{key}.delete_requires", f"{name!r} cannot require itself"))
            elif required not in holders:
                problems.append(
                    (
                        f"{key}.delete_requires",
                        f"{required!r} never receives copies, so this delete could never be safe",
                    )
                )

    # A cycle in "delete X requires a copy at Y" lets every copy go: X waits on Y, Y on X.
    requires = {n: set(r.delete_requires) for n, r in config.retention.items()}
    for start in requires:
        stack, seen = [start], set()
        while stack:
            node = stack.pop()
            for nxt in requires.get(node, ()):
                if nxt == start:
                    problems.append(
                        (
                            f"retention.{start}.delete_requires",
                            f"retention rules form a cycle through {start!r}: every copy of a scan "
                            "could be deleted",
                        )
                    )
                    stack = []
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)

    for name, endpoint in config.endpoints.items():
        if (endpoint.tape or endpoint.kind == "tape") and name == config.inventory.endpoint:
            problems.append((f"endpoints.{name}.tape", "the inventory endpoint cannot be tape"))
        sfapi_runner = endpoint.kind == "tape" and endpoint.runner == "sfapi"
        if sfapi_runner and endpoint.sfapi is None:
            problems.append(
                (
                    f"endpoints.{name}.sfapi",
                    'a tape endpoint with runner = "sfapi" needs this table (at least '
                    "`output_dir`; docs/hpss.md)",
                )
            )
        elif not sfapi_runner and endpoint.sfapi is not None:
            problems.append(
                (
                    f"endpoints.{name}.sfapi",
                    'only for a tape endpoint with runner = "sfapi"; remove it, or set the runner',
                )
            )
    if config.catalog.source_endpoint is not None:
        known("catalog.source_endpoint", config.catalog.source_endpoint)
    for name, (at, others) in unknown.items():
        problems[at] = (problems[at][0], config_errors.unknown_endpoint(name, names, others))
    return problems


def _shared_storage(endpoints: dict[str, EndpointConfig]) -> list[tuple[str, str]]:
    """Pairs of endpoints whose paths show they are one storage. Returns (key, message) pairs.

    Local `path`s (of local endpoints and Globus endpoints mounted here) are compared resolved,
    so a symlink to another root, or a root reached through a symlinked folder, is found; Globus
    `root`s are compared on the same collection. What only the mounted filesystems show (bind
    mounts) is checked at run time instead (`engine.storage.same_storage.shared_storage`).
    """
    places = [
        Place(f"endpoints.{name}.path", None, resolved(ep.path), str(ep.path))
        for name, ep in endpoints.items()
        if ep.path is not None
    ]
    places += [
        Place(
            f"endpoints.{name}.root", ep.collection.strip().lower(), remote_root(ep.root), ep.root
        )
        for name, ep in endpoints.items()
        if ep.kind == "globus" and ep.collection and ep.root
    ]
    return overlapping_places(places)


def _resolve(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (base / path)


def _resolve_key_file(sfapi: SfapiSettings | None, base: Path) -> SfapiSettings | None:
    if sfapi is None or sfapi.key_file is None:
        return sfapi
    return sfapi.model_copy(update={"key_file": _resolve(sfapi.key_file, base)})


def parse_config(
    data: dict[str, Any], source: Path | None = None, *, text: str | None = None
) -> Config:
    """Validate a config already read from TOML; relative paths are taken from `source`'s folder.

    `text` (the TOML as written) lets errors name their line."""
    where = str(source) if source is not None else "<config>"
    lines = config_errors.key_lines(text) if text is not None else None
    data = splash.expand(data, source)  # `from_splash` endpoints, from splash_flows' config.yml
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        found = config_errors.pydantic_problems(exc.errors())
        raise ConfigError(config_errors.render(where, lines, found)) from None
    problems = _validate_policy(config)
    if problems:
        raise ConfigError(
            config_errors.render(
                where, lines, [(config_errors.parse_key(k), m) for k, m in problems]
            )
        )
    base = source.parent if source is not None else Path.cwd()
    endpoints = {
        name: ep.model_copy(
            update={
                "path": _resolve(ep.path, base) if ep.path else None,
                "tools": _resolve(ep.tools, base) if ep.tools else None,
                "sfapi": _resolve_key_file(ep.sfapi, base),
            }
        )
        for name, ep in config.endpoints.items()
    }
    shared = _shared_storage(endpoints)
    if shared:
        raise ConfigError(
            config_errors.render(where, lines, [(config_errors.parse_key(k), m) for k, m in shared])
        )
    return config.model_copy(
        update={
            "endpoints": endpoints,
            "state": config.state.model_copy(update={"path": _resolve(config.state.path, base)}),
            "catalog": config.catalog.model_copy(
                update={"path": _resolve(config.catalog.path, base)}
            ),
            "source": source,
        }
    )


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate a config file (default: ./bl931.toml, then ~/.config/bl931/config.toml)."""
    if path is None:
        for candidate in DEFAULT_LOCATIONS:
            if candidate.expanduser().is_file():
                path = candidate.expanduser()
                break
        else:
            looked = " and ".join(
                f"{'./' if not str(c).startswith('~') else ''}{c} ({c.expanduser().absolute()})"
                for c in DEFAULT_LOCATIONS
            )
            raise ConfigError(
                f"no configuration found: looked for {looked}. To start one, write the "
                "example (every key, commented) with `bl931tui --example-config > bl931.toml`, "
                "then edit it; or pass --config PATH. `bl931tui --demo` shows bl931 at work "
                "without a config"
            )
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"file not found (given with --config). To start one, write the example with "
            f"`bl931tui --example-config > {path}`, then edit it; `bl931tui --demo` shows "
            "bl931 at work without a config",
            path=str(path),
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror}", path=str(path)) from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"is not UTF-8 text (byte {exc.start})", path=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"is not valid TOML: {exc}", path=str(path)) from None
    return parse_config(data, source=path.resolve(), text=text)

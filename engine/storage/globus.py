"""Globus endpoints: DTN, CFS and HPSS collections through globus-sdk 4.

`build_globus(config)` returns a `GlobusBackend`: one `GlobusStorage` per `kind = "globus"`
endpoint (listing, `globus_listing.py`) and one `GlobusMover` (batched, checksum-verified,
idempotent transfers and deletes, `globus_mover.py`), sharing one authenticated session
(`globus_auth.py`: credentials, data_access scopes, error classification).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.clock import SYSTEM_CLOCK, Clock
from engine.config import Config
from engine.errors import ConfigError
from engine.storage.globus_auth import (
    SDK_MAX_RETRIES,
    SDK_MAX_SLEEP,
    GlobusSession,
    load_credentials,
)
from engine.storage.globus_listing import LS_LIMIT, GlobusStorage
from engine.storage.globus_mount import MountedTree
from engine.storage.globus_mover import DEFAULT_INACTIVE_GRACE, GlobusEndpoint, GlobusMover

__all__ = [
    "GlobusBackend",
    "GlobusEndpoint",
    "GlobusMover",
    "GlobusStorage",
    "build_globus",
    "uses_globus",
]


@dataclass
class GlobusBackend:
    """Everything Globus for one config: a storage per endpoint, one mover, one session."""

    storages: dict[str, GlobusStorage]
    mover: GlobusMover
    session: GlobusSession

    def begin_pass(self) -> None:
        """Drop every storage's listing cache (call at the start of each reconcile pass)."""
        for storage in self.storages.values():
            storage.begin_pass()

    def end_pass(self) -> None:
        """Close the pass: later listings are fetched afresh."""
        for storage in self.storages.values():
            storage.end_pass()

    def close(self) -> None:
        self.session.close()


def _mount(name: str, config: Config) -> MountedTree | None:
    """The endpoint's tree mounted here (`path`), used for checksums at rest."""
    path = config.endpoints[name].path
    return MountedTree(name, path) if path is not None else None


def uses_globus(config: Config) -> bool:
    """Does the config have any `kind = "globus"` endpoint?"""
    return any(ep.kind == "globus" for ep in config.endpoints.values())


def build_globus(
    config: Config,
    environ: Mapping[str, str] | None = None,
    *,
    max_retries: int = SDK_MAX_RETRIES,
    max_sleep: float = SDK_MAX_SLEEP,
    ls_page_limit: int = LS_LIMIT,
    inactive_grace: float = DEFAULT_INACTIVE_GRACE,
    clock: Clock = SYSTEM_CLOCK,
) -> GlobusBackend:
    """Build the storages and mover for every `kind = "globus"` endpoint.

    No network call happens here: the first listing or submission fetches the token (with
    every mapped collection's `data_access` scope).

    Args:
        config: the validated config.
        environ: where credentials and `GLOBUS_SDK_SERVICE_URL_*` are read (None: the process
            environment); the `[globus] secrets_file` is the fallback for credentials.
        max_retries: globus-sdk's own retries of 429/5xx/network errors per call.
        max_sleep: the longest sleep between those retries.
        ls_page_limit: entries asked for per `operation_ls` (tests lower it to force paging).
        inactive_grace: seconds an INACTIVE task is tolerated before it is cancelled.
        clock: the engine's clock.

    Raises:
        ConfigError: no Globus endpoint, or credentials missing.
    """
    endpoints = {
        name: GlobusEndpoint(name, str(ep.collection), str(ep.root), ep.tape)
        for name, ep in config.endpoints.items()
        if ep.kind == "globus"
    }
    if not endpoints:
        raise ConfigError('no endpoint has kind = "globus"', key="endpoints")
    credentials = load_credentials(config, environ)
    collections: dict[str, str] = {}
    for ep in endpoints.values():
        collections.setdefault(ep.collection, ep.name)
    session = GlobusSession(
        credentials,
        collections,
        environ=environ,
        max_retries=max_retries,
        max_sleep=max_sleep,
        clock=clock,
    )
    storages = {
        name: GlobusStorage(
            name,
            ep.collection,
            ep.root,
            session,
            tape=ep.tape,
            timeout=config.endpoints[name].list_timeout_seconds,
            page_limit=ls_page_limit,
            mount=_mount(name, config),
        )
        for name, ep in endpoints.items()
    }
    mover = GlobusMover(
        session,
        endpoints,
        max_items_per_task=config.globus.max_items_per_task,
        max_active_tasks=config.globus.max_active_tasks,
        deadline_hours=config.globus.deadline_hours,
        inactive_grace=inactive_grace,
        clock=clock,
    )
    return GlobusBackend(storages=storages, mover=mover, session=session)

"""Build the storages, movers and catalog a configuration names.

Local endpoints share one `LocalMover`; Globus endpoints share one `GlobusMover` (imported only
when a Globus endpoint is configured, so a local setup needs no credentials). A copy between
two endpoints runs on Globus as soon as either side is a Globus collection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from engine.catalog.base import Catalog
from engine.clock import Clock, as_clock
from engine.config import Config
from engine.storage.base import Mover, Storage
from engine.storage.local import LocalMover, LocalStorage
from engine.storage.localfs import sweep_temp_files

log = logging.getLogger(__name__)
# The sweep at a reconciler's first pass logs under the reconciler's name, as it always has.
sweep_log = logging.getLogger("engine.reconciler")


@dataclass
class Backends:
    storages: dict[str, Storage]
    movers: dict[str, Mover]
    kinds: dict[str, str]  # endpoint → "local" | "globus" | "tape"
    catalog: Catalog | None = None
    local_roots: dict[str, Path] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def mover_for(self, source: str | None, target: str) -> Mover:
        """Which mover runs a copy source → target (or a delete at target when source is None)."""
        sides = [target] if source is None else [source, target]
        for side in sides:
            if self.kinds[side] == "tape":
                return self.movers[f"tape:{side}"]
        if any(self.kinds[name] == "globus" for name in sides):
            return self.movers["globus"]
        return self.movers["local"]

    def attach_store(self, store: object) -> None:
        """Give backends that keep their records in the state store the store (tape bundles,
        the Globus mover's INACTIVE clocks)."""
        for backend in [*self.storages.values(), *self.movers.values()]:
            attach = getattr(backend, "attach", None)
            if attach is not None:
                attach(store)

    def sweep_temp_files(self, now: datetime, *, only: Collection[str] | None = None) -> None:
        """Remove the temporary files interrupted copies left in every local endpoint (or in
        those of `only`: engine/temp_sweep.py sweeps only roots whose identity holds)."""
        for name, root in self.local_roots.items():
            if only is not None and name not in only:
                continue
            if self.kinds.get(name) != "local" or not root.is_dir():
                continue
            try:
                removed = sweep_temp_files(root, older_than_seconds=0, now=now.timestamp())
            except OSError as exc:
                sweep_log.warning("%s: could not sweep temporary files: %s", name, exc)
                continue
            if removed:
                sweep_log.warning(
                    "%s: removed %d temporary files left by an interrupted copy", name, removed
                )

    def close(self) -> None:
        for closer in self.closers:
            try:
                closer()
            except Exception:  # closing must never mask the error that led here
                log.exception("closing a backend failed")


def build_backends(
    config: Config,
    *,
    clock: Clock | Callable[[], datetime] | None = None,
    environ: Mapping[str, str] | None = None,
    with_catalog: bool = True,
) -> Backends:
    """Construct every backend the config names. Globus and SciCat read secrets from `environ`."""
    storages: dict[str, Storage] = {}
    kinds: dict[str, str] = {}
    local_roots: dict[str, Path] = {}
    for name, endpoint in config.endpoints.items():
        kinds[name] = endpoint.kind
        if endpoint.path is not None and endpoint.kind != "tape":
            local_roots[name] = endpoint.path
        if endpoint.kind == "local":
            assert endpoint.path is not None  # validated by config
            storages[name] = LocalStorage(name, endpoint.path)
    engine_clock = as_clock(clock)
    local_mover = LocalMover(
        {n: p for n, p in local_roots.items() if kinds[n] == "local"}, clock=engine_clock
    )
    movers: dict[str, Mover] = {"local": local_mover}
    backends = Backends(storages, movers, kinds, local_roots=local_roots)
    backends.closers.append(local_mover.close)
    if any(kind == "globus" for kind in kinds.values()):
        from engine.storage.globus import build_globus

        globus = build_globus(config, environ=environ, clock=engine_clock)
        storages.update(globus.storages)
        movers["globus"] = globus.mover
        backends.closers.append(globus.close)
    if any(kind == "tape" for kind in kinds.values()):
        from engine.storage.tape_build import build_tape

        build_tape(config, backends, clock=engine_clock, environ=environ)
    if with_catalog:
        from engine.catalog.factory import build_catalog

        backends.catalog = build_catalog(config, environ=environ, clock=engine_clock)
        close_catalog = getattr(backends.catalog, "close", None)
        if close_catalog is not None:
            backends.closers.append(close_catalog)
    return backends

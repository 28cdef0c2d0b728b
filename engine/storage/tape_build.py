"""Build the storage, mover and runner of each `kind = "tape"` endpoint a config names.

The local runner keeps its job records beside the state store (`tape-jobs/<endpoint>/`), so a
restarted process finds its jobs again. The `sfapi` runner lives in `engine/storage/tape_sfapi.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from engine.clock import Clock
from engine.config import Config
from engine.errors import ConfigError
from engine.storage.restore_target import RecallChecks, identity_check, mount_check
from engine.storage.tape import TapeEndpoint, TapeMover, TapeStorage
from engine.storage.tape_local import LocalTapeRunner
from engine.storage.tape_runner import TapeRunner


def _runner(
    config: Config, name: str, environ: Mapping[str, str] | None, clock: Clock
) -> TapeRunner:
    spec = config.endpoints[name]
    if spec.runner == "local":
        assert spec.path is not None
        jobs = config.state.path.expanduser().parent / "tape-jobs" / name
        return LocalTapeRunner(spec.path, jobs, spec.tools)
    try:
        import importlib

        tape_sfapi = importlib.import_module("engine.storage.tape_sfapi")
    except ImportError as exc:
        raise ConfigError(
            f'endpoints.{name}.runner = "sfapi" needs the Superfacility API runner: {exc}'
        ) from exc
    runner: TapeRunner = tape_sfapi.build_runner(config, name, environ=environ, clock=clock)
    return runner


def build_tape(
    config: Config, backends: object, *, clock: Clock, environ: Mapping[str, str] | None = None
) -> None:
    """Add a storage and a mover (`tape:<name>`) per tape endpoint to `backends`."""
    sources: dict[str, str] = {}
    stages: dict[str, Path] = {}
    for name, spec in config.endpoints.items():
        if spec.kind == "tape":
            continue
        if spec.path is not None:
            sources[name] = str(spec.path)
            stages[name] = spec.path
        elif spec.root is not None:
            sources[name] = spec.root
    for name, spec in config.endpoints.items():
        if spec.kind != "tape":
            continue
        runner = _runner(config, name, environ, clock)
        remote = config.endpoints[name].runner == "sfapi"
        if remote:
            # The job runs at NERSC: it reads CFS at the Globus root, not a local mount.
            sources.update(
                {n: s.root for n, s in config.endpoints.items() if s.root and s.kind != "tape"}
            )
        endpoint = TapeEndpoint(
            name,
            runner,
            (spec.root or "/") if remote else "/",
            beamline=config.beamline.name,
            bundle_by=spec.bundle_by,
            proposal_level=spec.proposal_level,
            bundle_max_bytes=spec.bundle_max_bytes,
            clock=clock,
        )
        backends.storages[name] = TapeStorage(endpoint)  # type: ignore[attr-defined]
        mover = TapeMover(endpoint, sources, stages)
        mover.recall_checks = RecallChecks(identity_check(config), mount_check(config, backends))
        backends.movers[f"tape:{name}"] = mover  # type: ignore[attr-defined]
        backends.closers.append(runner.close)  # type: ignore[attr-defined]

"""The flight check: a canary file driven through the copy chain, with the real movers.

First every endpoint of the chain must prove it is its storage, as in every pass
(`engine.flight_identity`: the identity marker, the mount, no two roots one storage). An unknown
inventory endpoint fails the check before the canary is written; an unknown target fails its leg
(and the legs behind it) without anything written there.

`run_flight_check(config)` writes a small canary file on the inventory endpoint, in a folder of
its own (`CANARY_DIR`, under the engine's prefix `.bl931-`, which no inventory walk, watcher or
listing ever reports, so a canary never becomes a scan, a catalog entry or a receipt), and then,
leg by leg in the order of the `[[copy]]` chain:

- a **disk leg** (a target that is not tape) copies the canary with the mover that runs that
  route in production (`Backends.mover_for`: the local mover, or Globus with checksum
  verification), waits for it (bounded by `[flight_check] timeout_seconds`; a Globus task that
  keeps retrying a fault fails the leg at once), then verifies the copy by checksum itself
  (re-hashed where it can be read here) and measures the leg's latency on the engine's clock;
- a **tape leg** (`tape = true`, or an endpoint of kind `tape`) is checked for reachability only:
  a listing of its root (Globus `ls`, a local directory), or `hsi ls ROOT` through its
  `TapeRunner`; nothing is ever written to tape.

Every canary copy is removed at the end — also when a leg failed midway — with the same movers'
deletes (exactly the canary's file), and the removal is checked. The report (`FlightReport`) is
pure data; recording it (state store, alert, metrics) is `engine.flight_record`'s job.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.backends import Backends, build_backends
from engine.clock import Clock, as_clock
from engine.config import Config
from engine.flight_identity import unproven_endpoints
from engine.flight_report import FlightReport, LegResult
from engine.layout import ENGINE_TEMP_PREFIX, ScanLayout
from engine.model import Level, ScanFile
from engine.storage.base import TaskRequest, TaskStatus, TransferItem
from engine.storage.local_mover import LocalMover
from engine.storage.tape_runner import TapeRunner

__all__ = ["CANARY_DIR", "FlightReport", "LegResult", "run_flight_check"]

log = logging.getLogger(__name__)

CANARY_DIR = f"{ENGINE_TEMP_PREFIX}flight-check"
CANARY_LAYOUT = ScanLayout()  # canaries are single files, whatever the beamline's layout
ALGORITHM = "md5"


def is_tape(config: Config, endpoint: str) -> bool:
    """A tape leg: checked for reachability only, never written to."""
    ep = config.endpoints[endpoint]
    return bool(getattr(ep, "tape", False)) or getattr(ep, "kind", "") == "tape"


def chain(config: Config) -> list[tuple[str, str]]:
    """The copy legs in chain order: breadth first from the inventory endpoint."""
    legs: list[tuple[str, str]] = []
    frontier = [config.inventory.endpoint]
    while frontier:
        source = frontier.pop(0)
        for edge in config.copies:
            if edge.from_ == source:
                legs.append((edge.from_, edge.to))
                frontier.append(edge.to)
    return legs


@dataclass
class _Run:
    config: Config
    backends: Backends
    clock: Clock
    timeout: float
    poll: float
    tape_runners: Mapping[str, TapeRunner]
    canary: ScanFile
    holders: list[str] = field(default_factory=list)  # endpoints a copy may have reached


def run_flight_check(
    config: Config,
    *,
    backends: Backends | None = None,
    clock: Clock | Callable[[], datetime] | None = None,
    tape_runners: Mapping[str, TapeRunner] | None = None,
    environ: Mapping[str, str] | None = None,
) -> FlightReport:
    """Drive a canary through the copy chain and report each leg (see the module docstring).

    Args:
        config: the beamline's config (`[flight_check]` bounds the waits).
        backends: the storages and movers to use (default: built from `config`, no catalog).
        clock: the engine's clock: latencies, deadlines, waits.
        tape_runners: endpoint → the runner of a `kind = "tape"` endpoint (for `hsi ls`).
        environ: where Globus credentials come from when backends are built here.
    """
    engine_clock = as_clock(clock)
    own = backends is None
    if backends is None:
        backends = build_backends(config, clock=engine_clock, environ=environ, with_catalog=False)
    settings = config.flight_check
    started = engine_clock.now()
    token = uuid.uuid4().hex[:12]
    relpath = f"{CANARY_DIR}/canary-{started.strftime('%Y%m%dT%H%M%S')}-{token}.bin"
    try:
        source = config.inventory.endpoint
        root = config.endpoints[source].path
        legs_planned = chain(config)
        # Each endpoint proven its storage first, as every pass does (engine/flight_identity.py).
        unproven = unproven_endpoints(
            config, [source, *(t for _, t in legs_planned)], backends.local_roots, now=started
        )
        if source in unproven:
            return FlightReport(
                config.beamline.name,
                started,
                relpath,
                setup_error=f"the inventory endpoint {source} is unknown, so no canary was "
                f"written there: {unproven[source]}",
            )
        if root is None:
            return FlightReport(
                config.beamline.name,
                started,
                relpath,
                setup_error=f"the inventory endpoint {source} has no `path` here to write the "
                "canary into (set [endpoints.{source}] path to its mount)",
            )
        try:
            canary = _write_canary(Path(root), relpath, settings.canary_bytes, token)
        except OSError as exc:
            return FlightReport(
                config.beamline.name,
                started,
                relpath,
                setup_error=f"writing the canary on {source} ({root}) failed: "
                f"{exc.strerror or exc}",
            )
        run = _Run(
            config,
            backends,
            engine_clock,
            settings.timeout_seconds,
            settings.poll_seconds,
            tape_runners or {},
            canary,
        )
        legs: list[LegResult] = []
        reached = {source}
        try:
            for leg_source, target in legs_planned:
                if target in unproven:
                    check = "reachability" if is_tape(config, target) else "copy"
                    legs.append(
                        LegResult(
                            leg_source,
                            target,
                            check,
                            False,
                            error=f"not run: {target} is unknown ({unproven[target]})",
                        )
                    )
                elif is_tape(config, target):
                    legs.append(_reachability(run, leg_source, target))
                elif leg_source not in reached:
                    legs.append(
                        LegResult(
                            leg_source,
                            target,
                            "copy",
                            False,
                            error=f"not run: the canary never reached {leg_source}",
                        )
                    )
                else:
                    leg = _copy_leg(run, leg_source, target)
                    legs.append(leg)
                    if leg.ok:
                        reached.add(target)
        finally:
            cleanup = _clean_up(run, Path(root), relpath)
        return FlightReport(
            config.beamline.name, started, relpath, tuple(legs), cleanup_errors=tuple(cleanup)
        )
    finally:
        if own:
            backends.close()


def _write_canary(root: Path, relpath: str, size: int, token: str) -> ScanFile:
    if not root.is_dir():
        raise FileNotFoundError(2, "the root is missing (unmounted?)")
    path = root / relpath
    path.parent.mkdir(exist_ok=True)
    data = (f"bl931 flight check {token}\n".encode() * (size // 20 + 1))[:size]
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    info = path.stat()
    return ScanFile(relpath, info.st_size, info.st_mtime, hashlib.md5(data).hexdigest())


def _item(run: _Run, action: str) -> TransferItem:
    return TransferItem(f"flight-check-{action}", run.canary.path, (run.canary,), ALGORITHM)


def _wait(run: _Run, mover: Any, task_id: str) -> TaskStatus:
    """The task's final status, or its status when it must be given up (a fault, the timeout)."""
    if isinstance(mover, LocalMover):  # runs here: wait for it rather than poll
        status: TaskStatus = mover.wait(task_id, timeout=run.timeout)
        return status
    begun = run.clock.monotonic()
    while True:
        status = mover.poll(task_id)
        if status.finished or status.fault is not None:
            return status
        if run.clock.monotonic() - begun >= run.timeout:
            return status
        run.clock.sleep(run.poll)


def _copy_leg(run: _Run, source: str, target: str) -> LegResult:
    mover = run.backends.mover_for(source, target)
    begun = run.clock.monotonic()
    run.holders.append(target)
    try:
        request = TaskRequest(
            "copy",
            source,
            target,
            (_item(run, "copy"),),
            mover.new_submission_id(),
            f"bl931 flight check {source} to {target}",
        )
        task_id = mover.submit(request)
        status = _wait(run, mover, task_id)
        if not status.finished:
            mover.cancel(task_id)
            why = status.error or status.fault or f"still {status.state}"
            if status.fault is None:
                why = f"no answer within {run.timeout:g} s ({why})"
            return LegResult(source, target, "copy", False, _since(run, begun), error=why)
        result = next(iter(status.results), None)
        if status.state != "succeeded" or result is None or not result.ok:
            why = (result.error if result is not None else None) or status.error or status.state
            return LegResult(source, target, "copy", False, _since(run, begun), error=why)
        verified_by, problem = _verify(run, target, result.evidence)
        latency = _since(run, begun)
        if problem is not None:
            return LegResult(source, target, "copy", False, latency, error=problem)
        return LegResult(source, target, "copy", True, latency, verified_by=verified_by)
    except Exception as exc:  # every failure is the leg's, reported, never an escape
        log.warning("flight check %s → %s failed: %s", source, target, exc)
        return LegResult(source, target, "copy", False, _since(run, begun), error=str(exc))


def _since(run: _Run, begun: float) -> float:
    return max(0.0, run.clock.monotonic() - begun)


def _verify(run: _Run, target: str, evidence: Any) -> tuple[str | None, str | None]:
    """Check the copy's bytes: re-hash it where it can be read here, else rely on the transfer's
    own checksum comparison. Returns (how it was verified, the problem or None)."""
    root = run.backends.local_roots.get(target)
    if root is not None and (Path(root) / run.canary.path).exists():
        digest = hashlib.md5((Path(root) / run.canary.path).read_bytes()).hexdigest()
        if digest != run.canary.checksum:
            return None, f"the copy at {target} has checksum {digest}, not {run.canary.checksum}"
        return "rehash", None
    if root is not None:
        return None, f"the copy at {target} is not at {Path(root) / run.canary.path}"
    if evidence is not None and evidence.level >= Level.CHECKSUM:
        if evidence.value not in (None, run.canary.checksum):
            return None, f"the transfer into {target} verified checksum {evidence.value}"
        return "transfer checksum", None
    return None, f"the transfer into {target} reported no checksum verification"


def _reachability(run: _Run, source: str, target: str) -> LegResult:
    begun = run.clock.monotonic()
    try:
        runner = run.tape_runners.get(target)
        if runner is not None:
            root = str(getattr(run.config.endpoints[target], "root", None) or "/")
            done = runner.command(["hsi", "ls", root])
            if done.returncode != 0:
                detail = (done.stderr or done.stdout).strip()[:300]
                raise RuntimeError(f"`hsi ls {root}` exited {done.returncode}: {detail}")
        else:
            storage = run.backends.storages.get(target)
            if storage is None:
                raise RuntimeError(
                    f"no way to reach tape endpoint {target} (no runner, no storage)"
                )
            # A listing of the root filtered to one name that never exists: it proves the root
            # is there and answers (a missing root raises), and reads no scan.
            storage.stat_scan(CANARY_LAYOUT, f"{CANARY_DIR}-reachability-probe")
        return LegResult(source, target, "reachability", True, _since(run, begun))
    except Exception as exc:
        return LegResult(source, target, "reachability", False, _since(run, begun), error=str(exc))


def _clean_up(run: _Run, source_root: Path, relpath: str) -> list[str]:
    """Remove every canary copy (the movers' deletes, exactly the canary's file), then the
    source canary; check each is gone. Returns what could not be removed."""
    errors: list[str] = []
    for target in reversed(run.holders):
        # Where the tree is readable here, the file itself says whether a canary is there (no
        # listing reports engine names); elsewhere a succeeded delete (Globus: `ignore_missing`)
        # means it is gone.
        root = run.backends.local_roots.get(target)
        local = Path(root) / relpath if root is not None else None
        try:
            mover = run.backends.mover_for(None, target)
            request = TaskRequest(
                "delete",
                None,
                target,
                (_item(run, "delete"),),
                mover.new_submission_id(),
                f"bl931 flight check cleanup at {target}",
            )
            status = _wait(run, mover, mover.submit(request))
            failure = None if status.state == "succeeded" else (status.error or status.state)
        except Exception as exc:
            failure = str(exc)
        if local is not None and local.exists():
            errors.append(f"{target}: the canary {local} is still there ({failure or 'deleted'})")
        elif local is None and failure is not None:
            errors.append(f"{target}: removing the canary failed: {failure}")
    try:
        (source_root / relpath).unlink(missing_ok=True)
    except OSError as exc:
        errors.append(f"removing the canary at the source failed: {exc.strerror or exc}")
    for root in [source_root, *(run.backends.local_roots.get(t) for t in run.holders)]:
        if root is not None:
            # Not empty (another check's canary) or already gone: either is fine.
            with contextlib.suppress(OSError):
                (Path(root) / CANARY_DIR).rmdir()
    return errors

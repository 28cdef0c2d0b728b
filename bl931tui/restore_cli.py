"""`bl931tui --restore SCAN [--to ENDPOINT]`: ask for a recall from tape.

The request is recorded in the state store; the next pass plans the recall as a copy from the
tape endpoint that holds the scan (the TUI's scan detail records the same request with `R`), waiting for approval like every recall (it costs tape
mounts). Many restores from one bundle run as one job.

An export-controlled scan is never restored into an endpoint marked `offsite = true`: the
request is refused (exit 64, naming the scan and the endpoint) and nothing is recorded. The
next pass checks again (engine/storage/tape_plan.py), for a request made before the flag came.
"""

from __future__ import annotations

from datetime import datetime

from engine.clock import SYSTEM_CLOCK
from engine.config import Config
from engine.errors import UsageError
from engine.operators import operator_name
from engine.scan_hints import export_control_for
from engine.state import StateStore
from engine.store import tape as tape_store


def request_restore(config: Config, scan: str, target: str | None) -> int:
    target = record_restore(config, scan, target, operator_name(), SYSTEM_CLOCK.now())
    print(f"restore of {scan} into {target} requested; approve it once the next pass plans it")
    return 0


def record_restore(config: Config, scan: str, target: str | None, by: str, now: datetime) -> str:
    """Record the request (`--restore`, and the TUI's restore key); returns the target.

    Raises:
        UsageError: no tape endpoint, a target that is not a local disk endpoint, an unknown
            scan, or no verified bundle holding it.
    """
    tapes = [n for n, e in config.endpoints.items() if e.kind == "tape"]
    if not tapes:
        raise UsageError('--restore needs a kind = "tape" endpoint in the config')
    if target is None:
        source = config.inventory.endpoint
        target = next((c.to for c in config.copy_ if c.from_ == source), None)
    if target is None or target not in config.endpoints or target in tapes:
        raise UsageError(f"--to {target!r}: not a disk endpoint of this config")
    if config.endpoints[target].path is None:
        raise UsageError(f"--to {target}: restores need an endpoint with a local `path`")
    store = StateStore(config.state.path.expanduser())
    try:
        if store.get_scan(scan) is None:
            raise UsageError(f"--restore {scan!r}: no such scan in the state store")
        if not any(tape_store.held_scans(store, t).get(scan) for t in tapes):
            raise UsageError(f"--restore {scan!r}: no verified bundle holds it")
        if config.endpoints[target].offsite:
            verdict = export_control_for(config, store).verdict(scan)
            if verdict.controlled:
                raise UsageError(
                    f"refused: --restore {scan} --to {target}: {scan} is export-controlled "
                    f"({verdict.source}) and {target} is off-site (offsite = true); an "
                    "export-controlled scan is never copied off site: restore it into an "
                    "on-site endpoint"
                )
        tape_store.request_restore(store, scan, target, by, now)
    finally:
        store.close()
    return target

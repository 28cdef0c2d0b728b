"""What a tape endpoint changes in a plan (one hook, called on every plan the reconciler makes).

- Copies into a tape endpoint wait for their bundle: a group (engine/storage/tape_groups.py)
  whose waiting scans have not yet closed is `blocked` with `waiting_for_bundle` and the expected
  close date, instead of a copy each. The time a scan began waiting is kept in the state store
  (passes that write only; an audit counts a new waiter from now).
- An operator's restore (`--restore SCAN [--to ENDPOINT]`) is a copy from the tape endpoint to
  the endpoint named; like every recall it waits for approval (it costs tape mounts). The request
  ends once the restored copy is verified. A restore into an off-site endpoint meets the export
  check the planner's copies meet (engine/export_control.py): for an export-controlled scan it
  is blocked `export_controlled` (the CLI refuses such a request up front; this holds for one
  made before the flag arrived), for a scan whose flag is not known yet it waits.
- `kind = "globus"` endpoints with `tape = true`: a warning once per process when the median scan
  is under 1 GB, pointing at `kind = "tape"` (NERSC asks for bundles of small files).
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from engine.blocked_entries import joined
from engine.config import Config
from engine.export_control import ExportControl, copy_blocker
from engine.model import Action, ActionKind, Blocked, Level, Plan, action_id
from engine.storage.tape_groups import close_date, group_of
from engine.store import tape as tape_store
from engine.store.connection import StoreBase

if TYPE_CHECKING:
    from engine.reconciler import Observation

log = logging.getLogger(__name__)
WAITING = "waiting_for_bundle"
_warned: set[str] = set()


def shape_plan(
    plan: Plan,
    config: Config,
    store: StoreBase,
    seen: Observation,
    decisions: Mapping[str, str],
    now: datetime,
    export: ExportControl | None = None,
) -> Plan:
    warn_small_scans(config, seen)
    tapes = [n for n, e in config.endpoints.items() if e.kind == "tape"]
    if not tapes:
        return plan
    actions = list(plan.actions)
    added: list[Blocked] = []  # to the plan's own blocked entries
    for name in tapes:
        actions, waiting = _hold_open_groups(name, config, store, seen, actions, now)
        added += waiting
    restores, refused = _restores(tapes, store, seen, decisions, actions, export)
    actions += restores
    if refused:
        known = {(b.scan, b.kind, b.endpoint) for b in (*plan.blocked, *added)}
        added += [b for b in refused if (b.scan, b.kind, b.endpoint) not in known]
    blocked = joined(plan.blocked, added) if added else plan.blocked
    return replace(plan, actions=tuple(actions), blocked=blocked)


def _hold_open_groups(
    name: str,
    config: Config,
    store: StoreBase,
    seen: Observation,
    actions: list[Action],
    now: datetime,
) -> tuple[list[Action], list[Blocked]]:
    spec = config.endpoints[name]
    archive = [
        a for a in actions if a.kind is ActionKind.COPY and a.target == name and a.source != name
    ]
    if not archive:
        return actions, []
    waits = tape_store.waits(store, name)
    if not store.readonly:
        tape_store.start_waiting(store, name, [a.scan for a in archive if a.scan not in waits], now)
    groups: dict[str, list[Action]] = {}
    for a in archive:
        scan = seen.scans[a.scan]
        groups.setdefault(group_of(scan, spec.bundle_by, spec.proposal_level), []).append(a)
    held: set[str] = set()
    blocked = []
    for group, members in groups.items():
        joined = [waits.get(a.scan, now) for a in members]
        closes = close_date(joined, spec.close_after_days)
        if now >= closes or sum(a.bytes for a in members) >= spec.bundle_max_bytes:
            continue
        for a in members:
            held.add(a.id)
            blocked.append(
                Blocked(
                    a.scan,
                    ActionKind.COPY,
                    name,
                    WAITING,
                    f"waits for its {group} bundle at {name}, expected to close "
                    f"{closes.isoformat(timespec='seconds')} ({len(members)} scans waiting; a "
                    f"group closes {spec.close_after_days:g} days after its last scan joined)",
                )
            )
    return [a for a in actions if a.id not in held], blocked


def _restores(
    tapes: list[str],
    store: StoreBase,
    seen: Observation,
    decisions: Mapping[str, str],
    actions: list[Action],
    export: ExportControl | None,
) -> tuple[list[Action], list[Blocked]]:
    out: list[Action] = []
    refused: list[Blocked] = []
    planned = {(a.scan, a.target) for a in actions if a.kind is ActionKind.COPY}
    for scan_id, target, by in tape_store.restores(store):
        scan = seen.scans.get(scan_id)
        if scan is None or (scan_id, target) in planned:
            continue
        there = seen.observations.get(target)
        replica = there.replicas.get(scan_id) if there is not None else None
        if replica is not None and replica.level >= Level.CHECKSUM:
            continue  # restored (or never gone)
        fact = export.fact(scan_id) if export is not None and export.active else None
        if kept := copy_blocker(fact, export.offsite if export else frozenset(), target):
            refused.append(
                Blocked(scan_id, ActionKind.COPY, target, kept[0], f"restore: {kept[1]}")
            )
            continue
        for tape in tapes:
            held = seen.observations.get(tape)
            at_tape = held.replicas.get(scan_id) if held is not None else None
            if at_tape is None or at_tape.level < Level.CHECKSUM:
                continue
            aid = action_id(ActionKind.COPY, scan_id, scan.checksum, tape, target)
            out.append(
                Action(
                    aid,
                    ActionKind.COPY,
                    scan_id,
                    tape,
                    target,
                    scan.size,
                    True,
                    f"restore requested by {by}: recall from {tape} (tape mounts need approval)",
                    decisions.get(aid) == "approve",
                )
            )
            break
    return out, refused


def warn_small_scans(config: Config, seen: Observation) -> None:
    for name, spec in config.endpoints.items():
        if spec.kind != "globus" or not spec.tape or name in _warned or not seen.scans:
            continue
        median = statistics.median(s.size for s in seen.scans.values())
        if median < 10**9:
            _warned.add(name)
            log.warning(
                "%s: tape = true over Globus receives every scan as its own tape file, and the "
                "median scan here is %d bytes (under 1 GB); NERSC asks that small files be "
                'bundled with htar: use kind = "tape" (docs/hpss.md)',
                name,
                int(median),
            )

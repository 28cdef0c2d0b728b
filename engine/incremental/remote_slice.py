"""Which scans a service pass lists on a Globus endpoint, and what it carries forward.

Listing a Globus endpoint costs one `operation_ls` per folder. In the long-running service's
passes (the incremental view on; never `--dry-run` or `--reconcile --once`) a Globus endpoint
other than the inventory endpoint and tape is listed only for:

- scans that are not *settled*: named by an action, a task in flight or a blocked entry other
  than `retention_not_reached` in the last finished pass's plan; new or changed this pass; or
  whose retention fell due at some endpoint since the last pass (so a delete is never planned
  from what an earlier pass saw);
- a rolling slice of folders, oldest listing first, sized so that every folder holding known
  scans is listed at least every `[safety] reverify_days` (a folder about to exceed it is
  always taken).

A replica in a folder the pass did not list is *not observed*: its last verdict is carried
forward with the time its folder was last listed (`SliceScope.carried`), never taken for
missing; the missing-fraction check counts only the scans the pass listed
(`EndpointObservation.listed`). A delete never relies on a carried replica
(`engine.incremental.unlisted_deletes`), and the last look before a delete lists afresh anyway.

Everything is listed again (and the memory rebuilt) on the first pass of a process or after a
configuration reload, after a pass that did not finish (its plan never arrived), when the clock
went backwards, while an alert freezes deletes or makes an endpoint unknown, and at an endpoint
that was not listed successfully in the last finished pass. Nothing here is persisted: a
restart costs one full listing, never a missed re-verification.
"""

from __future__ import annotations

import heapq
import posixpath
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from engine.config import Config
from engine.model import AlertEffect, Plan, Scan
from engine.observe.assess import Assessed
from engine.policy import Policy

if TYPE_CHECKING:
    from engine.incremental.view import IncrementalView

# The only blocked reason that leaves a scan settled: its copy is simply kept until a date.
KEPT_UNTIL = "retention_not_reached"
# Alerts under which every listing is complete (their replicas' return must be seen).
_FULL_LISTING_EFFECTS = frozenset({AlertEffect.FREEZE_DELETES, AlertEffect.UNKNOWN_ENDPOINT})


@dataclass(frozen=True, slots=True)
class SliceScope:
    """What one sliced listing decided: `listed` are the known scans whose presence it settled;
    `carried` are replicas it did not list, with the time their folder was last listed."""

    listed: frozenset[str]
    carried: Mapping[str, datetime]


class RemoteSlice:
    """The rolling re-verification of settled scans on Globus endpoints (one per service)."""

    def __init__(self, reverify_days: float) -> None:
        if not reverify_days > 0:
            raise ValueError(f"reverify_days must be > 0, got {reverify_days!r}")
        self.period = timedelta(days=reverify_days)
        self._unsettled: frozenset[str] | None = None  # from the last finished pass's plan
        self._last_pass: datetime | None = None  # when the last finished pass started
        self._merged_last: frozenset[str] = frozenset()  # endpoints listed in that pass
        # the pass under way
        self._now: datetime | None = None
        self._active = False
        self._elapsed = timedelta(0)
        self._sliceable: frozenset[str] = frozenset()
        self._unit = "file"
        self._always: frozenset[str] = frozenset()
        self._merged: set[str] = set()
        self._chosen: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        # kept between passes
        self._by_dir: dict[str, list[str]] = {}
        self._indexed = -1  # how many scans `_by_dir` indexes
        self._listed_at: dict[str, dict[str, datetime]] = {}  # endpoint → folder → listed at
        self._credit: dict[str, float] = {}  # endpoint → folders owed to the rolling slice
        self._last: dict[str, dict[str, Assessed]] = {}  # endpoint → scan → last verdict
        self.listed_dirs: dict[str, int] = {}  # endpoint → folders the slice took (last pass)

    # ---- a pass ------------------------------------------------------------------------
    def begin(
        self,
        now: datetime,
        scans: Mapping[str, Scan],
        new_scans: Iterable[Scan],
        policy: Policy,
        sliceable: frozenset[str],
        unit: str,
    ) -> None:
        """Start a pass: decide whether it may slice, and which scans it lists everywhere."""
        unsettled, self._unsettled = self._unsettled, None  # a pass that dies lists all next
        previous = self._last_pass
        self._now, self._sliceable, self._unit = now, sliceable, unit
        self._merged, self._chosen, self.listed_dirs = set(), {}, {}
        new = [scan.id for scan in new_scans]
        if len(scans) != self._indexed or new:
            self._by_dir = {}
            for scan_id in scans:
                self._by_dir.setdefault(posixpath.dirname(scan_id), []).append(scan_id)
            self._indexed = len(scans)
        self._active = unsettled is not None and previous is not None and now >= previous
        if not self._active or previous is None or unsettled is None:
            self._listed_at, self._credit, self._last = {}, {}, {}
            return
        self._elapsed = now - previous
        always = set(unsettled).union(new)
        keeps = tuple(policy.keep.values())
        for scan in scans.values() if keeps else ():  # retention fell due since the last pass
            acquired = scan.acquired_at
            for keep in keeps:
                if previous < acquired + keep <= now:
                    always.add(scan.id)
                    break
        self._always = frozenset(always.intersection(scans))

    def wanted(self, name: str) -> frozenset[str] | None:
        """The scans to list at `name` this pass (None: every scan, as without the slice)."""
        if not self._active or name not in self._sliceable or name not in self._merged_last:
            return None
        chosen = self._choose(name)
        wanted = set(self._always)
        for folder in chosen:
            wanted.update(self._by_dir[folder])
        self._chosen[name] = (chosen, frozenset(wanted))
        self.listed_dirs[name] = len(chosen)
        return frozenset(wanted)

    def merge(
        self, name: str, assessed: dict[str, Assessed], scans: Mapping[str, Scan]
    ) -> SliceScope | None:
        """After a successful listing of `name`: remember its verdicts and add to `assessed`
        the replicas it did not list (carried forward). None: the listing covered everything.
        """
        if name not in self._sliceable or self._now is None:
            return None
        now = self._now
        self._merged.add(name)
        picked = self._chosen.pop(name, None)
        if picked is None:  # listed in full: the memory starts again from it
            self._last[name] = dict(assessed)
            self._listed_at[name] = dict.fromkeys(self._by_dir, now)
            self._credit[name] = 0.0
            return None
        chosen, wanted = picked
        if self._unit == "file":  # a listed folder answers for every scan in it
            folders = chosen.union(posixpath.dirname(s) for s in wanted)
            listed = {s for folder in folders for s in self._by_dir.get(folder, ())}
        else:  # a directory scan is walked only when it is wanted
            folders, listed = chosen, set(wanted)
        listed.update(assessed)
        last = self._last.setdefault(name, {})
        for scan_id in listed:
            verdict = assessed.get(scan_id)
            if verdict is None:
                last.pop(scan_id, None)
            else:
                last[scan_id] = verdict
        at = self._listed_at.setdefault(name, {})
        carried: dict[str, datetime] = {}
        previous = self._last_pass or now
        for scan_id, verdict in last.items():
            if scan_id not in listed and scan_id in scans:
                assessed[scan_id] = verdict
                carried[scan_id] = at.get(posixpath.dirname(scan_id), previous)
        for folder in folders:
            at[folder] = now
        return SliceScope(frozenset(listed), carried)

    def end(self, plan: Plan) -> None:
        """After the pass's plan: the scans that are not settled, listed again next pass."""
        if self._now is None:
            return
        if any(a.effect in _FULL_LISTING_EFFECTS for a in plan.alert_details):
            self._unsettled = None
        else:
            unsettled = {a.scan for a in plan.actions}
            unsettled.update(f.scan for f in plan.in_flight)
            unsettled.update(b.scan for b in plan.blocked if b.reason_code != KEPT_UNTIL)
            self._unsettled = frozenset(unsettled)
        self._last_pass, self._now = self._now, None
        self._merged_last = frozenset(self._merged)

    # ---- the rolling slice ---------------------------------------------------------------
    def _choose(self, name: str) -> frozenset[str]:
        """Folders overdue (they would pass `reverify_days` before the next pass, or were
        never listed), then the oldest, as many as the time since the last pass has earned."""
        now, elapsed, period = self._now, self._elapsed, self.period
        assert now is not None
        at = self._listed_at.get(name, {})
        folders = self._by_dir
        credit = self._credit.get(name, 0.0) + len(folders) * (elapsed / period)
        chosen: set[str] = set()
        for folder in folders:
            listed = at.get(folder)
            if listed is None or (now - listed) + elapsed > period:
                chosen.add(folder)
        more = int(credit) - len(chosen)
        if more > 0:
            rest = ((at[f], f) for f in folders if f not in chosen)
            chosen.update(f for _, f in heapq.nsmallest(more, rest))
        self._credit[name] = min(max(credit - len(chosen), 0.0), float(len(folders)))
        return frozenset(chosen)


def sliceable_endpoints(config: Config, policy: Policy) -> frozenset[str]:
    """Globus endpoints the slice applies to: not the inventory endpoint, not tape."""
    return frozenset(
        name
        for name in policy.endpoints
        if name != policy.inventory_endpoint
        and name not in policy.tape
        and (ep := config.endpoints.get(name)) is not None
        and ep.kind == "globus"
    )


def begin_slice(
    view: IncrementalView | None,
    now: datetime,
    scans: Mapping[str, Scan],
    new_scans: Collection[Scan],
    config: Config,
    policy: Policy,
    *,
    service: bool,
) -> RemoteSlice | None:
    """The service pass's slice, begun (None: list everything, as `--once` and the audit)."""
    if view is None or not service:
        return None
    remote = view.remote
    remote.begin(
        now, scans, new_scans, policy, sliceable_endpoints(config, policy), config.inventory.scan
    )
    return remote

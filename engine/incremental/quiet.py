"""The quiet pass: when nothing a pass reads has changed, its observation and plan are reused.

A steady service pass at 100k scans used to assess every replica and plan every scan again to
find what it found last time. A pass is *quiet* when all of these hold, each checked for the
cost of a few hundred `stat` calls and one SQLite pragma:

- the last pass was a normal (or quiet) service pass that settled: every endpoint listed, no
  error, alert, inventory problem, scan still being written, new scan, action, task in flight,
  hold, or interrupted delete or replace; the catalog (if any) is the local JSON catalog with
  nothing waiting to be written; every policy endpoint is a local folder tree read through the
  incremental view's folder cache (`engine.incremental.dirs`);
- this pass is not a periodic full walk (`[safety] full_walk_seconds`) and the clock did not go
  backwards;
- nobody wrote to the state store since the last pass ended: not this process (the connection's
  `total_changes`), not another connection or process (`PRAGMA data_version`: operator
  decisions, retries, holds, notifies, a second writer);
- no time-dependent fact flips before now: no scan's retention ends and no failed action's
  back-off expires between the last pass and this one (`next_due`);
- every folder of every endpoint has the very stat it had (mtime, ctime, inode, device: an
  added, removed or renamed entry, an unmounted or re-pointed root all change it), no folder was
  still settling, each endpoint's identity marker has the same stat, the local catalog file has
  the same stat, and the live watcher declared no scan complete.

A quiet pass then records that every endpoint was seen (its health) and reports, and runs the
executor on the reused plan (which has nothing to run). It never deletes anything: a plan with
an action is never reused, and the last look before any delete lists and re-hashes afresh. What
a folder stat cannot see — a file rewritten in place with its size and mtime put back — waits for
the next full walk, exactly as with the incremental view alone. `--dry-run` and
`--reconcile --once` never use it (they have no incremental view).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine.backends import Backends
from engine.catalog.local import LocalCatalog
from engine.identity import MARKER_NAME
from engine.model import Plan
from engine.observe.observation import Observation
from engine.pass_findings import PassFindings
from engine.policy import Policy
from engine.storage.local import LocalStorage
from engine.store import OPEN_TASK_STATES, StateStore

_Stat = tuple[int, int, int, int]


def _stat(path: str | os.PathLike[str]) -> _Stat | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


def store_stamp(store: StateStore) -> tuple[int, int, int]:
    """What changes whenever anyone commits to the state store (see the module docstring)."""
    conn = store.connection()
    version = int(conn.execute("PRAGMA data_version").fetchone()[0])
    return (id(conn), version, conn.total_changes)


@dataclass(frozen=True)
class Inputs:
    """What a pass's inputs looked like *before* it read anything (taken at its start, so that
    a change landing while the pass runs is a change at the next pass, never taken as seen)."""

    store: tuple[int, int, int]
    markers: dict[str, _Stat | None]
    catalog: _Stat | None
    hints: Mapping[str, str]


@dataclass
class Settled:
    """The last settled pass: what a quiet pass reuses, and what must not have changed."""

    seen: Observation
    plan: Plan
    as_of: datetime
    next_due: datetime | None
    inputs: Inputs  # as the pass found them when it started
    levels: dict[tuple[str, str], int]
    store: tuple[int, int, int] | None = None  # set when the pass has finished writing


class QuietPasses:
    """Remembers the last settled pass and decides whether the next one may reuse it."""

    def __init__(self) -> None:
        self.settled: Settled | None = None
        self.quiet = 0  # quiet passes so far (for logs and tests)
        self.deltas = 0  # delta passes so far (engine/incremental/delta.py)
        self.why_not = "no settled pass yet"
        self._inputs: Inputs | None = None  # the current pass's, from `begin`

    def begin(
        self, store: StateStore, backends: Backends, policy: Policy, hints: Mapping[str, str]
    ) -> None:
        """At the start of every service pass, before it reads or writes anything."""
        self._inputs = Inputs(
            store_stamp(store),
            {name: _marker_stat(backends, name) for name in policy.endpoints},
            _catalog_stat(backends),
            dict(hints),
        )

    # ---- after a pass --------------------------------------------------------------------
    def remember(
        self,
        seen: Observation,
        plan: Plan,
        now: datetime,
        *,
        store: StateStore,
        backends: Backends,
        policy: Policy,
        interrupted: bool,
        levels: dict[tuple[str, str], int],
    ) -> None:
        """After a normal service pass: keep it if it settled, else forget the last one."""
        self.settled = None
        why = _unsettled(seen, plan, store, backends, policy, interrupted)
        if why is None and self._inputs is None:
            why = "the pass did not record its inputs"
        if why is not None:
            self.why_not = why
            return
        assert self._inputs is not None
        self.settled = Settled(
            seen, plan, now, _next_due(seen, store, policy, now), self._inputs, levels
        )

    def end_pass(self, store: StateStore) -> None:
        """The pass wrote everything it will write: what the next pass compares with. If
        another connection committed while the pass ran, the pass may not have seen it: it is
        not reused."""
        settled, started = self.settled, self._inputs
        self._inputs = None
        if settled is None or started is None:
            return
        now = store_stamp(store)
        if now[:2] != started.store[:2]:
            self.forget("the state store changed while the pass ran")
            return
        settled.store = now

    def forget(self, why: str) -> None:
        self.settled = None
        self.why_not = why

    # ---- before a pass -------------------------------------------------------------------
    def check(
        self, now: datetime, *, backends: Backends, policy: Policy
    ) -> tuple[Settled | None, bool]:
        """(the settled pass, whether this pass is quiet); `why_not` says why it is not. With
        a settled pass that is not quiet, only folders or the watcher's hints changed: a delta
        pass may apply (`engine.incremental.delta`). Call right after `begin`."""
        last, inputs = self.settled, self._inputs
        why = self._why_not(last, inputs, now, backends, policy)
        if why is not None:
            self.forget(why)
            return None, False
        assert last is not None and inputs is not None
        changed = self._changed(last, inputs, backends, policy)
        if changed is not None:
            self.why_not = changed
            return last, False
        self.quiet += 1
        return last, True

    def _why_not(
        self,
        last: Settled | None,
        inputs: Inputs | None,
        now: datetime,
        backends: Backends,
        policy: Policy,
    ) -> str | None:
        """Why neither a quiet nor a delta pass may reuse `last`, or None."""
        if last is None or last.store is None:
            return self.why_not if last is None else "the last pass did not finish"
        if inputs is None:
            return "this pass did not record its inputs"
        if now < last.as_of:
            return "the clock went backwards"
        if last.next_due is not None and now >= last.next_due:
            return f"a retention period or back-off ended at {last.next_due.isoformat()}"
        if inputs.store != last.store:
            return "the state store changed"
        if inputs.catalog != last.inputs.catalog:
            return "the catalog file changed"
        for name in policy.endpoints:
            storage = backends.storages.get(name)
            if not isinstance(storage, LocalStorage) or storage.directory_cache is None:
                return f"{name} is not read through the folder cache"
            if inputs.markers.get(name) != last.inputs.markers.get(name):
                return f"{name}: its identity marker changed"
        return None

    @staticmethod
    def _changed(last: Settled, inputs: Inputs, backends: Backends, policy: Policy) -> str | None:
        """What changed that a delta pass may take in (folders, the watcher's hints), or None."""
        if inputs.hints != last.inputs.hints:
            return "the watcher declared a scan complete"
        for name in policy.endpoints:
            storage = backends.storages[name]
            assert isinstance(storage, LocalStorage) and storage.directory_cache is not None
            if not storage.directory_cache.unchanged(storage):
                return f"{name}: a folder changed"
        return None


def record_quiet(
    store: StateStore, findings: PassFindings, seen: Observation, now: datetime
) -> None:
    """What a quiet pass writes: every endpoint and the catalog were seen unchanged now."""
    for name in seen.observations:
        store.endpoint_ok(name, now)
    if seen.catalog.enabled:
        findings.catalog_unchanged(now)


def _marker_stat(backends: Backends, name: str) -> _Stat | None:
    root = backends.local_roots.get(name)
    return _stat(Path(root) / MARKER_NAME) if root is not None else None


def _catalog_stat(backends: Backends) -> _Stat | None:
    catalog = backends.catalog
    return _stat(catalog.path) if isinstance(catalog, LocalCatalog) else None


def _unsettled(
    seen: Observation,
    plan: Plan,
    store: StateStore,
    backends: Backends,
    policy: Policy,
    interrupted: bool,
) -> str | None:
    """Why the pass that saw `seen` and made `plan` cannot be reused, or None."""
    if seen.errors or plan.errors:
        return "the last pass had errors"
    if seen.alerts or plan.alerts or plan.alert_details or plan.problems:
        return "alerts stand"
    if seen.new_scans:
        return "the last pass found new scans"
    if seen.inventory is None or seen.inventory.incomplete or seen.inventory.problems:
        return "scans are still being written, or the inventory had problems"
    if plan.actions or plan.in_flight:
        return "the last plan has work to do"
    if interrupted:
        return "interrupted deletes or replaces wait"
    for name in policy.endpoints:
        storage = backends.storages.get(name)
        obs = seen.observations.get(name)
        if not isinstance(storage, LocalStorage) or storage.directory_cache is None:
            return f"{name} is not a local folder tree read through the folder cache"
        if obs is None or not obs.ok or name not in backends.local_roots:
            return f"{name} was not listed"
    catalog = backends.catalog
    if catalog is not None and not isinstance(catalog, LocalCatalog):
        return "the catalog is a remote service"
    if catalog is not None and catalog.has_pending():
        return "catalog changes wait to be written"
    if not seen.catalog.ok and seen.catalog.enabled:
        return "the catalog could not be read"
    if store.tasks(OPEN_TASK_STATES):
        return "tasks are open"
    if store.active_holds(plan.as_of):
        return "holds stand"
    return None


def _next_due(
    seen: Observation, store: StateStore, policy: Policy, now: datetime
) -> datetime | None:
    """The first instant after `now` at which a time-dependent fact of the plan flips: a scan's
    retention at an endpoint ends (`now < acquired_at + keep`), or a failed action's back-off
    ends. None: nothing flips."""
    due: list[datetime] = []
    keeps = set(policy.keep.values())
    for keep in keeps:
        horizon = now - keep  # scans acquired after this are still retained
        later = [s.acquired_at for s in seen.scans.values() if s.acquired_at > horizon]
        if later:
            due.append(min(later) + keep)
    for failure in store.failures().values():
        if failure.retry_at is not None and failure.retry_at > now:
            due.append(failure.retry_at)
    return min(due) if due else None


__all__ = ["QuietPasses", "Settled", "record_quiet", "store_stamp"]

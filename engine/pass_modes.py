"""How a pass observes, records and plans: a *quiet* pass reuses the last settled pass, a
*delta* pass adds new scans to it, any other pass observes everything (`engine.incremental`).

Only the service's passes (with the incremental view on) have quiet and delta passes; without
it (`--once`, `--dry-run`, tests that build a bare reconciler) every pass is a full one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime

from engine.backends import Backends
from engine.config import Config
from engine.executor import Executor
from engine.incremental.delta import Delta, merge_plans, observe_delta, record_delta
from engine.incremental.heap import release_free_heap
from engine.incremental.quiet import QuietPasses, Settled, record_quiet
from engine.incremental.view import IncrementalView
from engine.layout import ScanLayout
from engine.model import Plan
from engine.observe.observation import Observation
from engine.observe.observer import Observer
from engine.observe.record import record_observation
from engine.pass_plan import PassPlanner
from engine.pass_report import PassReport
from engine.policy import Policy
from engine.store import StateStore

Levels = dict[tuple[str, str], int]


class PassModes:
    def __init__(
        self,
        config: Config,
        store: StateStore,
        backends: Backends,
        policy: Policy,
        layout: ScanLayout,
        observer: Observer,
        planner: PassPlanner,
        executor: Executor,
    ) -> None:
        self.config, self.store, self.backends = config, store, backends
        self.policy, self.layout = policy, layout
        self.observer, self.planner, self.executor = observer, planner, executor
        self.quiet: QuietPasses | None = None  # on with the incremental view
        self._base: Settled | None = None
        self._is_quiet = False

    def start(self, now: datetime, view: IncrementalView | None) -> None:
        """Before the pass reads or writes anything: what it may build on (`QuietPasses`)."""
        self._base, self._is_quiet = None, False
        if view is not None:
            view.new_pass()
        if self.quiet is None:
            return
        self.quiet.begin(self.store, self.backends, self.policy, self._hints())
        if view is not None and not view.full_walk_due(now):
            self._base, self._is_quiet = self.quiet.check(
                now, backends=self.backends, policy=self.policy
            )

    def observe_and_plan(
        self, started: datetime, observe: Callable[[], Observation]
    ) -> tuple[Observation, Plan, Levels | None]:
        """observe → record → plan; `observe` is the full observation."""
        base, planner = self._base, self.planner
        if base is not None and self._is_quiet:
            seen = base.seen
            self._act_on(seen)
            record_quiet(self.store, planner.findings, seen, started)
            return seen, replace(base.plan, as_of=started), base.levels
        delta = self._delta(base, started) if base is not None else None
        if base is not None and delta is not None:
            seen = delta.seen
            self._act_on(seen)
            record_delta(self.store, self.policy, self.observer, seen, started)
            new_plan = planner.make_plan(delta.new, started)
            the_plan = merge_plans(base.plan, new_plan, started)
            the_plan = planner.with_findings(the_plan, seen, started, write=True)
            planner.record_delta(the_plan, new_plan.blocked, seen.catalog, started)
            return seen, the_plan, delta.levels
        seen = observe()
        record_observation(self.store, self.policy, self.observer, seen, started)
        the_plan = planner.make_plan(seen, started)
        the_plan = planner.with_findings(the_plan, seen, started, write=True)
        planner.record(the_plan, seen, started)
        seen.release_stored_rows()
        return seen, the_plan, None

    def finish(self, seen: Observation, the_plan: Plan, report: PassReport) -> None:
        """After the pass: remember it if it settled; what the next pass compares with."""
        if self.quiet is None:
            return
        if not self._is_quiet:
            executor = self.executor
            self.quiet.remember(
                seen,
                the_plan,
                report.started_at,
                store=self.store,
                backends=self.backends,
                policy=self.policy,
                interrupted=bool(
                    executor.interrupted.action_ids or executor.interrupted_replaces.action_ids
                ),
                levels=report.replica_levels,
            )
        self.quiet.end_pass(self.store)
        if not self._is_quiet:
            release_free_heap()  # the observation this pass replaced is freed by now

    def _act_on(self, seen: Observation) -> None:
        """The executor acts on the identities the reused observation proved."""
        self.executor.identity, self.executor.storages = seen.identity, seen.storages

    def _hints(self) -> Mapping[str, str]:
        hint = self.observer.completion_hint
        return hint() if hint is not None else {}

    def _delta(self, base: Settled, now: datetime) -> Delta | None:
        delta = observe_delta(
            base,
            now,
            config=self.config,
            store=self.store,
            storages=self.backends.storages,
            policy=self.policy,
            layout=self.layout,
            hint=self._hints(),
            catalog=self.backends.catalog,
        )
        if delta is not None and self.quiet is not None:
            self.quiet.deltas += 1
        return delta

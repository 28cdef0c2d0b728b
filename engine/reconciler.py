"""`reconcile_once()`: observe → record → plan → execute → report.

The only way work happens. It can be called any number of times and converges: each pass reads
the inventory, every endpoint and the catalog afresh (`engine.observe`), records what it saw
(`engine.observe.record`), plans from what it sees, never from what it remembers doing
(`engine.pass_plan`), runs what is allowed (`engine.executor`), and reports (`engine.pass_report`).
The dry run is the same observation and planning with every write switched off. A service
pass whose inputs provably did not change since the last settled pass reuses that pass's
observation and plan, and one whose only news is new scans plans just those
(`engine.pass_modes`).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from datetime import datetime

from engine.backends import Backends
from engine.catalog.pid_book import keep_pids_in
from engine.clock import Clock, as_clock
from engine.config import Config
from engine.errors import Bl931Error
from engine.executor import Executor
from engine.incremental.quiet import QuietPasses
from engine.incremental.view import IncrementalView
from engine.layout import ScanLayout
from engine.model import InFlight, Plan
from engine.observe.observation import Observation
from engine.observe.observer import Observer
from engine.operators import operator_name
from engine.pass_modes import PassModes
from engine.pass_plan import PassPlanner
from engine.pass_report import PassReport, report_pass
from engine.policy import Policy
from engine.retry_holds import keep_holds_in
from engine.storage.tape_identity import forget_tape_checks
from engine.store import StateStore
from engine.temp_sweep import TempSweep

__all__ = ["Observation", "PassReport", "Reconciler", "os_user"]

log = logging.getLogger(__name__)


def os_user() -> str:
    """The kernel's name for this process's user (never `$USER`: see engine/operators.py)."""
    return operator_name()


class Reconciler:
    """Owns one pass at a time over one state store and a set of backends."""

    def __init__(
        self,
        config: Config,
        store: StateStore,
        backends: Backends,
        *,
        clock: Clock | Callable[[], datetime] | None = None,
        user: str | None = None,
    ) -> None:
        self.config, self.store, self.backends = config, store, backends
        backends.attach_store(store)  # tape endpoints keep their bundles in the store
        self.clock = as_clock(clock)
        self.user = user or os_user()
        self.layout = ScanLayout.from_config(config.inventory)
        self.policy = Policy.from_config(config)
        self.executor = Executor(config, store, backends, self.layout, clock=self.clock)
        self.observer = Observer(
            config, store, backends, self.layout, self.policy, self.executor.registrations,
            user=self.user,
        )  # fmt: skip
        self.planner = PassPlanner(config, store, self.policy, self.executor)
        keep_pids_in(backends.catalog, store)
        keep_holds_in(backends, store)  # Retry-After waits outlive this process
        self.sweep = TempSweep(config, store, backends)  # only roots that are their storage
        self.modes = PassModes(
            config, store, backends, self.policy, self.layout, self.observer, self.planner,
            self.executor,
        )  # fmt: skip

    @property
    def completion_hint(self) -> Callable[[], Mapping[str, str]] | None:
        """Scan id → listing signature of scans the live watcher declared complete (the service
        sets it when it runs a watcher); the walk accepts those before `quiet_seconds`."""
        return self.observer.completion_hint

    @completion_hint.setter
    def completion_hint(self, hint: Callable[[], Mapping[str, str]] | None) -> None:
        self.observer.completion_hint = hint

    @property
    def incremental(self) -> IncrementalView | None:
        """The incremental view the service's steady passes use (engine/incremental); None
        (the default, `--once`, `--dry-run`): every pass observes everything."""
        return self.observer.inventory.incremental

    @incremental.setter
    def incremental(self, view: IncrementalView | None) -> None:
        self.observer.inventory.incremental = view
        self.modes.quiet = QuietPasses() if view is not None else None

    @property
    def quiet(self) -> QuietPasses | None:
        """Quiet and delta passes (engine/pass_modes.py); None without the incremental view."""
        return self.modes.quiet

    def observe(
        self, now: datetime, *, circuit_breaker: bool = False, write: bool = False
    ) -> Observation:
        """`Observer.observe`; the executor acts on this pass's identities."""
        seen = self.observer.observe(now, circuit_breaker=circuit_breaker, write=write)
        self.executor.identity, self.executor.storages = seen.identity, seen.storages
        return seen

    def in_flight(self) -> tuple[InFlight, ...]:
        return self.planner.in_flight()

    def make_plan(self, seen: Observation, now: datetime) -> Plan:
        return self.planner.make_plan(seen, now)

    def dry_run(self, now: datetime | None = None) -> Plan:
        """Observe and plan; change nothing anywhere."""
        now = now or self.clock()
        seen = self.observe(now)
        return self.planner.with_findings(self.make_plan(seen, now), seen, now, write=False)

    def reconcile_once(self, now: datetime | None = None, *, drain: bool = False) -> PassReport:
        """One pass. With `drain`, tasks run in this process are finished before returning."""
        started = now or self.clock()
        self.modes.start(started, self.incremental)  # before this pass writes anything
        self.store.beat(
            started, pid=os.getpid(), host=socket.gethostname(), pass_started_at=started
        )
        forget_tape_checks(self.backends)  # an earlier pass's marker check proves nothing now
        self.sweep.run(self.clock.now())
        self.store.consume_retries(started)
        outcome = self.executor.poll_tasks(started)
        seen, the_plan, levels = self.modes.observe_and_plan(
            started, lambda: self.observe(started, circuit_breaker=True, write=True)
        )
        # execute
        outcome += self.executor.execute(the_plan, seen, started)
        if drain:
            outcome += self.executor.drain()
        if self.backends.catalog is not None:
            try:
                self.backends.catalog.flush()
            except Bl931Error as exc:
                log.error("catalog flush failed: %s", exc)
        # report
        report = report_pass(
            self.store,
            the_plan,
            seen,
            outcome,
            started=started,
            finished=self.clock(),
            endpoints=tuple(self.policy.endpoints),
            levels=levels,
        )
        if self.incremental is not None:  # the GC policy; what is not settled (Globus slice)
            self.incremental.end_pass(the_plan)
        self.modes.finish(seen, the_plan, report)
        return report

"""`reconcile_once()`: observe → record → plan → execute → report.

The only way work happens. It can be called any number of times and converges: each pass reads
the inventory, every endpoint and the catalog afresh (`engine.observe`), records what it saw
(`engine.observe.record`), plans from what it sees, never from what it remembers doing
(`engine.pass_plan`), runs what is allowed (`engine.executor`), and reports (`engine.pass_report`).
The dry run is the same observation and planning with every write switched off
(`engine.dry_run`). A service pass whose inputs provably did not change since the last settled
pass reuses that pass's observation and plan, and one whose only news is new scans plans just
those (`engine.pass_modes`). The parts a pass runs on are wired once in `engine.pass_parts`.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime

from engine.dry_run import dry_run
from engine.errors import Bl931Error
from engine.model import InFlight, Plan
from engine.observe.observation import Observation
from engine.operators import operator_name
from engine.pass_parts import PassParts
from engine.pass_report import PassReport, report_pass
from engine.storage.tape_identity import forget_tape_checks

__all__ = ["Observation", "PassReport", "Reconciler", "os_user"]

log = logging.getLogger(__name__)


def os_user() -> str:
    """The kernel's name for this process's user (never `$USER`: see engine/operators.py)."""
    return operator_name()


class Reconciler(PassParts):
    """Owns one pass at a time over one state store and a set of backends (built as
    `Reconciler(config, store, backends, clock=…, user=…)`: see `PassParts`)."""

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
        """Observe and plan; change nothing anywhere (engine/dry_run.py)."""
        return dry_run(self.observe, self.planner, now or self.clock())

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
        # observe, record, plan (or reuse the settled pass's: engine/pass_modes.py)
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

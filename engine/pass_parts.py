"""The parts a reconciler's passes run on, wired once over one state store and its backends.

Each step of a pass has an owner: the `Observer` observes (inventory, listings, assessments,
endpoint identity), the `PassPlanner` plans and records the plan, the `Executor` acts, and
`PassModes` decides whether a service pass may reuse the last settled one. They share the scan
layout and the policy built here from the config, and the store learns the catalog pids and the
Retry-After waits a restart must not forget. What the service switches on later (the incremental
view, the live watcher's completion hint) is set here too, so it reaches every part that reads
it. `engine.reconciler.Reconciler` runs the passes over these parts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from engine.backends import Backends
from engine.catalog.pid_book import keep_pids_in
from engine.clock import Clock, as_clock
from engine.config import Config
from engine.executor import Executor
from engine.incremental.quiet import QuietPasses
from engine.incremental.view import IncrementalView
from engine.layout import ScanLayout
from engine.observe.observer import Observer
from engine.operators import operator_name
from engine.pass_modes import PassModes
from engine.pass_plan import PassPlanner
from engine.policy import Policy
from engine.retry_holds import keep_holds_in
from engine.store import StateStore
from engine.temp_sweep import TempSweep

__all__ = ["PassParts"]


class PassParts:
    """Config, store, backends and clock, and the parts built on them."""

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
        self.user = user or operator_name()  # never `$USER`: see engine/operators.py
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

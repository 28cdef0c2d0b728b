"""One engine in this process: a state store, the backends and a reconciler on one `FakeClock`.

The shared way tests build the engine a service would run (`make_engine` in tests/conftest.py
closes what it opened). Movers and the reconciler share the clock, so task deadlines are judged
at the test's time, never the calendar's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.backends import Backends, build_backends
from engine.clock import FakeClock
from engine.config import Config
from engine.reconciler import PassReport, Reconciler
from engine.state import StateStore

START = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass
class Engine:
    config: Config
    clock: FakeClock
    store: StateStore
    backends: Backends
    reconciler: Reconciler

    def reconcile(self, *, drain: bool = True) -> PassReport:
        """One pass at the clock's time."""
        return self.reconciler.reconcile_once(drain=drain)

    def close(self) -> None:
        self.backends.close()
        self.store.close()


def open_engine(
    config: Config,
    *,
    clock: FakeClock | None = None,
    start: datetime = START,
    user: str | None = None,
    environ: Mapping[str, str] | None = None,
    prepare: Callable[[Backends], None] | None = None,
) -> Engine:
    """The engine over `config`'s state store and endpoints. `prepare` may wrap or replace
    backends (a failing storage, a stalling mover) before the reconciler is built on them."""
    clock = clock if clock is not None else FakeClock(start)
    store = StateStore(config.state.path)
    try:
        backends = build_backends(config, clock=clock, environ=environ)
    except BaseException:
        store.close()
        raise
    try:
        if prepare is not None:
            prepare(backends)
        reconciler = Reconciler(config, store, backends, clock=clock, user=user)
    except BaseException:
        backends.close()
        store.close()
        raise
    return Engine(config, clock, store, backends, reconciler)

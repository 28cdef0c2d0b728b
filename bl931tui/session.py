"""Opening the engine for one front end: read-only for audits, writable for decisions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from engine.backends import build_backends
from engine.config import Config
from engine.reconciler import Reconciler
from engine.state import StateStore
from engine.store.readonly import readonly_store as engine_readonly_store


@contextmanager
def readonly_store(config: Config) -> Iterator[StateStore]:
    """The state store opened read-only; an empty scratch store if none exists yet."""
    with engine_readonly_store(config.state.path, scratch_prefix="bl931-dry-") as store:
        yield store


@contextmanager
def readonly_reconciler(config: Config) -> Iterator[Reconciler]:
    """A reconciler for observing and planning only: `dry_run()` writes nothing anywhere."""
    backends = build_backends(config)
    try:
        with readonly_store(config) as store:
            yield Reconciler(config, store, backends)
    finally:
        backends.close()

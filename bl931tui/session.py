"""Opening the engine for one front end: read-only for audits, writable for decisions."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.backends import build_backends
from engine.config import Config
from engine.reconciler import Reconciler
from engine.state import StateStore


@contextmanager
def readonly_store(config: Config) -> Iterator[StateStore]:
    """The state store opened read-only; an empty scratch store if none exists yet."""
    path = config.state.path
    if path.exists():
        store = StateStore(path, readonly=True)
        try:
            yield store
        finally:
            store.close()
        return
    with tempfile.TemporaryDirectory(prefix="bl931-dry-") as scratch:
        store = StateStore(Path(scratch) / "state.sqlite")
        try:
            yield store
        finally:
            store.close()


@contextmanager
def readonly_reconciler(config: Config) -> Iterator[Reconciler]:
    """A reconciler for observing and planning only: `dry_run()` writes nothing anywhere."""
    backends = build_backends(config)
    try:
        with readonly_store(config) as store:
            yield Reconciler(config, store, backends)
    finally:
        backends.close()

"""The state store opened for reading only, for commands that must never write it.

An audit, a check or a flight check reads the store read-only; before the service's first pass
there is no store yet, and an empty scratch store (discarded afterwards) stands in for it, so
such a command never creates the real one (the first pass must find a new store to write the
endpoints' identity markers).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.store import StateStore


@contextmanager
def readonly_store(path: Path, *, scratch_prefix: str = "bl931-") -> Iterator[StateStore]:
    """The store at `path` opened read-only; an empty scratch store if none exists yet."""
    if path.exists():
        store = StateStore(path, readonly=True)
        try:
            yield store
        finally:
            store.close()
        return
    with tempfile.TemporaryDirectory(prefix=scratch_prefix) as scratch:
        store = StateStore(Path(scratch) / "state.sqlite")
        try:
            yield store
        finally:
            store.close()

"""`bl931tui --init-endpoint NAME` for a tape endpoint (engine/storage/tape_identity.py): its
runner is built from the config, the marker written (or adopted) through it and recorded."""

from __future__ import annotations

from datetime import datetime

from engine.config import Config
from engine.storage.tape_identity import marker_path
from engine.store.connection import StoreBase


def init_tape_endpoint(
    config: Config, store: StoreBase, name: str, *, user: str, now: datetime
) -> str:
    """`bl931tui --init-endpoint NAME` for a tape endpoint: write (or adopt) its marker through
    its runner and record it. Returns the marker's HPSS path."""
    from types import SimpleNamespace

    from engine.clock import as_clock
    from engine.storage.tape_build import build_tape

    holder = SimpleNamespace(storages={}, movers={}, closers=[])
    build_tape(config, holder, clock=as_clock(lambda: now))
    try:
        storage = holder.storages[name]
        storage.attach(store)
        marker_id = storage.identity.initialise(store, user=user, now=now)
        return marker_path(storage.endpoint, marker_id)
    finally:
        for close in holder.closers:
            close()

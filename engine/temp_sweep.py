"""Sweeping the temporary files interrupted copies left, only where the root is its storage.

A copy writes each file under a temporary name (`.bl931-*.tmp`) first; a crash leaves it, and
the reconciler removes such files from every local root at its first pass. A root that is not
provably its endpoint's storage right now — unmounted (a bare mount point, whose files belong to
the disk below), or another filesystem mounted there (another endpoint's marker, whose
`.bl931-*.tmp` files may be another writer's copies in flight) — is not swept: removing files
there is a delete from a storage bl931 does not own. It is swept by the first pass that finds
it back (`TempSweep.run` is called at every pass until each root was swept once).
"""

from __future__ import annotations

import logging
from datetime import datetime

from engine.backends import Backends
from engine.config import Config
from engine.errors import Bl931Error
from engine.identity import IdentityCheck, read_marker
from engine.store import StateStore

log = logging.getLogger("engine.reconciler")


class TempSweep:
    """The local roots still to sweep in this process, each once its identity holds."""

    def __init__(self, config: Config, store: StateStore, backends: Backends) -> None:
        self.config, self.store, self.backends = config, store, backends
        self.pending = {n for n, kind in backends.kinds.items() if kind == "local"}

    def run(self, now: datetime) -> None:
        if not self.pending:
            return
        check = IdentityCheck(self.config, self.store, may_initialise=False)
        proven = []
        for name in sorted(self.pending):
            root = self.backends.local_roots.get(name)
            try:
                check.check(name, user="bl931", now=now)
                # A store with no identities yet accepts any root; never another endpoint's.
                marker = read_marker(root) if root is not None else None
            except (Bl931Error, OSError, ValueError) as exc:
                log.info(
                    "%s: temporary files not swept while it is not provably its storage: %s",
                    name,
                    exc,
                )
                continue
            if marker is not None and marker.get("endpoint") != name:
                log.info(
                    "%s: temporary files not swept: %s carries another endpoint's marker",
                    name,
                    root,
                )
                continue
            proven.append(name)
        self.backends.sweep_temp_files(now, only=proven)
        self.pending.difference_update(proven)

"""Which endpoints of a flight check are provably their storage, before a canary goes there.

A flight check proves the copy chain only if it writes where the reconciler would: an unmounted
filesystem leaves a bare mount point that takes a canary as happily as the real storage, and an
endpoint aliased onto another (a bind mount) makes the "copy" the source file itself. So before
the canary is written, every endpoint of the chain gets the checks every pass makes:

- its identity (`engine.identity.IdentityCheck`, read-only: the marker against the state store,
  the root a mount point with `mount = true`, the same device); before the service's first
  pass there is no store and no marker yet, so only the root and the mount are checked, as the
  dry run does;
- that no two of its local roots are one storage (`engine.storage.same_storage`).

`unproven_endpoints` returns endpoint → why it is unknown; the flight check fails those legs
(and, for the inventory endpoint, the whole check) without writing anything there. Nothing here
writes a marker or the state store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

from engine.config import Config
from engine.errors import EndpointUnavailable
from engine.identity import IdentityCheck
from engine.storage.same_storage import shared_storage
from engine.store.readonly import readonly_store

__all__ = ["unproven_endpoints"]


def unproven_endpoints(
    config: Config,
    endpoints: Iterable[str],
    local_roots: Mapping[str, Path],
    *,
    now: datetime,
) -> dict[str, str]:
    """endpoint → the reason it cannot be relied on, for those of `endpoints` that fail.

    Args:
        config: the beamline's config (which endpoints are local, `mount`, the state store).
        endpoints: the endpoints the flight check would write to or list.
        local_roots: endpoint → local root, as the backends see them (for the alias check).
        now: the engine's time (only for the checks' signatures: nothing is recorded).
    """
    wanted = list(dict.fromkeys(endpoints))
    problems: dict[str, str] = {}
    with readonly_store(config.state.path, scratch_prefix="bl931-flight-") as store:
        identity = IdentityCheck(config, store, may_initialise=False)
        for name in wanted:
            try:
                identity.check(name, user="flight-check", now=now)
            except EndpointUnavailable as exc:
                problems[name] = exc.reason
    roots = {name: Path(root) for name, root in local_roots.items() if name in wanted}
    for name, aliased in shared_storage(roots).items():
        problems.setdefault(name, aliased.reason)
    return problems

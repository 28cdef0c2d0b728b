"""Hand a notify (`--notify PATH`, the `notify_new_scan` flow) to the state store's one writer.

- A service runs: the hint goes over its decision socket (engine/decision_socket.py, op
  `notify`); the service resolves the path with its own config, records the hint and wakes its
  next pass (as the live watcher does when a scan completes). This process writes nothing.
- No process owns the store: this process takes the owner lock (engine/lock.py), records the
  hint and lets go; the next pass, whoever runs it, finds it. A store that does not exist yet
  is not created by a notify (its first pass would not count it as new): that is an error.
- Another process owns the store but takes no hints (a `--reconcile --once` pass, a Prefect
  flow run): wait for it to finish (up to `wait_seconds`), then as above. A hint not recorded
  in time is an error (exit 1): send it again.

Anyone who may connect to the socket (the service user, `[approval] readers_group`) may notify;
with no service, only the service user (the store's owner) may write the hint.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.clock import SYSTEM_CLOCK, Clock
from engine.config import Config
from engine.decision_socket import Handler, NoService, Peer, ask, socket_path
from engine.errors import NeedsHumanError, StateLocked, TransientError
from engine.file_modes import owned_store
from engine.lock import OwnerLock
from engine.operator_decisions import NotPermitted
from engine.operators import operator_name, resolve
from engine.scan_hints import ScanHints, UnknownScanPath
from engine.scan_hints import resolve as resolve_hint
from engine.state import StateStore

OP = "notify"
DEFAULT_WAIT_SECONDS = 300.0
_RETRY_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Notified:
    """A recorded hint: its scan, the scan's export-control flag now, and who recorded it
    (`service`: the running service; `direct`: this process, holding the lock)."""

    scan: str
    export_controlled: bool
    via: str


class NotifyDesk:
    """The service's side of a notify on the decision socket."""

    def __init__(
        self,
        store: StateStore,
        config: Callable[[], Config],
        clock: Callable[[], datetime],
        wake: Callable[[], None],
    ) -> None:
        self.store, self.config, self.clock, self.wake = store, config, clock, wake

    def __call__(self, wire: dict[str, Any], peer: Peer) -> dict[str, Any]:
        path, flag = wire.get("path"), wire.get("export_control", False)
        if not isinstance(path, str) or not isinstance(flag, bool):
            return {"ok": False, "error": "bad_request", "message": "notify needs path, a flag"}
        try:
            hint = resolve_hint(self.config(), path, flag)
        except UnknownScanPath as exc:
            return {"ok": False, "error": "bad_request", "message": exc.message}
        by = resolve(peer.uid).name
        controlled = ScanHints(self.store).record(hint, by=by, via="service", now=self.clock())
        self.wake()
        return {"ok": True, "scan": hint.scan, "export_controlled": controlled, "via": "service"}


def with_notify(decisions: Handler, notify: NotifyDesk) -> Handler:
    """One socket handler: notifies to `notify`, everything else to the decision desk."""

    def handle(wire: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return notify(wire, peer) if wire.get("op") == OP else decisions(wire, peer)

    return handle


def notify(
    config: Config,
    path: str,
    export_controlled: bool = False,
    *,
    clock: Clock = SYSTEM_CLOCK,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> Notified:
    """Record a hint through the store's owner, or as the owner when none runs.

    Raises:
        UnknownScanPath: the path names no scan of the inventory endpoint (exit 64).
        NotPermitted: the socket may not be reached, or no service runs and this user does
            not own the store.
        StateLocked: another process kept the store longer than `wait_seconds`.
        TransientError: the service went away before answering.
    """
    hint = resolve_hint(config, path, export_controlled)  # a clear error before anything else
    state = config.state.path
    deadline = clock.monotonic() + wait_seconds
    while True:
        try:
            return _ask_service(config, path, export_controlled)
        except NoService:
            pass
        try:
            with OwnerLock(state, clock=clock):
                _check_owner(config)
                store = owned_store(config)
                try:
                    flag = ScanHints(store).record(
                        hint, by=operator_name(), via="direct", now=clock.now()
                    )
                finally:
                    store.close()
                return Notified(hint.scan, flag, "direct")
        except StateLocked as exc:
            if clock.monotonic() >= deadline:
                raise StateLocked(
                    f"{exc}. It takes no hints (a --reconcile --once pass or a flow run) and "
                    f"did not finish within {wait_seconds:g}s: the hint for {path} was NOT "
                    "recorded; send it again"
                ) from None
            clock.sleep(_RETRY_SECONDS)


def _ask_service(config: Config, path: str, export_controlled: bool) -> Notified:
    where = socket_path(config.state.path)
    try:
        reply = ask(where, {"op": OP, "path": path, "export_control": export_controlled})
    except PermissionError as exc:
        raise NotPermitted(
            f"cannot reach the bl931 service at {where} ({exc.strerror}): notify as the service "
            "user or a member of [approval] readers_group"
        ) from None
    except NoService:
        raise
    except (OSError, ValueError) as exc:
        raise TransientError(
            f"the bl931 service did not answer on {where} ({exc}); the hint for {path} may or "
            "may not be recorded: send it again (a repeated hint is harmless)"
        ) from None
    if reply.get("ok"):
        return Notified(str(reply["scan"]), bool(reply["export_controlled"]), "service")
    message = str(reply.get("message") or "refused")
    if reply.get("error") == "bad_request":
        raise UnknownScanPath(message)
    raise NotPermitted(message)


def _check_owner(config: Config) -> None:
    path = config.state.path
    try:
        owner = path.stat().st_uid
    except FileNotFoundError:
        # A store this process created would not count as new at the first pass, which then
        # could not write the endpoints' identity markers by itself (engine/identity.py).
        raise NeedsHumanError(
            f"no state store at {path} yet (bl931 has not run here): start the service (or run "
            "`bl931tui --reconcile --once`) first; the hint was NOT recorded"
        ) from None
    if owner != os.geteuid():
        raise NotPermitted(
            f"no bl931 service takes hints (nothing listens on {socket_path(path)}), and this "
            f"user is not the service user who owns {path}: start the service, then notify again"
        )

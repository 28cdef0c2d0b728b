"""One pass as the store's owner, for a flow run: lock, socket, pass, release.

A flow run owns the state store only while its pass runs, exactly like `--reconcile --once`:
it takes the owner lock (engine/lock.py) without waiting. If another process holds it (the
systemd service, another flow run, a `--once` pass), this run does nothing and says
"another pass is running" (`Skipped`): the next scheduled run comes soon enough, and runs that
waited would pile up behind a long pass. While it owns the store it takes operators' decisions
and notifies on the store's socket, as the service does, so `--approve` and `--notify` sent
during the pass reach it instead of waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bl931_prefect.pass_report import ReceiptRef, receipts_since
from engine.backends import build_backends
from engine.clock import SYSTEM_CLOCK, Clock
from engine.config import Config
from engine.decision_socket import DecisionServer, socket_path
from engine.errors import StateLocked
from engine.file_modes import check_startup, group_id, owned_store
from engine.lock import OwnerLock
from engine.notify import NotifyDesk, with_notify
from engine.operator_decisions import DecisionDesk
from engine.reconciler import PassReport, Reconciler

ANOTHER_PASS = "another pass is running"


@dataclass(frozen=True, slots=True)
class OwnedPass:
    """A pass this run made (`report`, `receipts`), or why it made none (`skipped`)."""

    report: PassReport | None
    receipts: tuple[ReceiptRef, ...] = ()
    skipped: str = ""


def run_owned_pass(
    config: Config,
    *,
    clock: Clock = SYSTEM_CLOCK,
    during: Callable[[], None] | None = None,
) -> OwnedPass:
    """One pass under the owner lock, or a skip naming the holder.

    Args:
        config: the beamline's config.
        clock: the pass's clock.
        during: called once the lock and socket are taken, before the pass (tests).
    """
    check_startup(config)
    lock = OwnerLock(config.state.path, clock=clock)
    try:
        lock.acquire()
    except StateLocked as exc:
        return OwnedPass(None, skipped=f"{ANOTHER_PASS}: {exc}")
    try:
        store = owned_store(config)
        try:
            backends = build_backends(config)
            try:
                reconciler = Reconciler(config, store, backends, clock=clock)
                desk = DecisionDesk(store, lambda: config, reconciler.clock)
                # A notify during the pass is recorded for the next one (no loop to wake).
                hints = NotifyDesk(store, lambda: config, reconciler.clock, lambda: None)
                server = DecisionServer(
                    socket_path(config.state.path),
                    with_notify(desk, hints),
                    group=group_id(config.approval.readers_group),
                )
                with server:
                    if during is not None:
                        during()
                    report = reconciler.reconcile_once(drain=True)
                return OwnedPass(report, tuple(receipts_since(store, report)))
            finally:
                backends.close()
        finally:
            now = clock.now()
            store.beat(now, stopped_at=now)
            store.close()
    finally:
        lock.release()

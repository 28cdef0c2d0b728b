"""Operator steps on the command line that change engine state: endpoint markers, the
adoption of a migrated endpoint's evidence and the local catalog's identity (with the owner
lock: stop the service first), and alert acknowledgements (a decision, like an approval, that
the running owner applies). Each records who did it."""

from __future__ import annotations

import os

from bl931tui.decision_channel import decide, recorded_where
from engine.alert_log import AlertLog
from engine.clock import SYSTEM_CLOCK
from engine.config import Config
from engine.errors import UsageError
from engine.evidence_identity import adopt
from engine.file_modes import owned_store
from engine.identity import IdentityCheck
from engine.lock import OwnerLock
from engine.model import Alert
from engine.operator_decisions import DecisionRequest, NotPermitted, direct_refusal
from engine.operators import current_operator, operator_name
from engine.state import StateStore
from engine.tape_legacy import adopt_legacy, needs_legacy_step


def init_endpoint(config: Config, name: str) -> int:
    """Write (or adopt) a local endpoint's identity marker and record it in the state store.

    Run it once per endpoint after checking that its filesystem is the right one and mounted:
    from then on a listing of the endpoint counts only while the marker is there.
    """
    if name not in config.endpoints:
        known = ", ".join(sorted(config.endpoints))
        raise UsageError(f"--init-endpoint {name!r}: no such endpoint (configured: {known})")
    path = config.state.path
    if path.exists() and path.stat().st_uid != os.geteuid():
        raise NotPermitted(
            f"--init-endpoint writes the state store {path}: run it as the service user who "
            f"owns it (uid {path.stat().st_uid}), e.g. with sudo -u"
        )
    if config.endpoints[name].kind == "tape":
        return _init_tape(config, name)
    with OwnerLock(path):
        store = owned_store(config)
        try:
            check = IdentityCheck(config, store, may_initialise=False)
            identity = check.initialise(name, user=operator_name(), now=SYSTEM_CLOCK.now())
        finally:
            store.close()
    print(f"{name}: identity {identity.marker_id} recorded for {identity.root}")
    return 0


def _init_tape(config: Config, name: str) -> int:
    """A tape endpoint's marker is written on HPSS through its runner (`hsi mkdir`)."""
    from engine.storage.tape_init import init_tape_endpoint

    with OwnerLock(config.state.path):
        store = owned_store(config)
        try:
            where = init_tape_endpoint(
                config, store, name, user=operator_name(), now=SYSTEM_CLOCK.now()
            )
        finally:
            store.close()
    print(f"{name}: identity marker {where} recorded")
    return 0


def adopt_endpoint(config: Config, name: str, old_identity: str, *, rearchive: bool = False) -> int:
    """Re-key the evidence an endpoint's copies were verified with on its old storage.

    For a deliberate migration the operator vouches for (every byte kept): the copies count as
    verified at once instead of being re-verified. Needs the owner lock, like `--init-endpoint`.
    """
    if name not in config.endpoints:
        known = ", ".join(sorted(config.endpoints))
        raise UsageError(f"--adopt-endpoint {name!r}: no such endpoint (configured: {known})")
    if not config.state.path.exists():
        raise UsageError("there is no state store yet, so no evidence to adopt")
    # Vouching for a migration lets deletes rely on copies nobody re-read: a decision, made
    # with the service stopped, by the store's owner who is also an approver.
    operator = current_operator()
    refusal = direct_refusal(config, operator)
    if refusal is not None:
        raise NotPermitted(refusal)
    user = operator.name
    if needs_legacy_step(config, name, old_identity):
        return _adopt_legacy(config, name, old_identity, user, rearchive)
    if rearchive:
        raise UsageError('--rearchive is for a per-file HPSS endpoint now kind = "tape"')
    with OwnerLock(config.state.path):
        store = owned_store(config)
        try:
            current, copies = adopt(
                config, store, name, old_identity, user=user, now=SYSTEM_CLOCK.now()
            )
        finally:
            store.close()
    print(
        f"{name}: re-keyed the evidence of {copies} copies from {old_identity} to {current} "
        f"(recorded as {user})"
    )
    return 0


def _adopt_legacy(config: Config, name: str, old: str, user: str, rearchive: bool) -> int:
    """The per-file HPSS → `kind = "tape"` step (engine/tape_legacy.py)."""
    with OwnerLock(config.state.path):
        store = owned_store(config)
        try:
            now = SYSTEM_CLOCK.now()
            done = adopt_legacy(config, store, name, old, user=user, now=now, rearchive=rearchive)
            # The operator vouched for this HPSS directory: it gets its tape identity marker.
            from engine.storage.tape_init import init_tape_endpoint

            init_tape_endpoint(config, store, name, user=user, now=now)
        finally:
            store.close()
    if done.rearchive:
        print(f"{name}: now {done.current}; nothing re-keyed, every scan is bundled afresh")
        return 0
    print(
        f"{name}: now {done.current}; {done.members} legacy members recorded from {old} "
        f"(recorded as {user})"
    )
    for key in done.missing:
        print(f"  not adopted (missing on HPSS or another size; it will be bundled): {key}")
    for key in done.older_versions:
        print(f"  not adopted (an older version or unverified; left under {old}): {key}")
    return 0


def init_catalog(config: Config) -> int:
    """Give the local catalog its identity and record it: create an empty catalog where there
    is none, or adopt the file at the configured path.

    Run it once the catalog's volume is mounted and the file there (or its absence) is checked:
    from then on the catalog is used only while that file is there. Registrations the state
    store recorded that the file does not hold are reported as lost documents at the next pass.
    """
    from engine.catalog.custody import initialise_catalog
    from engine.catalog.factory import build_catalog
    from engine.catalog.local import LocalCatalog

    if config.catalog.kind != "local":
        raise UsageError(
            f'--init-catalog is for [catalog] kind = "local" (this config: {config.catalog.kind!r})'
        )
    catalog = build_catalog(config)
    assert isinstance(catalog, LocalCatalog)
    with OwnerLock(config.state.path):
        store = owned_store(config)
        try:
            identity, how = initialise_catalog(
                catalog, store, user=operator_name(), now=SYSTEM_CLOCK.now()
            )
            count = len(catalog)
        finally:
            store.close()
    if how == "created":
        print(f"catalog: created an empty catalog {identity.catalog_id} at {identity.path}")
    elif how == "adopted":
        print(
            f"catalog: adopted catalog {identity.catalog_id} at {identity.path} ({count} datasets)"
        )
    else:
        print(
            f"catalog: adopted the catalog at {identity.path} ({count} datasets) and gave it "
            f"the identity {identity.catalog_id}"
        )
    return 0


def acknowledge(config: Config, alert_id: str, why: str) -> int:
    """Record an operator's acknowledgement of a standing alert (who, when, why)."""
    if not config.state.path.exists():
        raise UsageError("there is no state store yet, so no alert to acknowledge")
    now = SYSTEM_CLOCK.now()
    # An alert the audit shows but no pass has recorded yet (e.g. foreign files found by this
    # very audit) is recorded as seen now, so that what the operator saw can be acknowledged.
    seen = _current_alert(config, alert_id)

    def record_seen(store: StateStore) -> None:
        log = AlertLog(store)
        if seen is not None and alert_id not in log.records(standing_only=True):
            log.refresh([seen, *_standing(log)], now, write=True)

    # An operator decision like an approval: taken by the running service (which records the
    # alerts it sees at every pass), or written by the service user when none runs.
    request = DecisionRequest("acknowledge", (alert_id,), note=why)
    result = decide(config, request, clock=lambda: now, before_direct=record_seen)
    print(f"acknowledged {alert_id} ({result.detail}) as {result.by}: {why}")
    print(f"({recorded_where(result)}) The next pass applies it.")
    return 0


def _current_alert(config: Config, alert_id: str) -> Alert | None:
    """The alert with this id in a fresh audit, if it stands now."""
    from bl931tui.session import readonly_reconciler

    with readonly_reconciler(config) as reconciler:
        plan = reconciler.dry_run()
    return next((a for a in plan.alert_details if a.id == alert_id), None)


def _standing(log: AlertLog) -> list[Alert]:
    """The recorded standing alerts, as alerts (kept standing while one is added)."""
    return [
        Alert(r.code, r.effect, r.message, endpoint=r.endpoint, scan=r.scan)
        for r in log.records(standing_only=True).values()
    ]

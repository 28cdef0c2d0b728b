"""Registering scans in the catalog and keeping their locations current.

Catalog actions run after the copies are submitted. They are made durable (`Catalog.flush`)
before any is recorded: a catalog that keeps its writes in memory until `flush` (the local file)
would otherwise leave events saying "registered" for records an interrupted pass never wrote.
The pid each registration answers is stored with it (`catalog_registrations.pid`,
`engine/catalog/custody.py`), where receipts read it back (`engine/receipts.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from engine.catalog.base import Location
from engine.errors import CatalogUnavailable, classify
from engine.model import Action, ActionKind, ErrorClass, Level, Scan
from engine.outcome import Outcome
from engine.storage.tape_catalog import tape_location
from engine.tallies import ActionOutcome

if TYPE_CHECKING:
    from engine.executor import Executor
    from engine.reconciler import Observation


def catalog_failure(exc: BaseException) -> ErrorClass:
    """How a failed catalog action is handled. An unavailable catalog is a condition of the
    catalog, reported (and classed) by every pass's observation: the action itself just waits
    for it and is retried with backoff, never left for a person to retry by hand."""
    if isinstance(exc, CatalogUnavailable):
        return ErrorClass.TRANSIENT
    return classify(exc)


class CatalogActions:
    """Register and update-locations actions, and the locations a catalog entry lists."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    def path_on(self, endpoint: str, scan: Scan, name: str | None = None) -> str:
        """The scan's path at an endpoint (`name`: a versioned object on tape)."""
        spec = self._executor.config.endpoints[endpoint]
        if spec.kind == "tape":  # the bundle path + member (engine/storage/tape_catalog.py)
            return tape_location(self._executor.store, endpoint, name or scan.id)
        if spec.kind == "globus" and spec.root:
            return f"{spec.root.rstrip('/')}/{name or scan.id}"
        assert spec.path is not None
        return str(spec.path / (name or scan.id))

    def locations(self, scan: Scan, seen: Observation) -> list[Location]:
        """The verified copies of a scan this pass observed, as the catalog lists them."""
        policy = self._executor.policy
        out = []
        for name in policy.endpoints:
            obs = seen.observations.get(name)
            if obs is None or not obs.ok or obs.level(scan.id) < Level.CHECKSUM:
                continue
            replica = obs.replicas.get(scan.id)
            out.append(
                Location(
                    name,
                    self.path_on(name, scan, replica.name if replica else None),
                    obs.level(scan.id),
                    tape=name in policy.tape,
                    delete_after=policy.delete_due_at(scan, name),
                )
            )
        return out

    def run(self, actions: Sequence[Action], seen: Observation, now: datetime) -> Outcome:
        """Run the catalog actions, make them durable (`flush`), and only then record them."""
        ex = self._executor
        recorder = ex.recorder
        catalog = ex.backends.catalog
        if catalog is None:
            return Outcome()
        outcome = Outcome()
        done: list[tuple[Action, str, str | None]] = []
        # Before the catalog is called: a document it writes is kept even if this process dies
        # (or its write fails) before recording it (engine/catalog/attempts.py).
        asked = [a.scan for a in actions if a.kind is ActionKind.REGISTER]
        ex.registrations.attempts.add(catalog.name, asked, now)
        for action in actions:
            scan = seen.scans[action.scan]
            locations = self.locations(scan, seen)
            where = ", ".join(loc.endpoint for loc in locations)
            try:
                pid: str | None = None
                if action.kind is ActionKind.REGISTER:
                    pid = catalog.register(scan, locations)
                    message = f"registered as {pid} at {where}"
                else:
                    catalog.update_locations(scan, locations)
                    message = f"locations now {where}"
            except Exception as exc:
                recorder.fail(
                    action.id, action.scan, catalog_failure(exc), str(exc), now, action=action
                )
                outcome.failed += 1
                continue
            done.append((action, message, pid))
        try:
            catalog.flush()
        except Exception as exc:
            for action, _, _ in done:
                recorder.fail(
                    action.id,
                    action.scan,
                    catalog_failure(exc),
                    f"not written to the catalog: {exc}",
                    now,
                    action=action,
                )
            return outcome + Outcome(failed=len(done))
        registered = [(a.scan, pid) for a, _, pid in done if a.kind is ActionKind.REGISTER]
        ex.registrations.record(catalog.name, registered, now)
        for action, message, pid in done:
            ex.store.record_success(action.id, now)
            recorder.event(
                now,
                f"catalog.{action.kind.value}",
                message,
                scan=action.scan,
                action_id=action.id,
                data={"pid": pid} if action.kind is ActionKind.REGISTER else None,
                outcome=ActionOutcome.SUCCEEDED,
                action=action,
            )
            outcome.succeeded += 1
        return outcome

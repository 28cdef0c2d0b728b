"""Run a plan's allowed actions through the movers and the catalog, and record every outcome.

`Executor` is the façade the reconciler drives (`execute`, `poll_tasks`, `drain`, `locations`)
and the holder of this pass's shared state; each responsibility lives in its own module:

- `engine/submission.py`: batches, task slots, persisted submission ids, the mover call;
- `engine/task_polling.py`: polling open tasks and recording how they ended;
- `engine/delete_look.py`: the last look before a delete (`engine/last_look.py`: file checks);
- `engine/catalog_actions.py`: registrations and locations in the catalog;
- `engine/delete_records.py` and `engine/receipts.py`: receipts of removals;
- `engine/recorder.py`: the one place an event is logged and stored, and an action outcome
  counted (handed up in each entry point's `Outcome`).

Idempotency: a batch's submission id is persisted (with its actions, now `submitted`) *before*
the mover is called; an interrupted submission is sent again under the same id, and a delete
first passes its last look again (`engine/deletes.py`). Operator decisions and holds are read
once more inside the write transaction that records a submission (`engine/decisions.py`); one
recorded (or a hold placed) while the task runs cancels the task at its next poll
(`engine/withdrawn_deletes.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from engine.backends import Backends
from engine.catalog.base import Location
from engine.catalog.custody import Registrations
from engine.catalog_actions import CatalogActions
from engine.clock import Clock
from engine.config import Config
from engine.delete_look import DeleteLook
from engine.delete_records import DeleteRecords
from engine.deletes import InterruptedDeletes
from engine.evidence_identity import StorageIdentities
from engine.finished_deletes import FinishedDeletes
from engine.identity import IdentityCheck
from engine.interrupted_replaces import InterruptedReplaces
from engine.layout import ScanLayout
from engine.model import ActionKind, Plan, Scan
from engine.outcome import Outcome
from engine.policy import Policy
from engine.recorder import Recorder
from engine.replace_look import passes_last_look
from engine.state import StateStore
from engine.submission import Submission
from engine.task_polling import TaskPolling
from engine.task_watch import TaskWatch
from engine.withdrawn_deletes import Withdrawals

if TYPE_CHECKING:
    from engine.observe.observation import Observation

__all__ = ["Executor", "Outcome"]


class Executor:
    def __init__(
        self,
        config: Config,
        store: StateStore,
        backends: Backends,
        layout: ScanLayout,
        *,
        clock: Clock,
    ) -> None:
        self.config = config
        self.store = store
        self.backends = backends
        self.layout = layout
        self.policy = Policy.from_config(config)
        self.clock = clock
        # This pass's endpoint identity check (set by the reconciler when it observes).
        self.identity: IdentityCheck | None = None
        # This pass's storage identities (set by the reconciler when it observes).
        self.storages: StorageIdentities | None = None
        self.recorder = Recorder(store, config)
        # The scans the catalog made durable (the reconciler reads them back every pass).
        self.registrations = Registrations(store)
        # Faults remote tasks keep retrying, stalls, and the cancels they lead to.
        self.task_watch = TaskWatch(store, config)
        self.submission = Submission(self)
        self.delete_look = DeleteLook(self)
        self.delete_records = DeleteRecords(self)
        self.catalog_actions = CatalogActions(self)
        self.interrupted = InterruptedDeletes(self)
        self.interrupted_replaces = InterruptedReplaces(self)
        self.finished_deletes = FinishedDeletes(self)
        # Deletes rejected or held after their submission: their running task is cancelled.
        self.withdrawals = Withdrawals(self)
        self.polling = TaskPolling(self)

    def storage_identities(self) -> StorageIdentities:
        """This pass's storage identities (told now when no observation has run yet, e.g. while
        polling the tasks of an earlier pass)."""
        if self.storages is None:
            self.storages = StorageIdentities(self.config, self.store)
        return self.storages

    def poll_tasks(self, now: datetime, *, local_only: bool = False) -> Outcome:
        """Resubmit interrupted copies, settle interrupted deletes, poll active tasks."""
        with self.recorder.counting() as tallies:
            outcome = self.polling.poll_tasks(now, local_only=local_only)
        return outcome + Outcome(actions=tallies)

    def drain(self, timeout_seconds: float = 3600) -> Outcome:
        """Wait for every task run by an in-process mover to finish, recording each outcome."""
        with self.recorder.counting() as tallies:
            outcome = self.polling.drain(timeout_seconds)
        return outcome + Outcome(actions=tallies)

    def locations(self, scan: Scan, seen: Observation) -> list[Location]:
        return self.catalog_actions.locations(scan, seen)

    def execute(self, plan: Plan, seen: Observation, now: datetime) -> Outcome:
        """Submit the plan's allowed copies, run its catalog actions, and submit the deletes
        that pass their last look (the outcomes the recorder counted meanwhile in `actions`)."""
        with self.recorder.counting() as tallies:
            outcome = self._execute(plan, seen, now)
        return outcome + Outcome(actions=tallies)

    def _execute(self, plan: Plan, seen: Observation, now: datetime) -> Outcome:
        runnable = [a for a in plan.actions if not a.requires_approval or a.approved]
        outcome = Outcome()
        # A replace overwrites a verified older version: its last look re-reads the older
        # version's other copy first (engine/replace_look.py).
        resumed_copies = self.interrupted_replaces.action_ids  # resubmitted below, not anew
        outcome += self.interrupted_replaces.resume(plan, seen, now)
        copies = [
            a
            for a in runnable
            if a.kind is ActionKind.COPY
            and a.id not in resumed_copies
            and (a.replaces is None or passes_last_look(self, a, seen, now))
        ]
        outcome += self.submission.submit_batches("copy", copies, seen, now)
        catalog_actions = [
            a for a in runnable if a.kind in (ActionKind.REGISTER, ActionKind.UPDATE_CATALOG)
        ]
        if catalog_actions:
            outcome += self.catalog_actions.run(catalog_actions, seen, now)
        resuming = self.interrupted.action_ids  # resubmitted (or withdrawn) below, not anew
        planned_deletes = [
            a for a in runnable if a.kind is ActionKind.DELETE and a.id not in resuming
        ]
        relied_on = self.delete_look.copies_relied_on(planned_deletes)
        outcome += self.interrupted.resume(plan, seen, relied_on, now)
        deletes = [a for a in planned_deletes if self.delete_look.passes(a, seen, relied_on, now)]
        outcome += self.submission.submit_batches("delete", deletes, seen, now)
        return outcome

"""Submitting batches to the movers: task slots, persisted submission ids, the mover call.

Idempotency: a batch's submission id is persisted (with its actions, now `submitted`) *before*
the mover is called. If the process dies before the answer is recorded, the next pass finds the
task still `preparing`: a copy is submitted again with the same id (`rebuild_request`), which
the mover de-duplicates; a delete or a replace first asks the mover whether the id became a task
(`find_interrupted`) and passes its last look again (`engine/deletes.py`,
`engine/interrupted_replaces.py`).

Operator decisions and holds are read once more inside the write transaction that records a
submission, and the approvals it uses are spent there (`engine/decisions.py`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from engine import submitted
from engine.approvals import record_licences
from engine.decisions import DecisionLog, Refused
from engine.delete_look import record_skipped
from engine.errors import classify
from engine.identity import IdentityCheck
from engine.model import Action, ActionKind, ErrorClass, Scan
from engine.outcome import Outcome
from engine.replace_receipts import replace_intent
from engine.state import OPEN_TASK_STATES, TaskRow, TaskRowStatus
from engine.storage.base import Mover, TaskKind, TaskRequest, TransferItem
from engine.storage.tape_identity import tape_identity_checks
from engine.tallies import ActionOutcome
from engine.task_slots import REALTIME_MARK, plan_batches

if TYPE_CHECKING:
    from engine.executor import Executor
    from engine.reconciler import Observation

log = logging.getLogger("engine.executor")


@dataclass(frozen=True, slots=True)
class Interrupted:
    """What the mover says of a submission whose answer was never recorded."""

    request: TaskRequest  # rebuilt from the store, under the same submission id
    task_id: str | None  # the task the submission became (None: it became none)


class Submission:
    """Turns allowed actions into mover tasks, one persisted submission id per batch."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self.store = executor.store
        self.recorder = executor.recorder
        # Submissions `send` kept back because an endpoint was not provably its storage: they
        # wait for a later pass (`drain` does not wait for them, nor resends them meanwhile).
        self.unsent: set[str] = set()

    def submit_batches(
        self, kind: str, actions: list[Action], seen: Observation, now: datetime
    ) -> Outcome:
        """Submit what the free task slots allow (`engine/task_slots.py`): per mover and kind,
        real-time slots for new scans, the rest shared route by route in bounded batches."""
        executor = self._executor
        outcome = Outcome()
        by_mover: dict[str, list[Action]] = defaultdict(list)
        movers: dict[str, Mover] = {}
        for action in actions:
            assert action.target is not None
            mover = executor.backends.mover_for(action.source, action.target)
            movers[mover.name] = mover
            by_mover[mover.name].append(action)
        open_labels: dict[str, list[str]] = defaultdict(list)
        for task in self.store.tasks(OPEN_TASK_STATES):
            if task.kind == kind:
                open_labels[task.mover].append(task.label)
        for name, group in by_mover.items():
            mover = movers[name]
            batches, waiting = plan_batches(
                kind,
                group,
                seen.scans,
                open_labels=open_labels[name],
                max_active=mover.max_active_tasks,
                max_items=mover.max_items_per_task,
                realtime_slots=executor.config.globus.realtime_slots,
                inventory_endpoint=executor.policy.inventory_endpoint,
                now=now,
            )
            if waiting:
                log.info(
                    "%s: %d %s tasks in flight (limit %d); %d %s actions wait for a slot",
                    name,
                    len(open_labels[name]),
                    kind,
                    mover.max_active_tasks,
                    waiting,
                    kind,
                )
            for batch in batches:
                assert batch.target is not None
                sent = self.submit(
                    mover,
                    kind,
                    batch.source,
                    batch.target,
                    batch.actions,
                    seen.scans,
                    now,
                    realtime=batch.realtime,
                )
                if sent:
                    outcome.submitted += len(batch.actions)
        return outcome

    def item(
        self,
        action_id: str,
        scan: Scan,
        *,
        overwrite: bool = False,
        target_name: str | None = None,
        source_name: str | None = None,
    ) -> TransferItem:
        return TransferItem(
            action_id,
            scan.id,
            scan.files,
            scan.checksum_algorithm,
            recursive=scan.is_directory,
            scan_checksum=scan.checksum,
            overwrite=overwrite,
            target_name=target_name,
            source_name=source_name,
        )

    def deadline(self, created: datetime | None) -> datetime:
        executor = self._executor
        return (created or executor.clock()) + timedelta(
            hours=executor.config.globus.deadline_hours
        )

    def submit(
        self,
        mover: Mover,
        kind: str,
        source: str | None,
        target: str,
        actions: Sequence[Action],
        scans: dict[str, Scan],
        now: datetime,
        *,
        realtime: bool = False,
    ) -> bool:
        """Persist one batch's submission (decisions read again under the write lock), then
        send it. False: nothing was sent (refused, or the mover failed)."""
        try:
            submission_id = mover.new_submission_id()
        except Exception as exc:
            for action in actions:
                self.recorder.fail(
                    action.id,
                    action.scan,
                    classify(exc),
                    f"could not get a submission id: {exc}",
                    now,
                    action=action,
                )
            return False
        arrow = f"{source} → {target}" if source else f"at {target}"
        with self.store.transaction():
            # Decisions and holds are read again under the write lock that records the
            # submission: one recorded during the last looks counts, a later one cannot slip in.
            admitted, refused = DecisionLog(self.store).admit(actions, submission_id, now)
            what = REALTIME_MARK if realtime else "scans"
            label = f"bl931 {kind} {arrow}: {len(admitted)} {what} {now:%Y-%m-%d %H:%M}"
            task = TaskRow(
                submission_id=submission_id,
                task_id=None,
                mover=mover.name,
                kind=kind,
                source=source,
                target=target,
                label=label,
                status=TaskRowStatus.PREPARING,
                action_ids=tuple(a.id for a in admitted),
                bytes_total=sum(a.bytes for a in admitted),
                files_total=sum(scans[a.scan].file_count for a in admitted),
            )
            if admitted:
                self.store.create_task(task, {a.id: a.scan for a in admitted}, now)
                # The version each item carries, kept with the task (engine/submitted.py).
                submitted.record(self.store, submission_id, admitted, scans)
                if kind == "delete":  # what licensed each, before any file is touched
                    record_licences(self.store, self.recorder, admitted, submission_id, now)
                if kind == "copy":
                    self._executor.storage_identities().remember_task_target(submission_id, target)
                for action in admitted:
                    if action.replaces is not None:
                        # With the submission, before the mover runs: what the copy will
                        # overwrite, and who approved it.
                        self.recorder.event(
                            now,
                            "copy.replace_submitted",
                            f"replacing the verified version {action.replaces} at {target}",
                            scan=action.scan,
                            action_id=action.id,
                            data=replace_intent(
                                action, scans[action.scan], self.store, submission_id, now
                            ),
                        )
        for refusal in refused:
            self.not_submitted(refusal, now)
        if not admitted:
            return False
        request = TaskRequest(
            cast(TaskKind, kind),
            source,
            target,
            tuple(
                self.item(
                    a.id,
                    scans[a.scan],
                    overwrite=a.replaces is not None,
                    target_name=a.target_name,
                    source_name=a.source_name,
                )
                for a in admitted
            ),
            submission_id,
            label,
            self.deadline(now),
        )
        return self.send(mover, task, request, now)

    def send(self, mover: Mover, task: TaskRow, request: TaskRequest, now: datetime) -> bool:
        """Hand a persisted submission to its mover and record the task id it answers.

        Not while one of its endpoints is not provably its storage (`unproven`): the
        submission waits, `preparing` under the same id, and a later pass sends it."""
        unproven = self.unproven(request, now)
        if unproven is not None:
            self.unsent.add(task.submission_id)
            self.store.update_task(task.submission_id, now, error=unproven)
            log.warning(
                "%s not sent: %s; it waits (same submission id) until the endpoint is back",
                task.label,
                unproven,
            )
            return False
        self.unsent.discard(task.submission_id)
        try:
            task_id = mover.submit(request)
        except Exception as exc:
            error_class = classify(exc)
            if error_class is ErrorClass.TRANSIENT:
                # Same submission id next pass: if the first call did reach the service, the
                # retry is recognised as a duplicate instead of starting a second task.
                self.store.update_task(task.submission_id, now, error=str(exc))
                log.warning(
                    "submitting %s failed (transient, will resubmit with the same id): %s",
                    task.label,
                    exc,
                )
                return False
            self.store.update_task(
                task.submission_id, now, status=TaskRowStatus.FAILED, error=str(exc)
            )
            for item in request.items:
                self.recorder.fail(
                    item.action_id,
                    item.scan,
                    error_class,
                    f"submission refused: {exc}",
                    now,
                    action=task,  # the batch's kind and target are its actions'
                )
            return False
        self.store.update_task(
            task.submission_id, now, task_id=task_id, status=TaskRowStatus.ACTIVE, error=None
        )
        self._executor.task_watch.started(task, mover, now)
        message = f"{task.label} (task {task_id})"
        self.recorder.events(
            now,
            f"{request.kind}.submitted",
            [(message, item.scan, item.action_id) for item in request.items],
            outcome=ActionOutcome.SUBMITTED,
            action=task,
        )
        return True

    def unproven(self, request: TaskRequest, now: datetime) -> str | None:
        """Why an endpoint of the request is not provably its storage now (None: each is).

        Checked at every hand-over, not only when the pass observed: a submission persisted by
        a process that died is sent again by the next one *before* it observes, and a copy
        sent onto a bare mount point would write the scan onto the disk below it.
        """
        ex = self._executor
        check = ex.identity
        if check is None:
            check = IdentityCheck(ex.config, self.store, may_initialise=False)
            check.tape = tape_identity_checks(ex.backends)
        for endpoint in sorted({e for e in (request.target, request.source) if e is not None}):
            if (why := check.unproven(endpoint, now=now)) is not None:
                return why
        return None

    def rebuild_request(self, task: TaskRow) -> TaskRequest | None:
        """The request a persisted task was (or was about to be) submitted with; None (logged)
        if one of its actions vanished."""
        items = []
        for aid in task.action_ids:
            action = self.store.get_action(aid)
            # The version submitted, not the scan's current record (engine/submitted.py).
            scan = submitted.submitted_scan(self.store, task.submission_id, aid) if action else None
            if action is None or scan is None:
                log.error("task %s refers to a vanished action %s", task.submission_id, aid)
                return None
            replaces = submitted.replaced_version(self.store, task.submission_id, aid)
            source_name, target_name = submitted.names(self.store, task.submission_id, aid)
            items.append(
                self.item(
                    action.id,
                    scan,
                    overwrite=replaces is not None,
                    target_name=target_name,
                    source_name=source_name,
                )
            )
        return TaskRequest(
            cast(TaskKind, task.kind),
            task.source,
            task.target,
            tuple(items),
            task.submission_id,
            task.label,
            self.deadline(task.created_at),
        )

    def find_interrupted(self, task: TaskRow, mover: Mover) -> Interrupted | None:
        """Ask the mover whether an interrupted submission (`preparing`, its answer never
        recorded) became a task. None: nothing can be told this pass (logged); the task waits."""
        request = self.rebuild_request(task)
        if request is None:
            return None
        try:
            task_id = mover.find_task(request)
        except Exception as exc:
            log.warning(
                "%s: cannot tell whether interrupted submission %s reached %s (%s); "
                "it waits for the next pass",
                task.label,
                task.submission_id,
                mover.name,
                exc,
            )
            return None
        return Interrupted(request, task_id)

    def not_submitted(self, refusal: Refused, now: datetime) -> None:
        """Record an action a decision or hold read at submission kept from being submitted."""
        action = refusal.action
        if action.kind is ActionKind.DELETE:
            record_skipped(self.recorder, action, now, refusal.why, code=refusal.code)
            return
        self.recorder.event(
            now,
            "copy.not_submitted",
            f"copy {action.source} → {action.target} not submitted: {refusal.why}",
            scan=action.scan,
            action_id=action.id,
            level="warning",
            data={"reason_code": refusal.code},
        )

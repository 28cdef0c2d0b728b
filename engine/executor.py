# Over 400 lines: split pending: issue 15 item 2 (submission, polling, catalog actions, receipts).
"""Run a plan's allowed actions through the movers and the catalog, and record every outcome.

Idempotency: a batch's submission id is persisted (with its actions, now `submitted`) *before* the
mover is called. If the process dies before the answer is recorded, the next pass finds the task
still `preparing`: a copy is submitted again with the same id, which the mover de-duplicates; a
delete first passes its last look again (`engine/deletes.py`). Tasks already `active` are polled,
never resubmitted.

Deletes are re-checked against a fresh listing of every endpoint they rely on right before they
are submitted; local copies are re-hashed, each must be a different file from the one deleted, and
the copy deleted must still hold the acquisition's bytes (`last_look`). A failed re-check skips
the delete (the next pass plans it again from a new observation) and is recorded with a reason
code. Operator decisions and holds are read once more inside the write transaction that records
a submission, and the approvals it uses are spent there (`engine/decisions.py`): an approval
covers one execution, and a reject recorded during the last look stops the submission. One recorded (or a hold
placed) while the task runs cancels the task at its next poll (`engine/withdrawn_deletes.py`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from engine import submitted, tape_versions
from engine.backends import Backends
from engine.backoff import backoff_seconds
from engine.catalog.base import Location
from engine.catalog.custody import Registrations
from engine.changed_deletes import mark_unverified
from engine.clock import Clock
from engine.config import Config
from engine.copy_evidence import settled_signature
from engine.decisions import DecisionLog, Refused
from engine.deletes import InterruptedDeletes, receipt_files, report_foreign
from engine.errors import Bl931Error, CatalogUnavailable, classify
from engine.evidence_identity import StorageIdentities
from engine.finished_deletes import FinishedDeletes
from engine.identity import IdentityCheck
from engine.interrupted_replaces import InterruptedReplaces
from engine.last_look import (
    Refusal,
    check_distinct_copies,
    check_mounted_target,
    check_target_unchanged,
)
from engine.layout import ScanLayout
from engine.model import Action, ActionKind, ErrorClass, Level, Plan, Scan
from engine.observe import assess, inventory_signature
from engine.policy import Policy
from engine.receipts import delete_receipt
from engine.remnants import remnant_index
from engine.replace_look import passes_last_look
from engine.replace_receipts import replace_intent, replace_receipt
from engine.state import (
    OPEN_TASK_STATES,
    SUBMITTED,
    ActionRow,
    StateStore,
    TaskRow,
    TaskRowStatus,
    iso,
)
from engine.storage.base import (
    ItemResult,
    Mover,
    TaskKind,
    TaskRequest,
    TaskStatus,
    TransferItem,
)
from engine.task_progress import record_item_progress
from engine.task_slots import REALTIME_MARK, plan_batches
from engine.task_watch import TaskWatch
from engine.withdrawn_deletes import Withdrawals

if TYPE_CHECKING:
    from engine.observe.observation import Observation

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    submitted: int = 0
    succeeded: int = 0
    failed: int = 0

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(
            self.submitted + other.submitted,
            self.succeeded + other.succeeded,
            self.failed + other.failed,
        )


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
        self.interrupted = InterruptedDeletes(self)
        self.interrupted_replaces = InterruptedReplaces(self)
        # The scans the catalog made durable (the reconciler reads them back every pass).
        self.registrations = Registrations(store)
        self.finished_deletes = FinishedDeletes(self)
        # Faults remote tasks keep retrying, stalls, and the cancels they lead to.
        self.task_watch = TaskWatch(store, config)
        # Deletes rejected or held after their submission: their running task is cancelled.
        self.withdrawals = Withdrawals(self)

    # ---- recording helpers -------------------------------------------------------------
    def _event(
        self,
        now: datetime,
        kind: str,
        message: str,
        *,
        scan: str | None = None,
        action_id: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        # One log line per lifecycle event, carrying the same identifiers as the audit row, so
        # journald (JSON lines) can be filtered by scan or action without parsing prose.
        extra: dict[str, Any] = {"event": kind}
        if scan is not None:
            extra["scan"] = scan
        if action_id is not None:
            extra["action_id"] = action_id
        if data and "class" in data:
            extra["error_class"] = data["class"]
        getattr(log, "error" if level == "error" else "warning" if level == "warning" else "info")(
            "%s%s%s: %s",
            kind,
            f" [{action_id}]" if action_id else "",
            f" {scan!r}" if scan else "",
            message,
            extra=extra,
        )
        self.store.event(now, kind, message, scan=scan, action_id=action_id, level=level, data=data)

    def _retry_at(self, action_id: str, error_class: ErrorClass, now: datetime) -> datetime | None:
        if error_class is not ErrorClass.TRANSIENT:
            return None  # needs a person (or never works): held until an operator retries
        attempts = self.store.attempts(action_id) if self.store.get_action(action_id) else 0
        delay = backoff_seconds(
            attempts, self.config.retry.base_seconds, self.config.retry.max_seconds
        )
        return now + timedelta(seconds=delay)

    def _fail(
        self,
        action_id: str,
        scan: str,
        error_class: ErrorClass,
        message: str,
        now: datetime,
        *,
        retry_now: bool = False,
        interrupted: bool = False,
    ) -> None:
        retry_at = now if retry_now else self._retry_at(action_id, error_class, now)
        self.store.record_failure(action_id, error_class, message, now, retry_at)
        # An interruption (the process stopped mid-task) is not a failure of the action: it is
        # logged as what it is, and the action is planned again at once.
        self._event(
            now,
            "action.interrupted" if interrupted else "action.failed",
            message if interrupted else f"{error_class.value}: {message}",
            scan=scan,
            action_id=action_id,
            level="warning" if interrupted else "error",
            data={"class": error_class.value, "retry_at": iso(retry_at)},
        )

    # ---- polling -----------------------------------------------------------------------
    def poll_tasks(self, now: datetime, *, local_only: bool = False) -> Outcome:
        """Resubmit copies whose submission was interrupted, settle such deletes (they are
        resumed by `execute` after their last look); poll the active tasks."""
        outcome = Outcome()
        if not local_only:
            self.interrupted.begin_pass()
            self.interrupted_replaces.begin_pass()
        for task in self.store.tasks(OPEN_TASK_STATES):
            mover = self.backends.movers.get(task.mover)
            if mover is None:
                log.error("task %s uses mover %r, which is not configured", task.label, task.mover)
                continue
            if local_only and not mover.finishes_locally:
                continue
            if task.status == TaskRowStatus.PREPARING and task.kind == "delete":
                adopted = None if local_only else self.interrupted.settle(task, mover, now)
                if adopted is None:
                    continue
                task = adopted
            elif (
                task.status == TaskRowStatus.PREPARING
                and self.interrupted_replaces.carries_replace(task)
            ):
                # It may have overwritten the older version already: settled from a fresh
                # listing, resumed only after a last look (engine/interrupted_replaces.py).
                adopted = None if local_only else self.interrupted_replaces.settle(task, mover, now)
                if adopted is None:
                    continue
                task = adopted
            elif task.status == TaskRowStatus.PREPARING:
                request = self._rebuild_request(task)
                if request is not None:
                    self._send(mover, task, request, now)
                continue
            # A delete rejected (or its scan held) since its submission: cancel what still runs.
            task = self.withdrawals.cancel_if_withdrawn(task, mover, now)
            assert task.task_id is not None
            # A mover that answers per scan only for tasks it knows (Globus, in a new process)
            # is told which scans the task carries.
            knows, track = getattr(mover, "knows", None), getattr(mover, "track", None)
            if knows is not None and track is not None and not knows(task.task_id):
                request = self._rebuild_request(task)
                if request is not None:
                    track(task.task_id, request)
            try:
                status = mover.poll(task.task_id)
            except Exception as exc:
                log.warning(
                    "polling task %s failed (%s): %s", task.task_id, classify(exc).value, exc
                )
                continue
            status = self.task_watch.check(task, status, mover, now)
            self.store.update_task(
                task.submission_id,
                now,
                bytes_total=status.bytes_total,
                bytes_done=status.bytes_done,
                files_total=status.files_total,
                files_done=status.files_done,
                rate=status.bytes_per_second,
            )
            record_item_progress(self.store, task.submission_id, status.item_progress)
            if status.finished:
                outcome += self._finish(task, status, now)
        return outcome

    def drain(self, timeout_seconds: float = 3600) -> Outcome:
        """Wait for every task run by an in-process mover to finish, recording each outcome."""
        outcome = Outcome()
        clock = self.clock
        deadline = clock.monotonic() + timeout_seconds
        while clock.monotonic() < deadline:
            open_local = [
                t
                for t in self.store.tasks(OPEN_TASK_STATES)
                if (m := self.backends.movers.get(t.mover)) is not None
                and m.finishes_locally
                and not (
                    t.status == TaskRowStatus.PREPARING and t.kind == "delete"
                )  # next pass's look
                and not (
                    t.status == TaskRowStatus.PREPARING
                    and self.interrupted_replaces.carries_replace(t)
                )
                and t.submission_id not in self.finished_deletes.unsettled  # settled later
            ]
            if not open_local:
                break
            outcome += self.poll_tasks(clock(), local_only=True)
            clock.sleep(0.02)
        return outcome

    def _rebuild_request(self, task: TaskRow) -> TaskRequest | None:
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
                self._item(
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
            self._deadline(task.created_at),
        )

    def _finish(self, task: TaskRow, status: TaskStatus, now: datetime) -> Outcome:
        if task.kind == "delete":
            return self.finished_deletes.settle(task, status, now)  # scan by scan
        outcome = Outcome()
        results: dict[str, ItemResult] = {r.action_id: r for r in status.results}
        undecided = False
        for aid in task.action_ids:
            action = self.store.get_action(aid)
            if action is None or action.status != SUBMITTED:
                continue  # recorded already
            result = results.get(aid)
            if result is None or not result.ok:
                overwrote = self.interrupted_replaces.overwritten(
                    action, task, now, f"task {task.task_id} ended {status.state}"
                )
                if overwrote is None:
                    # A replace that may have overwritten the older version: kept open until
                    # a listing of its target tells (a later pass settles it).
                    undecided = True
                    continue
                replaces = submitted.replaced_version(self.store, task.submission_id, aid)
                if status.state == "lost" and replaces is not None and not overwrote:
                    # Died with its process and overwrote nothing: its approval was not used.
                    DecisionLog(self.store).refund_unused(task.submission_id, [aid])
            if status.state == "lost":
                self._fail(
                    aid,
                    action.scan,
                    ErrorClass.TRANSIENT,
                    f"task {task.task_id} was interrupted before its outcome was recorded; "
                    "planning again from a fresh look (a finished copy is adopted)",
                    now,
                    retry_now=True,
                    interrupted=True,
                )
                outcome.failed += 1
            elif result is None or not result.ok:
                message = (result.error if result else None) or status.error or "task failed"
                error_class = result.error_class if result else status.error_class
                retry_now = result.retry_now if result else False
                self._fail(aid, action.scan, error_class, message, now, retry_now=retry_now)
                outcome.failed += 1
            elif self._record_success(task, action, result, now):
                outcome.succeeded += 1
            else:
                outcome.failed += 1
        if undecided:
            self.store.update_task(
                task.submission_id,
                now,
                status=TaskRowStatus.PREPARING,
                error=f"ended {status.state}; a replace waits for a listing of {task.target} to "
                "tell what it overwrote",
            )
            return outcome
        self.store.update_task(task.submission_id, now, status=status.state, error=status.error)
        return outcome

    def _record_success(
        self, task: TaskRow, action: ActionRow, result: ItemResult, now: datetime
    ) -> bool:
        if action.kind is ActionKind.COPY:
            evidence = result.evidence
            if evidence is None or evidence.level < Level.CHECKSUM:
                self._fail(
                    action.id,
                    action.scan,
                    ErrorClass.NEEDS_HUMAN,
                    "the transfer finished without checksum verification; not counted",
                    now,
                )
                return False
            assert action.target is not None
            # Files a checksum-sync skipped keep their own mtimes (engine/copy_evidence.py).
            evidence = settled_signature(self, task, action.scan, action.target, evidence)
            # The evidence is about the storage the task wrote to, even if the config was
            # repointed while it ran.
            storages = self._storage_identities()
            evidence = storages.stamp(
                action.target, evidence, storages.task_target(task.submission_id, action.target)
            )
            # A versioned object on tape keeps its evidence under its own name, beside the
            # older version's (engine/tape_versions.py).
            _, kept_as = submitted.names(self.store, task.submission_id, action.id)
            self.store.record_evidence(kept_as or action.scan, action.target, evidence)
            self.store.record_success(action.id, now)
            receipt = replace_receipt(self.store, action.id, evidence, task.task_id, now)
            if receipt is not None:
                self._event(
                    now,
                    "copy.replaced",
                    f"version {receipt['old_checksum']} at {action.target} replaced by "
                    f"{receipt['new_checksum']} (approved by {receipt['approval_by']})",
                    scan=action.scan,
                    action_id=action.id,
                    data=receipt,
                )
            self._event(
                now,
                "copy.verified",
                f"copied {action.source} → {action.target}, {evidence.algorithm} "
                f"{evidence.value} verified ({evidence.how}, task {evidence.task_id})",
                scan=action.scan,
                action_id=action.id,
            )
            return True
        self._record_deletion(action, task, now, result=result)
        return True

    def _record_deletion(
        self,
        action: ActionRow,
        task: TaskRow,
        now: datetime,
        *,
        note: str | None = None,
        result: ItemResult | None = None,
    ) -> None:
        """The delete is done: its receipt (with exactly the files removed and those left
        beside the scan) is written and the absence becomes expected. Removed files seen
        changed after the last look are `removed_unverified` (engine/changed_deletes.py)."""
        assert action.target is not None
        receipt = self._receipt(action, task, now)
        receipt.update(receipt_files(self, action, result))
        mark_unverified(self, task, action, receipt, now)
        if note is not None:
            receipt["note"] = f"{note}; {receipt['note']}" if "note" in receipt else note
        self.store.record_deletion(
            action.scan,
            action.target,
            action.id,
            task.task_id,
            now,
            receipt,
            submission_id=task.submission_id,
        )
        self.store.record_success(action.id, now)
        detail = f"task {task.task_id}" + ("; confirmed absent by a fresh listing" if note else "")
        self._event(
            now,
            "delete.done",
            f"deleted from {action.target} ({detail})",
            scan=action.scan,
            action_id=action.id,
            data=receipt,
        )
        if receipt.get("left_behind"):
            report_foreign(self, action, receipt["left_behind"], now)

    def _receipt(self, action: ActionRow, task: TaskRow, now: datetime) -> dict[str, Any]:
        return delete_receipt(
            self.config, self.store, self.policy, action, task, now, self._storage_identities()
        )

    # ---- execution ---------------------------------------------------------------------
    def execute(self, plan: Plan, seen: Observation, now: datetime) -> Outcome:
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
        outcome += self._submit_batches("copy", copies, seen, now)
        catalog_actions = [
            a for a in runnable if a.kind in (ActionKind.REGISTER, ActionKind.UPDATE_CATALOG)
        ]
        if catalog_actions:
            outcome += self._catalog_actions(catalog_actions, seen, now)
        resuming = self.interrupted.action_ids  # resubmitted (or withdrawn) below, not anew
        planned_deletes = [
            a for a in runnable if a.kind is ActionKind.DELETE and a.id not in resuming
        ]
        relied_on = self._copies_relied_on(planned_deletes)
        outcome += self.interrupted.resume(plan, seen, relied_on, now)
        deletes = [
            a
            for a in planned_deletes
            if self._not_relied_on(a, relied_on, now)
            and self._identities_hold(a, now)
            and self._recheck_delete(a, seen, now)
        ]
        outcome += self._submit_batches("delete", deletes, seen, now)
        return outcome

    def _copies_relied_on(self, planned: Sequence[Action]) -> dict[tuple[str, str], str]:
        """(scan, endpoint) → the endpoint whose delete, planned or in flight, relies on it.

        A delete is re-checked against its required copies once, before it is submitted; the
        copies must then stay until it is done. The planner keeps them wanted while the delete
        is planned; this also covers a delete still in flight (e.g. resubmitted after a crash).
        """
        relied: dict[tuple[str, str], str] = {}
        pending = [(a.scan, a.target) for a in planned]
        pending += [
            (a.scan, a.target)
            for a in self.store.actions([SUBMITTED])
            if a.kind is ActionKind.DELETE
        ]
        for scan, target in pending:
            rule = self.policy.retention.get(target or "")
            if rule is None or target is None:
                continue
            for required in rule.delete_requires:
                relied.setdefault((scan, required), target)
        return relied

    def _not_relied_on(
        self, action: Action, relied_on: dict[tuple[str, str], str], now: datetime
    ) -> bool:
        assert action.target is not None
        holder = relied_on.get((action.scan, action.target))
        if holder is None or holder == action.target:
            return True
        return self._recheck_failed(
            action,
            now,
            f"a delete at {holder} that relies on this copy is not finished yet",
            code="required_copy_being_deleted",
        )

    def _submit_batches(
        self, kind: str, actions: list[Action], seen: Observation, now: datetime
    ) -> Outcome:
        """Submit what the free task slots allow (`engine/task_slots.py`): per mover and kind,
        real-time slots for new scans, the rest shared route by route in bounded batches."""
        outcome = Outcome()
        by_mover: dict[str, list[Action]] = defaultdict(list)
        movers: dict[str, Mover] = {}
        for action in actions:
            assert action.target is not None
            mover = self.backends.mover_for(action.source, action.target)
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
                realtime_slots=self.config.globus.realtime_slots,
                inventory_endpoint=self.policy.inventory_endpoint,
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
                submitted = self._submit(
                    mover,
                    kind,
                    batch.source,
                    batch.target,
                    batch.actions,
                    seen.scans,
                    now,
                    realtime=batch.realtime,
                )
                if submitted:
                    outcome.submitted += len(batch.actions)
        return outcome

    def _item(
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

    def _deadline(self, created: datetime | None) -> datetime:
        return (created or self.clock()) + timedelta(hours=self.config.globus.deadline_hours)

    def _submit(
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
        try:
            submission_id = mover.new_submission_id()
        except Exception as exc:
            for action in actions:
                self._fail(
                    action.id,
                    action.scan,
                    classify(exc),
                    f"could not get a submission id: {exc}",
                    now,
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
                if kind == "copy":
                    self._storage_identities().remember_task_target(submission_id, target)
                for action in admitted:
                    if action.replaces is not None:
                        # With the submission, before the mover runs: what the copy will
                        # overwrite, and who approved it.
                        self._event(
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
            self._not_submitted(refusal, now)
        if not admitted:
            return False
        actions = admitted
        request = TaskRequest(
            cast(TaskKind, kind),
            source,
            target,
            tuple(
                self._item(
                    a.id,
                    scans[a.scan],
                    overwrite=a.replaces is not None,
                    target_name=a.target_name,
                    source_name=a.source_name,
                )
                for a in actions
            ),
            submission_id,
            label,
            self._deadline(now),
        )
        return self._send(mover, task, request, now)

    def _send(self, mover: Mover, task: TaskRow, request: TaskRequest, now: datetime) -> bool:
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
                self._fail(
                    item.action_id, item.scan, error_class, f"submission refused: {exc}", now
                )
            return False
        self.store.update_task(
            task.submission_id, now, task_id=task_id, status=TaskRowStatus.ACTIVE, error=None
        )
        self.task_watch.started(task, mover, now)
        for item in request.items:
            self._event(
                now,
                f"{request.kind}.submitted",
                f"{task.label} (task {task_id})",
                scan=item.scan,
                action_id=item.action_id,
            )
        return True

    # ---- catalog -----------------------------------------------------------------------
    def _path_on(self, endpoint: str, scan: Scan, name: str | None = None) -> str:
        """The scan's path at an endpoint (`name`: a versioned object on tape)."""
        spec = self.config.endpoints[endpoint]
        if spec.kind == "globus" and spec.root:
            return f"{spec.root.rstrip('/')}/{name or scan.id}"
        assert spec.path is not None
        return str(spec.path / (name or scan.id))

    def locations(self, scan: Scan, seen: Observation) -> list[Location]:
        out = []
        for name in self.policy.endpoints:
            obs = seen.observations.get(name)
            if obs is None or not obs.ok or obs.level(scan.id) < Level.CHECKSUM:
                continue
            replica = obs.replicas.get(scan.id)
            out.append(
                Location(
                    name,
                    self._path_on(name, scan, replica.name if replica else None),
                    obs.level(scan.id),
                    tape=name in self.policy.tape,
                    delete_after=self.policy.delete_due_at(scan, name),
                )
            )
        return out

    def _catalog_actions(
        self, actions: Sequence[Action], seen: Observation, now: datetime
    ) -> Outcome:
        """Run the catalog actions, make them durable (`flush`), and only then record them.

        A catalog that keeps its writes in memory until `flush` (the local file) would otherwise
        leave events saying "registered" for records an interrupted pass never wrote.
        """
        catalog = self.backends.catalog
        if catalog is None:
            return Outcome()
        outcome = Outcome()
        done: list[tuple[Action, str, str | None]] = []
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
                self._fail(action.id, action.scan, _catalog_failure(exc), str(exc), now)
                outcome.failed += 1
                continue
            done.append((action, message, pid))
        try:
            catalog.flush()
        except Exception as exc:
            for action, _, _ in done:
                self._fail(
                    action.id,
                    action.scan,
                    _catalog_failure(exc),
                    f"not written to the catalog: {exc}",
                    now,
                )
            return outcome + Outcome(failed=len(done))
        registered = [(a.scan, pid) for a, _, pid in done if a.kind is ActionKind.REGISTER]
        self.registrations.record(catalog.name, registered, now)
        for action, message, pid in done:
            self.store.record_success(action.id, now)
            self._event(
                now,
                f"catalog.{action.kind.value}",
                message,
                scan=action.scan,
                action_id=action.id,
                data={"pid": pid} if action.kind is ActionKind.REGISTER else None,
            )
            outcome.succeeded += 1
        return outcome

    # ---- deletes: the last look ----------------------------------------------------------
    def _recheck_delete(self, action: Action, seen: Observation, now: datetime) -> bool:
        """Re-verify, on fresh listings, everything this delete relies on."""
        assert action.target is not None
        scan = seen.scans[action.scan]
        rule = self.policy.retention[action.target]
        if action.scan in self.store.active_holds(now):
            return self._recheck_failed(action, now, "a hold was placed", code="on_hold")
        roots = self.backends.local_roots
        # Cheap (one lstat per file) and decisive: a copy that is the deleted file itself proves
        # nothing, however well it verifies.
        refusal = check_distinct_copies(scan, action.target, rule.delete_requires, roots)
        if refusal is not None:
            return self._refused(action, now, refusal)
        evidence = self.store.load_evidence()
        # Evidence counts only on the storage it was taken on, told afresh (a remount).
        storages = StorageIdentities(self.config, self.store)
        for required in rule.delete_requires:
            storage = self.backends.storages.get(required)
            if storage is None:
                return self._recheck_failed(
                    action, now, f"{required} has no storage backend", code="endpoint_unknown"
                )
            # The current version's copy there: a versioned object beside an older version
            # on tape is listed and read under its own name (engine/tape_versions.py).
            kept_as = tape_versions.name_at(evidence.get(required, {}), scan)
            try:
                listing = tape_versions.fresh_listing(storage, self.layout, scan, kept_as)
            except Exception as exc:
                return self._recheck_failed(
                    action, now, f"{required} could not be listed: {exc}", code="endpoint_unknown"
                )
            if listing is None:
                return self._recheck_failed(
                    action, now, f"the {required} copy is gone", code="copy_missing"
                )
            proof, moved = storages.sort(required, evidence.get(required, {}).get(kept_as))
            level = assess(
                scan,
                required,
                listing,
                proof,
                is_inventory=required == self.policy.inventory_endpoint,
                elsewhere=moved,
            ).replica.level
            if level < rule.verify:
                return self._recheck_failed(
                    action,
                    now,
                    f"the {required} copy is now verified by {level.word} only",
                    code="copy_unverified",
                )
            if rule.verify >= Level.CHECKSUM:
                try:
                    sums = tape_versions.checksums(
                        storage, listing, scan, kept_as, scan.checksum_algorithm
                    )
                except Exception as exc:
                    return self._recheck_failed(
                        action, now, f"re-hashing {required} failed: {exc}", code="endpoint_unknown"
                    )
                if sums is not None:
                    bad = [f.path for f in scan.files if sums.get(f.path) != f.checksum]
                    if bad:
                        self.store.drop_evidence(kept_as, required)
                        return self._recheck_failed(
                            action,
                            now,
                            f"the {required} copy no longer matches the acquisition checksum "
                            f"({len(bad)} files, e.g. {bad[0]!r}); evidence dropped",
                            level="error",
                            code="copy_mismatch",
                        )
        if action.target == self.policy.inventory_endpoint:
            storage = self.backends.storages.get(action.target)
            listing = storage.stat_scan(self.layout, scan.id) if storage else None
            if (
                listing is not None
                and listing.signature != inventory_signature(scan)
                # the rest of a partial delete of this version: the same version, not a change
                and not remnant_index(self.store, action.target).is_remnant(
                    scan, listing.files, by_identity=False
                )
            ):
                return self._recheck_failed(
                    action, now, "the scan changed since inventory", code="changed_since_inventory"
                )
        # Last, and the most expensive: the bytes about to go must be the ones verified elsewhere.
        target_storage = self.backends.storages.get(action.target)
        if self.backends.kinds.get(action.target) == "globus" and action.target in roots:
            assert target_storage is not None
            refusal = check_mounted_target(scan, action.target, target_storage, self.layout)
        else:
            refusal = check_target_unchanged(scan, action.target, roots)
        if refusal is not None:
            if action.target != self.policy.inventory_endpoint:
                self.store.drop_evidence(scan.id, action.target)  # so the copy gets repaired
            return self._refused(action, now, refusal)
        return True

    def _storage_identities(self) -> StorageIdentities:
        """This pass's storage identities (told now when no observation has run yet, e.g. while
        polling the tasks of an earlier pass)."""
        if self.storages is None:
            self.storages = StorageIdentities(self.config, self.store)
        return self.storages

    def _identities_hold(self, action: Action, now: datetime) -> bool:
        """At the last look, the endpoint deleted from and every one relied on are still
        provably their storage (markers, mounts): a filesystem swapped since the observation
        proves nothing."""
        assert action.target is not None
        if self.identity is None:
            return True
        rule = self.policy.retention[action.target]
        for endpoint in (*rule.delete_requires, action.target):
            try:
                self.identity.check(endpoint, user="bl931", now=now)
            except Bl931Error as exc:
                return self._recheck_failed(
                    action, now, f"endpoint_identity: {exc}", code="endpoint_identity"
                )
        return True

    def _refused(self, action: Action, now: datetime, refusal: Refusal) -> bool:
        """A refusal by the last look's file checks. What they find (a copy that is the deleted
        file itself, bytes at the target that are not the acquisition's) will not go away by
        itself, so besides the event the delete is held for a person (`needs_attention`, shown
        and kept until an operator retries it); a check that could not run is only skipped."""
        self._recheck_failed(action, now, refusal.message, level="error", code=refusal.code)
        if refusal.needs_human:
            self.store.record_failure(action.id, ErrorClass.NEEDS_HUMAN, refusal.message, now, None)
        return False

    def _not_submitted(self, refusal: Refused, now: datetime) -> None:
        """Record an action a decision or hold read at submission kept from being submitted."""
        action = refusal.action
        if action.kind is ActionKind.DELETE:
            self._recheck_failed(action, now, refusal.why, code=refusal.code)
            return
        self._event(
            now,
            "copy.not_submitted",
            f"copy {action.source} → {action.target} not submitted: {refusal.why}",
            scan=action.scan,
            action_id=action.id,
            level="warning",
            data={"reason_code": refusal.code},
        )

    def _recheck_failed(
        self,
        action: Action,
        now: datetime,
        why: str,
        *,
        code: str,
        level: str = "warning",
    ) -> bool:
        """Record a skipped delete (`reason_code` in the event's data) and return False."""
        self._event(
            now,
            "delete.recheck_failed",
            f"delete from {action.target} skipped: {why}",
            scan=action.scan,
            action_id=action.id,
            level=level,
            data={"reason_code": code},
        )
        return False


def _catalog_failure(exc: BaseException) -> ErrorClass:
    """How a failed catalog action is handled. An unavailable catalog is a condition of the
    catalog, reported (and classed) by every pass's observation: the action itself just waits
    for it and is retried with backoff, never left for a person to retry by hand."""
    if isinstance(exc, CatalogUnavailable):
        return ErrorClass.TRANSIENT
    return classify(exc)

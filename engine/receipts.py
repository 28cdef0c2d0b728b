"""What a delete's receipt says about the scan, the copies it relied on and its approval.

A receipt is written once per removal (`StateStore.record_deletion`; the files it removed and
left are added by `engine/deletes.py`). Its `approval` is the one the delete's submission spent
(`engine/decisions.py`): the decision in force when the delete was submitted, with who made it,
when, and the submission that used it. Decisions recorded after the submission are events of
their own and never change a receipt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine import tape_versions
from engine.approvals import approvals_for
from engine.catalog.custody import Registrations
from engine.catalog.dataset import dataset_pid
from engine.catalog.factory import resolved_catalog_config
from engine.catalog.pid_book import StorePidBook
from engine.config import Config
from engine.decisions import DecisionLog
from engine.evidence_identity import StorageIdentities
from engine.policy import Policy
from engine.state import ActionRow, StateStore, TaskRow, iso
from engine.storage.tape_catalog import tape_receipt
from engine.submitted import submitted_scan


@dataclass(slots=True)
class Receipt:
    """The receipt of one removal, as stored (`deletions.receipt`) and in `delete.done` events.

    The first block is known when the receipt is made (`delete_receipt`); the files are the
    mover's or a fresh listing's account (`engine/deletes.py`), and `removed_unverified` the
    removed files bl931 saw change after the last look (`engine/changed_deletes.py`). Optional
    parts are left out of the JSON when absent, as they always were.
    """

    catalog_pid: str | None
    acquisition: dict[str, Any]
    verified_copies: list[dict[str, Any]]
    approval: dict[str, Any] | None
    approvers: list[dict[str, Any]]
    delete_task_id: str | None
    recorded_at: str | None
    # Files of the scan's manifest this removal took away (its own, not a cut delete's earlier).
    removed: list[str] = field(default_factory=list)
    already_absent: list[str] | None = None
    # Everything still found beside the scan afterwards (None: it could not be listed).
    left_behind: list[str] | None = None
    still_listed: list[str] | None = None
    partial: bool = False  # a delete cut part-way: `remaining` are the files still there
    remaining: list[str] | None = None
    removed_unverified: list[str] | None = None
    note: str | None = None

    def add_note(self, note: str) -> None:
        """Prefix a note (what settled the delete) to any the receipt has."""
        self.note = f"{note}; {self.note}" if self.note is not None else note

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "catalog_pid": self.catalog_pid,
            "acquisition": self.acquisition,
            "verified_copies": self.verified_copies,
            "approval": self.approval,
            "approvers": self.approvers,
            "delete_task_id": self.delete_task_id,
            "recorded_at": self.recorded_at,
        }
        if self.partial:
            out["partial"] = True
        out["removed"] = self.removed
        if self.already_absent is not None:
            out["already_absent"] = self.already_absent
        if self.remaining is not None:
            out["remaining"] = self.remaining
        out["left_behind"] = self.left_behind
        if self.still_listed is not None:
            out["still_listed"] = self.still_listed
        if self.note is not None:
            out["note"] = self.note
        if self.removed_unverified is not None:
            out["removed_unverified"] = self.removed_unverified
        return out


def delete_receipt(
    config: Config,
    store: StateStore,
    policy: Policy,
    action: ActionRow,
    task: TaskRow,
    now: datetime,
    storages: StorageIdentities | None = None,
) -> Receipt:
    """The receipt of a delete run by `task`: acquisition, verified copies, approval, task
    (the files are added by the caller).

    Args:
        config: the configuration (for the catalog pid).
        store: the state store (scan, evidence, decisions, events).
        policy: the policy (which copies the delete relies on).
        action: the delete.
        task: the task that ran it (its submission id names the approval spent).
        now: when the receipt is recorded.
        storages: the endpoints' storage identities (each copy names the storage it was
            verified on).

    Returns:
        The receipt, its files still empty.
    """
    # The version the delete was submitted for (engine/submitted.py): the scan may have
    # changed since, and the receipt names what was removed.
    scan = submitted_scan(store, task.submission_id, action.id)
    evidence = store.load_evidence()
    rule = policy.retention.get(action.target or "")
    required = rule.delete_requires if rule else ()
    decision = DecisionLog(store).spent_by(task.submission_id, action.id)
    copies: list[dict[str, Any]] = []
    for endpoint in required:
        # The copy of this version there (a versioned object beside an older version on tape
        # keeps its evidence under its own name: engine/tape_versions.py).
        here = evidence.get(endpoint, {})
        kept_as = tape_versions.name_at(here, scan) if scan is not None else action.scan
        ev = here.get(kept_as)
        copies.append(
            {
                **({"name": kept_as} if kept_as != action.scan else {}),
                "endpoint": endpoint,
                "level": ev.level.word if ev else None,
                "algorithm": ev.algorithm if ev else None,
                "checksum": ev.value if ev else None,
                "task_id": ev.task_id if ev else None,
                "verified_at": iso(ev.verified_at) if ev else None,
                "how": ev.how if ev else None,
                "storage": storages.owner(endpoint, ev) if ev and storages else None,
            }
        )
        spec = config.endpoints.get(endpoint)
        tape = tape_receipt(store, endpoint, kept_as) if spec and spec.kind == "tape" else None
        if tape is not None:
            copies[-1]["tape"] = tape
    return Receipt(
        catalog_pid=catalog_pid(config, store, action.scan),
        acquisition={
            "algorithm": scan.checksum_algorithm if scan else None,
            "checksum": scan.checksum if scan else None,
            "version": scan.version if scan else None,
            "bytes": scan.size if scan else None,
            "files": scan.file_count if scan else None,
        },
        verified_copies=copies,
        approval=decision.as_receipt() if decision else None,
        # Every approver of this execution (two for a delete over
        # `[approval] second_approver_over_bytes`).
        approvers=[
            a.to_json()
            for a in approvals_for(
                store, action.id, at_submission=True, submission_id=task.submission_id
            )
        ],
        delete_task_id=task.task_id,
        recorded_at=iso(now),
    )


def catalog_pid(config: Config, store: StateStore, scan_id: str) -> str | None:
    """The scan's dataset pid: as the catalog answered at registration, else derived.

    The answer is stored with the registration (`catalog_registrations.pid`, back-filled from
    the register events of older stores by migration 14); a catalog that keeps its pids (SciCat)
    has them in `catalog_pids` first. Catalogs derive pids deterministically (`dataset_pid`), so
    a scan with no recorded answer still gets the right one.
    """
    if config.catalog.kind == "none":
        return None
    recorded = StorePidBook(store).get(scan_id) or Registrations(store).pid(scan_id)
    if recorded is not None:
        return recorded
    catalog = resolved_catalog_config(config)
    return dataset_pid(scan_id, prefix=catalog.pid_prefix, beamline=config.beamline.name)

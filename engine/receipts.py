"""What a delete's receipt says about the scan, the copies it relied on and its approval.

A receipt is written once per removal (`StateStore.record_deletion`; the files it removed and
left are added by `engine/deletes.py`). Its `approval` is the one the delete's submission spent
(`engine/decisions.py`): the decision in force when the delete was submitted, with who made it,
when, and the submission that used it. Decisions recorded after the submission are events of
their own and never change a receipt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine import tape_versions
from engine.approvals import approvals_for
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


def delete_receipt(
    config: Config,
    store: StateStore,
    policy: Policy,
    action: ActionRow,
    task: TaskRow,
    now: datetime,
    storages: StorageIdentities | None = None,
) -> dict[str, Any]:
    """The receipt of a delete run by `task`: acquisition, verified copies, approval, task.

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
        The receipt's JSON body.
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
    return {
        "catalog_pid": catalog_pid(config, store, action.scan),
        "acquisition": {
            "algorithm": scan.checksum_algorithm if scan else None,
            "checksum": scan.checksum if scan else None,
            "version": scan.version if scan else None,
            "bytes": scan.size if scan else None,
            "files": scan.file_count if scan else None,
        },
        "verified_copies": copies,
        "approval": decision.as_receipt() if decision else None,
        # Every approver of this execution (two for a delete over
        # `[approval] second_approver_over_bytes`).
        "approvers": [a.to_json() for a in approvals_for(store, action.id, at_submission=True)],
        "delete_task_id": task.task_id,
        "recorded_at": iso(now),
    }


def catalog_pid(config: Config, store: StateStore, scan_id: str) -> str | None:
    """The scan's dataset pid: as the catalog answered at registration, else derived.

    Catalogs derive pids deterministically (`dataset_pid`), so a scan registered before pids
    were recorded in events still gets the right one; an adopted SciCat dataset with another
    pid is what the recorded answer is for.
    """
    if config.catalog.kind == "none":
        return None
    recorded = StorePidBook(store).get(scan_id)
    if recorded is not None:
        return recorded
    for event in reversed(store.events(scan=scan_id, limit=10_000)):
        data = event.get("data")
        if event["kind"] == "catalog.register" and isinstance(data, dict) and data.get("pid"):
            return str(data["pid"])
    catalog = resolved_catalog_config(config)
    return dataset_pid(scan_id, prefix=catalog.pid_prefix, beamline=config.beamline.name)

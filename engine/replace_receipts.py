"""Receipts for replacing a verified copy by a new version of its scan.

Overwriting a verified copy removes bytes, so it is recorded like a delete: before the mover
runs, an intent names the version being replaced and the approval its submission spent (an
approval covers one execution: engine/decisions.py); when the copy is verified, the receipt
names both checksums, the approval and the task.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.approvals import approvals_for
from engine.decisions import DecisionLog
from engine.model import Action, Evidence, Scan
from engine.state import StateStore, iso


def replace_intent(
    action: Action, scan: Scan, store: StateStore, submission_id: str, now: datetime
) -> dict[str, Any]:
    """What a replace is about to overwrite, recorded before it is submitted, with the approval
    its submission spent (None when the policy needs none)."""
    decision = DecisionLog(store).spent_by(submission_id, action.id)
    return {
        "target": action.target,
        "old_checksum": action.replaces,
        "new_checksum": scan.checksum,
        "new_version": scan.version,
        "algorithm": scan.checksum_algorithm,
        "approval_by": decision.by if decision else None,
        "approval_at": iso(decision.at) if decision else None,
        "submission_id": submission_id,
        "approvers": [a.to_json() for a in approvals_for(store, action.id)],
        "submitted_at": iso(now),
    }


def replace_receipt(
    store: StateStore, action_id: str, evidence: Evidence, task_id: str | None, now: datetime
) -> dict[str, Any] | None:
    """The receipt of a finished replace, or None if the copy replaced nothing."""
    intents = [
        e for e in store.events(action_id=action_id) if e["kind"] == "copy.replace_submitted"
    ]
    if not intents:
        return None
    intent = intents[-1]["data"] or {}
    submission = intent.get("submission_id")
    if any(
        e["kind"] == "copy.replaced" and (e["data"] or {}).get("submission_id") == submission
        for e in store.events(action_id=action_id)
    ):
        return None  # receipted already, from a fresh listing after an interruption
    return {
        **intent,
        "new_checksum": evidence.value,
        "verified_by": evidence.how,
        "task_id": task_id,
        "replaced_at": iso(now),
    }

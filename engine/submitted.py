"""What a task carried: each scan's version (checksum, manifest) as it was submitted.

A task may be settled long after it was submitted — after a crash, or once an unmounted target
is back — and meanwhile the scan may have changed (rewritten, truncated, its name reused). Its
record in `scans` then describes the new version, not the bytes the task deleted or wrote. So
each item of a task keeps the version it was submitted for (`task_items.submitted`, written in
the transaction that records the submission), and whatever settles, resubmits or receipts the
task reads it from here (`submitted_scan`), never from the scan's current record. A replace also
keeps the checksum of the version it overwrites (`replaces`).

Items recorded by a bl931 from before this was kept have no record: the scan's current record
is the best left (`submitted_scan` falls back to it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from engine.model import Action, Scan, ScanFile
from engine.state import StateStore, iso


def _encode(scan: Scan, action: Action) -> str:
    files = [[f.path, f.size, f.mtime, f.checksum] for f in scan.files]
    body: dict[str, Any] = {
        "checksum": scan.checksum,
        "algorithm": scan.checksum_algorithm,
        "version": scan.version,
        "is_directory": scan.is_directory,
        "acquired_at": iso(scan.acquired_at),
        "files": files,
    }
    for key in ("replaces", "target_name", "source_name"):
        if getattr(action, key) is not None:
            body[key] = getattr(action, key)
    return json.dumps(body, ensure_ascii=False)


def _decode(scan_id: str, text: str) -> tuple[Scan, dict[str, Any]]:
    body = json.loads(text)
    scan = Scan(
        id=scan_id,
        files=tuple(ScanFile(*entry[:4]) for entry in body["files"]),
        acquired_at=datetime.fromisoformat(body["acquired_at"]),
        checksum_algorithm=body["algorithm"],
        checksum=body["checksum"],
        version=int(body["version"]),
        is_directory=bool(body["is_directory"]),
    )
    return scan, body


def record(
    store: StateStore,
    submission_id: str,
    actions: Sequence[Action],
    scans: Mapping[str, Scan],
) -> None:
    """Keep, for each action of a submission, the scan version it carries (and, for a replace,
    the checksum it overwrites; for a copy kept under another name, its names). Call it in the
    transaction that records the submission."""
    with store.transaction() as conn:
        conn.executemany(
            "UPDATE task_items SET submitted = ? WHERE submission_id = ? AND action_id = ?",
            [(_encode(scans[a.scan], a), submission_id, a.id) for a in actions],
        )


def _row(store: StateStore, submission_id: str, action_id: str) -> tuple[str, str | None] | None:
    row = (
        store.connection()
        .execute(
            "SELECT scan, submitted FROM task_items WHERE submission_id = ? AND action_id = ?",
            (submission_id, action_id),
        )
        .fetchone()
    )
    return None if row is None else (row[0], row[1])


def submitted_scan(store: StateStore, submission_id: str | None, action_id: str) -> Scan | None:
    """The scan version the submission carried for this action (else the scan's current
    record, for an item recorded before versions were kept; None if neither is known)."""
    if submission_id is not None:
        found = _row(store, submission_id, action_id)
        if found is not None:
            scan_id, text = found
            if text:
                return _decode(scan_id, text)[0]
            return store.get_scan(scan_id)
    action = store.get_action(action_id)
    return store.get_scan(action.scan) if action is not None else None


def replaced_version(store: StateStore, submission_id: str, action_id: str) -> str | None:
    """The checksum the submitted copy overwrites (a replace), or None (a plain copy, or an
    item recorded before versions were kept)."""
    found = _row(store, submission_id, action_id)
    if found is None or not found[1]:
        return None
    value = _decode(found[0], found[1])[1].get("replaces")
    return str(value) if value is not None else None


def names(store: StateStore, submission_id: str, action_id: str) -> tuple[str | None, str | None]:
    """(source name, target name) of a submitted copy kept under another name than the scan's
    own path (a versioned object on tape), each None when it is the scan's own path."""
    found = _row(store, submission_id, action_id)
    if found is None or not found[1]:
        return None, None
    body = _decode(found[0], found[1])[1]
    return body.get("source_name"), body.get("target_name")

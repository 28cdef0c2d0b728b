"""Actions (each planned action's lifecycle), tasks and task items (batches submitted to a mover,
keyed by the submission id that is persisted *before* the remote call).

Action statuses: `planned` rows are the current plan's actions (rewritten each pass); `submitted`
are in flight; `succeeded`/`failed` are history; `failed` with a retry_at is retried
(`engine.store.status`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.model import ActionKind, ErrorClass, Failure
from engine.store.connection import StoreBase, iso, parse_time
from engine.store.status import FAILED, PLANNED


@dataclass(frozen=True, slots=True)
class TaskRow:
    submission_id: str
    task_id: str | None
    mover: str
    kind: str
    source: str | None
    target: str
    label: str
    status: str
    action_ids: tuple[str, ...]
    bytes_total: int = 0
    bytes_done: int = 0
    files_total: int = 0
    files_done: int = 0
    rate: float = 0.0
    error: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ActionRow:
    id: str
    kind: ActionKind
    scan: str
    source: str | None
    target: str | None
    bytes: int
    status: str
    requires_approval: bool
    reason: str
    submission_id: str | None
    attempts: int
    error_class: ErrorClass | None
    error: str | None
    retry_at: datetime | None
    updated_at: datetime


def _action_from_row(row: sqlite3.Row) -> ActionRow:
    return ActionRow(
        id=row["id"],
        kind=ActionKind(row["kind"]),
        scan=row["scan"],
        source=row["source"],
        target=row["target"],
        bytes=row["bytes"],
        status=row["status"],
        requires_approval=bool(row["requires_approval"]),
        reason=row["reason"],
        submission_id=row["submission_id"],
        attempts=row["attempts"],
        error_class=ErrorClass(row["error_class"]) if row["error_class"] else None,
        error=row["error"],
        retry_at=parse_time(row["retry_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
    )


class ActionStore(StoreBase):
    """The actions, tasks and task_items tables."""

    def actions(self, statuses: Iterable[str] | None = None) -> list[ActionRow]:
        if statuses is None:
            rows = self._conn().execute("SELECT * FROM actions").fetchall()
        else:
            wanted = list(statuses)
            marks = ",".join("?" * len(wanted))
            rows = (
                self._conn()
                .execute(f"SELECT * FROM actions WHERE status IN ({marks})", wanted)
                .fetchall()
            )
        return [_action_from_row(r) for r in rows]

    def get_action(self, action_id: str) -> ActionRow | None:
        row = self._conn().execute("SELECT * FROM actions WHERE id = ?", (action_id,)).fetchone()
        return _action_from_row(row) if row else None

    def actions_for_scan(self, scan: str) -> list[ActionRow]:
        rows = self._conn().execute(
            "SELECT * FROM actions WHERE scan = ? ORDER BY updated_at", (scan,)
        )
        return [_action_from_row(r) for r in rows]

    def save_plan(self, actions: Iterable[Any], now: datetime) -> None:
        """Make `planned` rows mirror the current plan: new ones inserted, stale ones dropped.

        Rows in flight or in history keep their status; a failed action planned again keeps
        its attempt count (so backoff grows) and becomes `planned` once its retry time is due.
        """
        current = {a.id: a for a in actions}
        stamp = iso(now)
        with self.transaction() as conn:
            existing = {
                row["id"]: row["status"]
                for row in conn.execute(
                    "SELECT id, status FROM actions WHERE status IN (?, ?)", (PLANNED, FAILED)
                )
            }
            stale = [
                aid for aid, status in existing.items() if status == PLANNED and aid not in current
            ]
            conn.executemany("DELETE FROM actions WHERE id = ?", [(aid,) for aid in stale])
            conn.executemany(
                """INSERT INTO actions(id, kind, scan, source, target, bytes, status,
                       requires_approval, reason, created_at, updated_at)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT(id) DO UPDATE SET reason=excluded.reason, bytes=excluded.bytes,
                     requires_approval=excluded.requires_approval,
                     status=CASE WHEN actions.status IN ('failed', 'succeeded')
                                 THEN 'planned' ELSE actions.status END,
                     updated_at=CASE WHEN actions.status = 'planned'
                                 THEN actions.updated_at ELSE excluded.updated_at END""",
                [
                    (
                        a.id,
                        a.kind.value,
                        a.scan,
                        a.source,
                        a.target,
                        a.bytes,
                        PLANNED,
                        int(a.requires_approval),
                        a.reason,
                        stamp,
                        stamp,
                    )
                    for a in current.values()
                ],
            )

    def set_action_status(
        self,
        action_ids: Iterable[str],
        status: str,
        now: datetime,
        *,
        submission_id: str | None = None,
    ) -> None:
        with self.transaction() as conn:
            conn.executemany(
                """UPDATE actions SET status = ?, updated_at = ?,
                     submission_id = COALESCE(?, submission_id) WHERE id = ?""",
                [(status, iso(now), submission_id, aid) for aid in action_ids],
            )

    def record_failure(
        self,
        action_id: str,
        error_class: ErrorClass,
        message: str,
        now: datetime,
        retry_at: datetime | None,
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                """UPDATE actions SET status = 'failed', attempts = attempts + 1, error_class = ?,
                     error = ?, retry_at = ?, updated_at = ? WHERE id = ?""",
                (error_class.value, message, iso(retry_at), iso(now), action_id),
            )

    def record_success(self, action_id: str, now: datetime) -> None:
        """Success resets the backoff (attempts) of the action."""
        with self.transaction() as conn:
            conn.execute(
                """UPDATE actions SET status = 'succeeded', attempts = 0, error_class = NULL,
                     error = NULL, retry_at = NULL, updated_at = ? WHERE id = ?""",
                (iso(now), action_id),
            )

    def failures(self) -> dict[str, Failure]:
        """Failed actions not yet cleared by success or an operator retry."""
        out: dict[str, Failure] = {}
        for row in self._conn().execute(
            "SELECT id, error_class, error, retry_at FROM actions WHERE status = 'failed'"
        ):
            out[row["id"]] = Failure(
                action_id=row["id"],
                error_class=ErrorClass(row["error_class"] or "transient"),
                message=row["error"] or "",
                retry_at=parse_time(row["retry_at"]),
            )
        return out

    def attempts(self, action_id: str) -> int:
        row = (
            self._conn()
            .execute("SELECT attempts FROM actions WHERE id = ?", (action_id,))
            .fetchone()
        )
        return int(row[0]) if row else 0

    # ---- tasks ---------------------------------------------------------------------------
    def create_task(self, task: TaskRow, scans: Mapping[str, str], now: datetime) -> None:
        """Persist a batch and its submission id *before* the mover is called."""
        with self.transaction() as conn:
            conn.execute(
                """INSERT INTO tasks(submission_id, task_id, mover, kind, source, target, label,
                       status, bytes_total, files_total, created_at, updated_at)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?)""",
                (
                    task.submission_id,
                    task.task_id,
                    task.mover,
                    task.kind,
                    task.source,
                    task.target,
                    task.label,
                    task.status,
                    task.bytes_total,
                    task.files_total,
                    iso(now),
                    iso(now),
                ),
            )
            conn.executemany(
                "INSERT INTO task_items(submission_id, action_id, scan) VALUES (?,?,?)",
                [(task.submission_id, aid, scans[aid]) for aid in task.action_ids],
            )
            conn.executemany(
                """UPDATE actions SET status = 'submitted', submission_id = ?, updated_at = ?
                   WHERE id = ?""",
                [(task.submission_id, iso(now), aid) for aid in task.action_ids],
            )

    def update_task(self, submission_id: str, now: datetime, **fields: Any) -> None:
        allowed = {
            "task_id",
            "status",
            "bytes_total",
            "bytes_done",
            "files_total",
            "files_done",
            "rate",
            "error",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown task fields: {sorted(unknown)}")
        sets = ", ".join(f"{name} = ?" for name in fields)
        with self.transaction() as conn:
            conn.execute(
                f"UPDATE tasks SET {sets}, updated_at = ? WHERE submission_id = ?",
                (*fields.values(), iso(now), submission_id),
            )

    def task_inactive_since(self, task_id: str) -> datetime | None:
        """Since when the mover has seen task `task_id` INACTIVE (None: it has not, or it ran
        again since)."""
        row = (
            self._conn()
            .execute(
                "SELECT inactive_since FROM tasks WHERE task_id = ? AND inactive_since IS NOT NULL",
                (task_id,),
            )
            .fetchone()
        )
        return parse_time(row[0]) if row is not None else None

    def set_task_inactive_since(self, task_id: str, since: datetime | None) -> bool:
        """Record since when task `task_id` has been INACTIVE (None: it no longer is).

        Returns:
            False when no task row carries `task_id` (nothing was recorded).
        """
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE tasks SET inactive_since = ? WHERE task_id = ?", (iso(since), task_id)
            )
        return cursor.rowcount > 0

    def tasks(self, statuses: Iterable[str] | None = None) -> list[TaskRow]:
        conn = self._conn()
        if statuses is None:
            rows = conn.execute("SELECT * FROM tasks ORDER BY created_at").fetchall()
        else:
            wanted = list(statuses)
            marks = ",".join("?" * len(wanted))
            rows = conn.execute(
                f"SELECT * FROM tasks WHERE status IN ({marks}) ORDER BY created_at", wanted
            ).fetchall()
        items: dict[str, list[str]] = {}
        for row in conn.execute("SELECT submission_id, action_id FROM task_items"):
            items.setdefault(row[0], []).append(row[1])
        return [
            TaskRow(
                submission_id=r["submission_id"],
                task_id=r["task_id"],
                mover=r["mover"],
                kind=r["kind"],
                source=r["source"],
                target=r["target"],
                label=r["label"],
                status=r["status"],
                action_ids=tuple(items.get(r["submission_id"], ())),
                bytes_total=r["bytes_total"],
                bytes_done=r["bytes_done"],
                files_total=r["files_total"],
                files_done=r["files_done"],
                rate=r["rate"],
                error=r["error"],
                created_at=parse_time(r["created_at"]),
            )
            for r in rows
        ]

    def count_submissions(self, action_id: str) -> int:
        """How many tasks were ever created for one action (the chaos test's duplicate check)."""
        row = (
            self._conn()
            .execute("SELECT count(*) FROM task_items WHERE action_id = ?", (action_id,))
            .fetchone()
        )
        return int(row[0])

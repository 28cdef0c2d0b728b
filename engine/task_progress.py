"""Per-scan progress of a task: how many of each scan's files and bytes a mover has done.

A task carries many scans; its totals (`tasks.bytes_done`) say nothing about any one of them. A
mover that keeps per-file records (the local mover) reports them per scan (`ItemProgress`), and
they are kept on the task's items, so the TUI shows each scan's own progress. A mover that cannot
tell (Globus lists a task's transferred files only once it has completed) leaves them unknown.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from engine.state import StateStore
from engine.storage.base import ItemProgress


@dataclass(frozen=True, slots=True)
class ScanProgress:
    """One scan's share of an open task."""

    action_id: str
    scan: str
    files_done: int | None  # None: the mover does not report per scan
    bytes_done: int | None


def record_item_progress(
    store: StateStore, submission_id: str, progress: Iterable[ItemProgress]
) -> None:
    """Keep what a poll said about each scan of one task (the executor calls it per poll)."""
    rows = [(p.files_done, p.bytes_done, submission_id, p.action_id) for p in progress]
    if not rows:
        return
    with store.transaction() as conn:
        conn.executemany(
            """UPDATE task_items SET files_done = ?, bytes_done = ?
               WHERE submission_id = ? AND action_id = ?""",
            rows,
        )


def open_item_progress(conn: sqlite3.Connection) -> dict[str, ScanProgress]:
    """Action id → its scan's progress, for every item of a task still preparing or running.

    A store the service has not migrated yet (the TUI never migrates) has no per-scan columns:
    every scan's progress is then unknown.
    """
    try:
        rows = conn.execute(
            """SELECT ti.action_id, ti.scan, ti.files_done, ti.bytes_done FROM task_items ti
               JOIN tasks t ON t.submission_id = ti.submission_id
               WHERE t.status IN ('preparing', 'active')"""
        ).fetchall()
    except sqlite3.OperationalError:
        rows = conn.execute(
            """SELECT ti.action_id, ti.scan, NULL, NULL FROM task_items ti
               JOIN tasks t ON t.submission_id = ti.submission_id
               WHERE t.status IN ('preparing', 'active')"""
        ).fetchall()
    return {r[0]: ScanProgress(r[0], r[1], r[2], r[3]) for r in rows}


def task_scans(conn: sqlite3.Connection, submission_id: str) -> list[ScanProgress]:
    """The scans of one task, with their progress where the mover reported it."""
    try:
        rows = conn.execute(
            """SELECT action_id, scan, files_done, bytes_done FROM task_items
               WHERE submission_id = ? ORDER BY scan""",
            (submission_id,),
        ).fetchall()
    except sqlite3.OperationalError:
        rows = conn.execute(
            """SELECT action_id, scan, NULL, NULL FROM task_items
               WHERE submission_id = ? ORDER BY scan""",
            (submission_id,),
        ).fetchall()
    return [ScanProgress(r[0], r[1], r[2], r[3]) for r in rows]

"""Tape bundles in the state store (migration 14; engine/storage/tape.py uses them).

A bundle row is written *before* its job is submitted (deterministic bundle and job name), its
job id right after, its outcome when the job is judged. A verified bundle's scans are rows of
`tape_members`, each with the evidence detail (bundle, members, CRC check, job id, time). A
read-only store at an older schema answers as if there were no bundles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.store.connection import StoreBase, iso, parse_time


@dataclass(frozen=True, slots=True)
class BundleRow:
    endpoint: str
    bundle: str
    group: str
    part: int
    submission_id: str
    job_name: str
    job_id: str | None
    purpose: str  # "archive" | "restore"
    state: str  # "submitting" | "submitted" | "verified" | "failed" | "broken" | "done"
    error: str | None
    archive_size: int | None
    manifest: dict[str, Any]
    created_at: datetime


def _row(r: Any) -> BundleRow:
    created = parse_time(r["created_at"])
    assert created is not None
    return BundleRow(
        r["endpoint"],
        r["bundle"],
        r["grp"],
        r["part"],
        r["submission_id"],
        r["job_name"],
        r["job_id"],
        r["purpose"],
        r["state"],
        r["error"],
        r["archive_size"],
        json.loads(r["manifest"]),
        created,
    )


def _ready(store: StoreBase) -> bool:
    return store.has_table("tape_bundles")


def add_bundle(store: StoreBase, row: BundleRow) -> None:
    with store.transaction() as conn:
        conn.execute(
            """INSERT OR IGNORE INTO tape_bundles(endpoint, bundle, grp, part, submission_id,
                 job_name, job_id, purpose, state, manifest, created_at)
               VALUES (?,?,?,?,?,?,?,?,?,?,?)""",
            (
                row.endpoint,
                row.bundle,
                row.group,
                row.part,
                row.submission_id,
                row.job_name,
                row.job_id,
                row.purpose,
                row.state,
                json.dumps(row.manifest),
                iso(row.created_at),
            ),
        )


def update_bundle(store: StoreBase, endpoint: str, bundle: str, **fields: Any) -> None:
    allowed = {"job_id", "state", "error", "archive_size", "finished_at"}
    assert set(fields) <= allowed, fields
    sets = ", ".join(f"{k} = ?" for k in fields)
    values = [iso(v) if isinstance(v, datetime) else v for v in fields.values()]
    with store.transaction() as conn:
        conn.execute(
            f"UPDATE tape_bundles SET {sets} WHERE endpoint = ? AND bundle = ?",
            (*values, endpoint, bundle),
        )


def bundles(
    store: StoreBase,
    endpoint: str | None = None,
    *,
    submission_id: str | None = None,
    states: tuple[str, ...] | None = None,
) -> list[BundleRow]:
    if not _ready(store):
        return []
    sql, args = "SELECT * FROM tape_bundles WHERE 1=1", list[str]()
    if endpoint is not None:
        sql, args = sql + " AND endpoint = ?", [*args, endpoint]
    if submission_id is not None:
        sql, args = sql + " AND submission_id = ?", [*args, submission_id]
    if states is not None:
        sql += f" AND state IN ({','.join('?' * len(states))})"
        args += list(states)
    return [_row(r) for r in store._conn().execute(sql + " ORDER BY bundle", args)]


def next_part(store: StoreBase, endpoint: str, group: str) -> int:
    row = (
        store._conn()
        .execute(
            "SELECT MAX(part) FROM tape_bundles WHERE endpoint = ? AND grp = ?", (endpoint, group)
        )
        .fetchone()
    )
    return int(row[0] or 0) + 1


def add_members(
    store: StoreBase, endpoint: str, bundle: str, members: list[tuple[str, str, dict[str, Any]]]
) -> None:
    """Record the scans a verified bundle holds: (scan, checksum, evidence detail)."""
    with store.transaction() as conn:
        conn.executemany(
            """INSERT OR REPLACE INTO tape_members(endpoint, scan, bundle, checksum, evidence)
               VALUES (?,?,?,?,?)""",
            [(endpoint, s, bundle, c, json.dumps(e)) for s, c, e in members],
        )
        conn.executemany(
            "DELETE FROM tape_waits WHERE endpoint = ? AND scan = ?",
            [(endpoint, s) for s, _, _ in members],
        )


def held_scans(
    store: StoreBase, endpoint: str
) -> dict[str, list[tuple[BundleRow, str, dict[str, Any]]]]:
    """scan → [(verified bundle, checksum, evidence detail)], newest bundle last."""
    if not _ready(store):
        return {}
    verified = {b.bundle: b for b in bundles(store, endpoint, states=("verified",))}
    out: dict[str, list[tuple[BundleRow, str, dict[str, Any]]]] = {}
    for r in store._conn().execute(
        "SELECT scan, bundle, checksum, evidence FROM tape_members WHERE endpoint = ?", (endpoint,)
    ):
        row = verified.get(r["bundle"])
        if row is not None:
            out.setdefault(r["scan"], []).append((row, r["checksum"], json.loads(r["evidence"])))
    for entries in out.values():
        entries.sort(key=lambda e: (e[0].created_at, e[0].bundle))
    return out


def waits(store: StoreBase, endpoint: str) -> dict[str, datetime]:
    if not _ready(store):
        return {}
    out = {}
    for r in store._conn().execute(
        "SELECT scan, since FROM tape_waits WHERE endpoint = ?", (endpoint,)
    ):
        since = parse_time(r["since"])
        if since is not None:
            out[r["scan"]] = since
    return out


def start_waiting(store: StoreBase, endpoint: str, scans: list[str], now: datetime) -> None:
    if store.readonly or not scans:
        return
    with store.transaction() as conn:
        conn.executemany(
            "INSERT OR IGNORE INTO tape_waits(endpoint, scan, since) VALUES (?,?,?)",
            [(endpoint, s, iso(now)) for s in scans],
        )


def request_restore(store: StoreBase, scan: str, target: str, by: str, now: datetime) -> None:
    with store.transaction() as conn:
        conn.execute(
            """INSERT OR REPLACE INTO tape_restores(scan, target, requested_by, requested_at)
               VALUES (?,?,?,?)""",
            (scan, target, by, iso(now)),
        )


def restores(store: StoreBase) -> list[tuple[str, str, str]]:
    if not store.has_table("tape_restores"):
        return []
    return [
        (r["scan"], r["target"], r["requested_by"])
        for r in store._conn().execute("SELECT * FROM tape_restores ORDER BY scan")
    ]


def restore_done(store: StoreBase, scan: str, target: str) -> None:
    with store.transaction() as conn:
        conn.execute("DELETE FROM tape_restores WHERE scan = ? AND target = ?", (scan, target))

# Over 400 lines: split pending: issue 15 item 1 (a store package, one module per aggregate).
"""The SQLite state store: what the engine knows, did and was told.

WAL journal, a busy timeout on every connection and `BEGIN IMMEDIATE` for writes, so the service
(the one writer of engine tables) and the TUI (readers, and writer of operator decisions only)
share the file safely. The schema is versioned with `PRAGMA user_version` and migrated forward
on open; a store written by a newer bl931 is refused rather than misread.

Tables:
- scans, replicas (last observation), evidence (why a replica is believed verified);
- actions (each planned action's lifecycle), tasks + task_items (batches submitted to a mover,
  keyed by the submission id that is persisted *before* the remote call), events (the audit log);
- decisions (with the view `approvals`), holds, retries (operator decisions, written by the
  TUI or CLI; engine/decisions.py);
- deletions (receipts, one per removal; also the absences the engine caused itself),
  endpoints (health), heartbeat (the service's liveness, read by the TUI);
- blocked, catalog_entries, catalog_status (what the last pass found: `engine.pass_findings`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.model import ActionKind, ErrorClass, Evidence, Failure, Hold, Level, Scan, ScanFile

log = logging.getLogger(__name__)

MIGRATIONS: tuple[str, ...] = (
    # 1: initial schema
    """
    CREATE TABLE scans(
        id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        checksum_algorithm TEXT NOT NULL,
        checksum TEXT NOT NULL,
        is_directory INTEGER NOT NULL,
        acquired_at TEXT NOT NULL,
        size INTEGER NOT NULL,
        file_count INTEGER NOT NULL,
        files TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE replicas(
        scan TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        level INTEGER NOT NULL,
        size INTEGER NOT NULL,
        files INTEGER NOT NULL,
        signature TEXT NOT NULL,
        observed_at TEXT NOT NULL,
        PRIMARY KEY(scan, endpoint)
    ) WITHOUT ROWID;
    CREATE INDEX replicas_endpoint ON replicas(endpoint);
    CREATE TABLE evidence(
        scan TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        level INTEGER NOT NULL,
        algorithm TEXT,
        value TEXT,
        task_id TEXT,
        signature TEXT NOT NULL,
        how TEXT NOT NULL,
        verified_at TEXT NOT NULL,
        PRIMARY KEY(scan, endpoint)
    ) WITHOUT ROWID;
    CREATE TABLE actions(
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        scan TEXT NOT NULL,
        source TEXT,
        target TEXT,
        bytes INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        requires_approval INTEGER NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT '',
        submission_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        error_class TEXT,
        error TEXT,
        retry_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX actions_status ON actions(status);
    CREATE INDEX actions_scan ON actions(scan);
    CREATE TABLE tasks(
        submission_id TEXT PRIMARY KEY,
        task_id TEXT,
        mover TEXT NOT NULL,
        kind TEXT NOT NULL,
        source TEXT,
        target TEXT NOT NULL,
        label TEXT NOT NULL,
        status TEXT NOT NULL,
        bytes_total INTEGER NOT NULL DEFAULT 0,
        bytes_done INTEGER NOT NULL DEFAULT 0,
        files_total INTEGER NOT NULL DEFAULT 0,
        files_done INTEGER NOT NULL DEFAULT 0,
        rate REAL NOT NULL DEFAULT 0,
        error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX tasks_status ON tasks(status);
    CREATE TABLE task_items(
        submission_id TEXT NOT NULL,
        action_id TEXT NOT NULL,
        scan TEXT NOT NULL,
        PRIMARY KEY(submission_id, action_id)
    ) WITHOUT ROWID;
    CREATE INDEX task_items_action ON task_items(action_id);
    CREATE TABLE events(
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        level TEXT NOT NULL DEFAULT 'info',
        kind TEXT NOT NULL,
        scan TEXT,
        action_id TEXT,
        message TEXT NOT NULL,
        data TEXT
    );
    CREATE INDEX events_scan ON events(scan);
    CREATE INDEX events_action ON events(action_id);
    CREATE TABLE approvals(
        action_id TEXT PRIMARY KEY,
        decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
        decided_by TEXT NOT NULL,
        decided_at TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE holds(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        scan TEXT NOT NULL,
        reason TEXT NOT NULL,
        placed_by TEXT NOT NULL,
        placed_at TEXT NOT NULL,
        expires_at TEXT,
        lifted_by TEXT,
        lifted_at TEXT
    );
    CREATE INDEX holds_scan ON holds(scan);
    CREATE TABLE retries(
        action_id TEXT PRIMARY KEY,
        requested_by TEXT NOT NULL,
        requested_at TEXT NOT NULL
    );
    CREATE TABLE deletions(
        scan TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        action_id TEXT NOT NULL,
        task_id TEXT,
        deleted_at TEXT NOT NULL,
        receipt TEXT NOT NULL,
        PRIMARY KEY(scan, endpoint, action_id)
    );
    CREATE TABLE endpoints(
        name TEXT PRIMARY KEY,
        last_ok_at TEXT,
        last_error TEXT,
        last_error_at TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE heartbeat(
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pid INTEGER,
        host TEXT,
        mode TEXT,
        beat_at TEXT,
        pass_started_at TEXT,
        pass_finished_at TEXT,
        last_ok_pass_at TEXT,
        summary TEXT
    );
    """,
    # 2: typed alerts with acknowledgements; endpoint identities
    """
    CREATE TABLE alerts(
        id TEXT PRIMARY KEY,
        code TEXT NOT NULL,
        endpoint TEXT,
        scan TEXT,
        effect TEXT NOT NULL,
        message TEXT NOT NULL,
        since TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        cleared_at TEXT,
        acknowledged_by TEXT,
        acknowledged_at TEXT,
        acknowledged_why TEXT
    );
    CREATE TABLE endpoint_identity(
        endpoint TEXT PRIMARY KEY,
        marker_id TEXT NOT NULL,
        root TEXT NOT NULL,
        device INTEGER,
        initialised_by TEXT NOT NULL,
        initialised_at TEXT NOT NULL
    );
    """,
    # 3: the pid each scan was registered with in the catalog (reused forever), seeded from the
    # register events that recorded it
    """
    CREATE TABLE catalog_pids(
        scan TEXT PRIMARY KEY,
        pid TEXT NOT NULL,
        pid_prefix TEXT,
        beamline TEXT,
        creation_location TEXT,
        recorded_at TEXT NOT NULL
    );
    INSERT OR IGNORE INTO catalog_pids(scan, pid, recorded_at)
        SELECT scan, json_extract(data, '$.pid'), at FROM events
        WHERE kind = 'catalog.register' AND scan IS NOT NULL
          AND json_valid(data) AND json_extract(data, '$.pid') IS NOT NULL
        ORDER BY seq;
    """,
    # 4: evidence belongs to a storage identity (engine/evidence_identity.py)
    """
    ALTER TABLE evidence ADD COLUMN identity TEXT;
    ALTER TABLE tasks ADD COLUMN target_identity TEXT;
    CREATE TABLE endpoint_storage(
        endpoint TEXT PRIMARY KEY,
        identity TEXT NOT NULL,
        since TEXT NOT NULL
    );
    """,
    # 5: operator decisions as an append-only log whose approvals are spent by the submission
    # that used them (engine/decisions.py), `approvals` now the view of the decisions in force;
    # receipts append-only, one row per removal (keyed by their own id and the submission).
    # An approval a recorded task carried after it was given counts as spent by the latest.
    """
    CREATE TABLE decisions(
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        action_id TEXT NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
        decided_by TEXT NOT NULL,
        decided_at TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        superseded INTEGER NOT NULL DEFAULT 0,
        spent_by TEXT,
        spent_at TEXT
    );
    CREATE INDEX decisions_action ON decisions(action_id);
    CREATE INDEX decisions_spent ON decisions(spent_by) WHERE spent_by IS NOT NULL;
    CREATE INDEX decisions_standing ON decisions(action_id)
        WHERE superseded = 0 AND spent_by IS NULL;
    INSERT INTO decisions(action_id, decision, decided_by, decided_at, note, spent_by, spent_at)
    SELECT action_id, decision, decided_by, decided_at, note,
           CASE WHEN decision = 'approve' THEN (
               SELECT t.submission_id FROM task_items i
               JOIN tasks t ON t.submission_id = i.submission_id
               WHERE i.action_id = ap.action_id AND t.created_at >= ap.decided_at
               ORDER BY t.created_at DESC, t.rowid DESC LIMIT 1) END,
           CASE WHEN decision = 'approve' THEN (
               SELECT t.created_at FROM task_items i
               JOIN tasks t ON t.submission_id = i.submission_id
               WHERE i.action_id = ap.action_id AND t.created_at >= ap.decided_at
               ORDER BY t.created_at DESC, t.rowid DESC LIMIT 1) END
    FROM approvals ap ORDER BY decided_at;
    DROP TABLE approvals;
    CREATE VIEW approvals AS
        SELECT action_id, decision, decided_by, decided_at, note, seq, spent_by, spent_at
        FROM decisions WHERE superseded = 0 AND spent_by IS NULL
        UNION ALL
        SELECT d.action_id, d.decision, d.decided_by, d.decided_at, d.note, d.seq, d.spent_by,
               d.spent_at
        FROM tasks t
        JOIN decisions d ON d.spent_by = t.submission_id AND d.superseded = 0
        JOIN actions a ON a.id = d.action_id AND a.submission_id = t.submission_id
                      AND a.status = 'submitted'
        WHERE t.status IN ('preparing', 'active');
    CREATE TABLE receipts(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        scan TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        action_id TEXT NOT NULL,
        task_id TEXT,
        submission_id TEXT,
        deleted_at TEXT NOT NULL,
        receipt TEXT NOT NULL
    );
    INSERT INTO receipts(scan, endpoint, action_id, task_id, submission_id, deleted_at, receipt)
    SELECT d.scan, d.endpoint, d.action_id, d.task_id,
           (SELECT t.submission_id FROM tasks t WHERE t.task_id = d.task_id LIMIT 1),
           d.deleted_at, d.receipt
    FROM deletions d ORDER BY d.deleted_at, d.scan, d.endpoint;
    DROP TABLE deletions;
    ALTER TABLE receipts RENAME TO deletions;
    CREATE INDEX deletions_scan ON deletions(scan, endpoint);
    CREATE INDEX deletions_submission ON deletions(submission_id, action_id);
    """,
    # 6: the local catalog's identity; which scans each catalog registered (from past events:
    # catalog '' stands for "the catalog configured then", claimed by the first pass)
    """
    CREATE TABLE catalog_identity(
        id INTEGER PRIMARY KEY CHECK (id = 1),
        catalog_id TEXT NOT NULL,
        path TEXT NOT NULL,
        initialised_by TEXT NOT NULL,
        initialised_at TEXT NOT NULL
    );
    CREATE TABLE catalog_registrations(
        catalog TEXT NOT NULL,
        scan TEXT NOT NULL,
        pid TEXT,
        registered_at TEXT NOT NULL,
        PRIMARY KEY(catalog, scan)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO catalog_registrations(catalog, scan, registered_at)
        SELECT '', scan, MIN(at) FROM events
        WHERE kind = 'catalog.register' AND scan IS NOT NULL
        GROUP BY scan;
    """,
    # 7: what each pass held back and why, the catalog as last read (engine.pass_findings);
    # per-scan progress of a task, from the mover's per-file records (engine.task_progress)
    """
    CREATE TABLE blocked(
        scan TEXT NOT NULL,
        kind TEXT NOT NULL,
        endpoint TEXT NOT NULL DEFAULT '',
        reason_code TEXT NOT NULL,
        reason TEXT NOT NULL,
        since TEXT NOT NULL,
        PRIMARY KEY(scan, kind, endpoint, reason_code)
    ) WITHOUT ROWID;
    CREATE TABLE catalog_entries(
        scan TEXT PRIMARY KEY,
        locations TEXT NOT NULL,
        seen_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE catalog_status(
        id INTEGER PRIMARY KEY CHECK (id = 1),
        read_at TEXT NOT NULL,
        ok INTEGER NOT NULL,
        error TEXT,
        last_ok_at TEXT
    );
    ALTER TABLE task_items ADD COLUMN files_done INTEGER;
    ALTER TABLE task_items ADD COLUMN bytes_done INTEGER;
    ALTER TABLE heartbeat ADD COLUMN stopped_at TEXT;
    """,
    # 8: what the reconciler watches on each open remote task (engine.task_watch): a fault
    # the task keeps retrying and since when, when it last made progress, and why bl931
    # cancelled it
    """
    CREATE TABLE task_watch(
        submission_id TEXT PRIMARY KEY,
        fault TEXT,
        fault_class TEXT,
        fault_message TEXT,
        fault_since TEXT,
        progress_at TEXT NOT NULL,
        files_done INTEGER NOT NULL DEFAULT 0,
        bytes_done INTEGER NOT NULL DEFAULT 0,
        cancelled_at TEXT,
        cancel_reason TEXT,
        cancel_class TEXT
    ) WITHOUT ROWID;
    """,
    # 9: the version of each scan as a task carried it (engine.submitted): an interrupted delete
    # or replace is settled and receipted for what was submitted, not the scan's current record
    """
    ALTER TABLE task_items ADD COLUMN submitted TEXT;
    """,
    # 10: the waits Globus asked for with Retry-After (engine.retry_holds), kept so that a new
    # process (`--reconcile --once`, a restart) honours them too
    """
    CREATE TABLE retry_holds(
        key TEXT PRIMARY KEY,
        since TEXT NOT NULL,
        until TEXT NOT NULL,
        what TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)

_LEVELS = tuple(Level)  # index = stored integer; cheaper than calling the enum per row

# Action statuses. `planned` rows are the current plan's actions (rewritten each pass);
# `submitted` are in flight; `succeeded`/`failed` are history; `failed` with a retry_at is retried.
PLANNED, SUBMITTED, SUCCEEDED, FAILED = "planned", "submitted", "succeeded", "failed"


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _file_entry(f: ScanFile) -> list[object]:
    entry: list[object] = [f.path, f.size, f.mtime, f.checksum]
    if f.inode is not None and f.ctime_ns is not None:
        entry += [f.inode, f.ctime_ns]
    return entry


def _scan_from_row(row: sqlite3.Row) -> Scan:
    # [path, size, mtime, checksum] plus, when known, [inode, ctime_ns]: rows written before the
    # file identity was kept have four entries and read back without one (re-hashed once).
    files = tuple(ScanFile(*entry[:6]) for entry in json.loads(row["files"]))
    return Scan(
        id=row["id"],
        files=files,
        acquired_at=datetime.fromisoformat(row["acquired_at"]),
        checksum_algorithm=row["checksum_algorithm"],
        checksum=row["checksum"],
        version=row["version"],
        is_directory=bool(row["is_directory"]),
    )


@dataclass(frozen=True, slots=True)
class ReplicaRow:
    level: Level
    size: int
    files: int
    signature: str
    observed_at: datetime


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
class ForeignFiles:
    """Files a prune found beside a scan's verified files at one endpoint and left in place.

    They were never copied anywhere by the engine, so they are not a replica of the scan (it
    counts as pruned there) and are reported to a person once.
    """

    scan: str
    endpoint: str
    paths: tuple[str, ...]  # relative to the endpoint root; a folder ends with "/"
    action_id: str  # the delete that left them
    recorded_at: datetime


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


class StateStore:
    """One SQLite file; a connection per thread."""

    def __init__(self, path: Path, *, readonly: bool = False, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.timeout = timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # The writable store is the one writer of replicas and evidence (the owner lock), so it
        # keeps what it last read and drops it on its own writes: a steady pass over 100k scans
        # then parses nothing. A read-only store (the TUI, an audit) always reads afresh.
        self._cache_lock = threading.Lock()
        self._replicas_cache: dict[str, dict[str, ReplicaRow]] | None = None
        self._evidence_cache: dict[str, dict[str, Evidence]] | None = None
        self._generation = 0  # bumped by every write: a read that raced one is not kept
        if readonly:
            if not self.path.exists():
                raise ConfigError("state store does not exist yet", path=str(self.path))
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    # ---- connections ---------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.readonly:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                conn = sqlite3.connect(
                    uri,
                    uri=True,
                    timeout=self.timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
            else:
                conn = sqlite3.connect(
                    self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
                )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            if not self.readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, for read models that run their own SELECTs (the TUI).

        Writes must go through the store's methods: they keep its caches and events right.
        """
        return self._conn()

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (`BEGIN IMMEDIATE`: takes the write lock up front)."""
        conn = self._conn()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _migrate(self) -> None:
        conn = self._conn()
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current > SCHEMA_VERSION:
            raise ConfigError(
                f"state store has schema {current}, newer than this bl931 understands "
                f"({SCHEMA_VERSION}); upgrade bl931",
                path=str(self.path),
            )
        # A store created by this open (no schema yet): endpoint markers may be written for it
        # without an operator's step, since no earlier deployment can be mistaken for it.
        self.created_new = current == 0 and not self.readonly
        if current == SCHEMA_VERSION or self.readonly:
            return
        for version in range(current, SCHEMA_VERSION):
            try:
                conn.executescript(
                    "BEGIN IMMEDIATE;"
                    + MIGRATIONS[version]
                    + f";PRAGMA user_version = {version + 1}; COMMIT;"
                )
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            log.debug("state store migrated to schema %d", version + 1)

    def has_table(self, name: str) -> bool:
        """Whether the store has this table (a read-only store is never migrated forward)."""
        row = (
            self._conn()
            .execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
            .fetchone()
        )
        return row is not None

    def integrity_check(self) -> str:
        return str(self._conn().execute("PRAGMA integrity_check").fetchone()[0])

    # ---- scans ---------------------------------------------------------------------------
    def load_scans(self) -> dict[str, Scan]:
        rows = self._conn().execute("SELECT * FROM scans ORDER BY id").fetchall()
        return {row["id"]: _scan_from_row(row) for row in rows}

    def get_scan(self, scan_id: str) -> Scan | None:
        row = self._conn().execute("SELECT * FROM scans WHERE id = ?", (scan_id,)).fetchone()
        return _scan_from_row(row) if row else None

    def count_scans(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM scans").fetchone()[0])

    def upsert_scans(self, scans: Iterable[Scan], now: datetime) -> int:
        rows = [
            (
                s.id,
                s.version,
                s.checksum_algorithm,
                s.checksum,
                int(s.is_directory),
                iso(s.acquired_at),
                s.size,
                s.file_count,
                json.dumps([_file_entry(f) for f in s.files], ensure_ascii=False),
                iso(now),
                iso(now),
            )
            for s in scans
        ]
        if not rows:
            return 0
        with self.transaction() as conn:
            conn.executemany(
                """INSERT INTO scans VALUES (?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT(id) DO UPDATE SET version=excluded.version,
                     checksum_algorithm=excluded.checksum_algorithm, checksum=excluded.checksum,
                     is_directory=excluded.is_directory, acquired_at=excluded.acquired_at,
                     size=excluded.size, file_count=excluded.file_count, files=excluded.files,
                     updated_at=excluded.updated_at""",
                rows,
            )
        return len(rows)

    # ---- replicas and evidence -----------------------------------------------------------
    def _forget(self, *, replicas: bool = False, evidence: bool = False) -> None:
        with self._cache_lock:
            self._generation += 1
            if replicas:
                self._replicas_cache = None
            if evidence:
                self._evidence_cache = None

    def load_replicas(self) -> dict[str, dict[str, ReplicaRow]]:
        """endpoint → scan → last observed replica (a copy the caller may change)."""
        with self._cache_lock:
            cached, generation = self._replicas_cache, self._generation
        if cached is None:
            cached = self._read_replicas()
            if not self.readonly:
                with self._cache_lock:
                    if generation == self._generation:
                        self._replicas_cache = cached
        return {endpoint: dict(rows) for endpoint, rows in cached.items()}

    def _read_replicas(self) -> dict[str, dict[str, ReplicaRow]]:
        out: dict[str, dict[str, ReplicaRow]] = {}
        levels = _LEVELS
        parse = datetime.fromisoformat
        cursor = self._conn().cursor()
        cursor.row_factory = None  # plain tuples: this runs over every replica in every pass
        cursor.execute(
            "SELECT endpoint, scan, level, size, files, signature, observed_at FROM replicas"
        )
        for endpoint, scan, level, size, files, signature, observed_at in cursor:
            rows = out.get(endpoint)
            if rows is None:
                rows = out[endpoint] = {}
            rows[scan] = ReplicaRow(levels[level], size, files, signature, parse(observed_at))
        return out

    def replace_replicas(
        self,
        endpoint: str,
        upserts: Mapping[str, ReplicaRow],
        removed: Iterable[str],
    ) -> None:
        """Record one endpoint's observation: changed rows written, vanished rows dropped."""
        removed = list(removed)
        if not upserts and not removed:
            return
        self._forget(replicas=True)
        with self.transaction() as conn:
            conn.executemany(
                """INSERT INTO replicas VALUES (?,?,?,?,?,?,?)
                   ON CONFLICT(scan, endpoint) DO UPDATE SET level=excluded.level,
                     size=excluded.size, files=excluded.files, signature=excluded.signature,
                     observed_at=excluded.observed_at""",
                [
                    (scan, endpoint, int(r.level), r.size, r.files, r.signature, iso(r.observed_at))
                    for scan, r in upserts.items()
                ],
            )
            conn.executemany(
                "DELETE FROM replicas WHERE scan = ? AND endpoint = ?",
                [(scan, endpoint) for scan in removed],
            )
        self._forget(replicas=True)  # and again after: a reader may have cached in between

    def load_evidence(self) -> dict[str, dict[str, Evidence]]:
        """endpoint → scan → evidence (a copy the caller may change)."""
        with self._cache_lock:
            cached, generation = self._evidence_cache, self._generation
        if cached is None:
            cached = self._read_evidence()
            if not self.readonly:
                with self._cache_lock:
                    if generation == self._generation:
                        self._evidence_cache = cached
        return {endpoint: dict(rows) for endpoint, rows in cached.items()}

    def _read_evidence(self) -> dict[str, dict[str, Evidence]]:
        out: dict[str, dict[str, Evidence]] = {}
        levels = _LEVELS
        parse = datetime.fromisoformat
        cursor = self._conn().cursor()
        cursor.row_factory = None
        # A read-only store still at a schema from before identities has no such column.
        identity = "identity" if self._has_column("evidence", "identity") else "NULL"
        cursor.execute(
            f"""SELECT endpoint, scan, level, algorithm, value, task_id, verified_at, signature,
                      how, {identity} FROM evidence"""
        )
        for row in cursor:
            endpoint, scan, level, algorithm, value, task_id, verified, signature, how, ident = row
            rows = out.get(endpoint)
            if rows is None:
                rows = out[endpoint] = {}
            rows[scan] = Evidence(
                level=levels[level],
                algorithm=algorithm,
                value=value,
                task_id=task_id,
                verified_at=parse(verified),
                signature=signature,
                how=how,
                identity=ident,
            )
        return out

    def _has_column(self, table: str, column: str) -> bool:
        rows = self._conn().execute(f"PRAGMA table_info({table})").fetchall()
        return any(row[1] == column for row in rows)

    def record_evidence(self, scan: str, endpoint: str, evidence: Evidence) -> None:
        self._forget(evidence=True)
        with self.transaction() as conn:
            conn.execute(
                """INSERT INTO evidence(scan, endpoint, level, algorithm, value, task_id,
                     signature, how, verified_at, identity) VALUES (?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT(scan, endpoint) DO UPDATE SET level=excluded.level,
                     algorithm=excluded.algorithm, value=excluded.value, task_id=excluded.task_id,
                     signature=excluded.signature, how=excluded.how,
                     verified_at=excluded.verified_at, identity=excluded.identity""",
                (
                    scan,
                    endpoint,
                    int(evidence.level),
                    evidence.algorithm,
                    evidence.value,
                    evidence.task_id,
                    evidence.signature,
                    evidence.how,
                    iso(evidence.verified_at),
                    evidence.identity,
                ),
            )
        self._forget(evidence=True)  # and again after: a reader may have cached in between

    def evidence_rewritten(self) -> None:
        """Forget the cached evidence: call before and after another module rewrites evidence
        rows in its own transaction (`engine.evidence_identity` re-keys them)."""
        self._forget(evidence=True)

    def drop_evidence(self, scan: str, endpoint: str) -> None:
        self._forget(evidence=True)
        with self.transaction() as conn:
            conn.execute("DELETE FROM evidence WHERE scan = ? AND endpoint = ?", (scan, endpoint))
        self._forget(evidence=True)  # and again after: a reader may have cached in between

    # ---- actions -------------------------------------------------------------------------

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

    # ---- events --------------------------------------------------------------------------
    def add_events(
        self,
        events: Iterable[
            tuple[datetime, str, str, str | None, str | None, str, dict[str, Any] | None]
        ],
    ) -> None:
        """Append (at, level, kind, scan, action_id, message, data) rows to the audit log."""
        rows = [
            (iso(at), level, kind, scan, aid, message, json.dumps(data) if data else None)
            for at, level, kind, scan, aid, message, data in events
        ]
        if rows:
            with self.transaction() as conn:
                conn.executemany(
                    """INSERT INTO events(at, level, kind, scan, action_id, message, data)
                       VALUES (?,?,?,?,?,?,?)""",
                    rows,
                )

    def event(
        self,
        at: datetime,
        kind: str,
        message: str,
        *,
        scan: str | None = None,
        action_id: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        self.add_events([(at, level, kind, scan, action_id, message, data)])

    def events(
        self,
        *,
        scan: str | None = None,
        action_id: str | None = None,
        after_seq: int = 0,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        clauses, params = ["seq > ?"], [after_seq]
        if scan is not None:
            clauses.append("scan = ?")
            params.append(scan)  # type: ignore[arg-type]
        if action_id is not None:
            clauses.append("action_id = ?")
            params.append(action_id)  # type: ignore[arg-type]
        rows = self._conn().execute(
            f"SELECT * FROM events WHERE {' AND '.join(clauses)} ORDER BY seq DESC LIMIT ?",
            (*params, limit),
        )
        out = []
        for row in rows:
            item = dict(row)
            item["data"] = json.loads(item["data"]) if item["data"] else None
            out.append(item)
        out.reverse()
        return out

    def last_event_seq(self) -> int:
        """The newest event's sequence number (0 when none): a pass's starting mark."""
        row = self._conn().execute("SELECT max(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def action_events_since(self, after_seq: int) -> list[tuple[str, str, str | None, str | None]]:
        """(event kind, action kind, action target, error class) of action events after a mark.

        The metrics count action outcomes from the audit log, so they agree with it by
        construction instead of being tallied separately along every executor path.
        """
        rows = self._conn().execute(
            """SELECT e.kind, a.kind, a.target, e.data FROM events e
               JOIN actions a ON a.id = e.action_id
               WHERE e.seq > ? AND e.action_id IS NOT NULL""",
            (after_seq,),
        )
        out: list[tuple[str, str, str | None, str | None]] = []
        for event_kind, action_kind, target, data in rows:
            error_class = None
            if data and event_kind == "action.failed":
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    error_class = json.loads(data).get("class")
            out.append((event_kind, action_kind, target, error_class))
        return out

    # ---- operator decisions (the log and its rules: engine/decisions.py) -------------------
    def approve(
        self,
        action_ids: Iterable[str],
        by: str,
        now: datetime,
        note: str = "",
        *,
        scans: Mapping[str, str] | None = None,
    ) -> None:
        from engine.decisions import APPROVE, DecisionLog

        DecisionLog(self).record(action_ids, APPROVE, by, now, note, scans=scans)

    def reject(
        self,
        action_ids: Iterable[str],
        by: str,
        now: datetime,
        note: str = "",
        *,
        scans: Mapping[str, str] | None = None,
    ) -> None:
        from engine.decisions import REJECT, DecisionLog

        DecisionLog(self).record(action_ids, REJECT, by, now, note, scans=scans)

    def decisions(self) -> dict[str, tuple[str, str, datetime]]:
        """action id → (decision, by, when) of the decision in force (a spent approval is not)."""
        from engine.decisions import DecisionLog

        return {aid: (d.decision, d.by, d.at) for aid, d in DecisionLog(self).in_force().items()}

    def place_hold(
        self, scan: str, reason: str, by: str, now: datetime, expires_at: datetime | None = None
    ) -> int:
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO holds(scan, reason, placed_by, placed_at, expires_at) VALUES (?,?,?,?,?)",
                (scan, reason, by, iso(now), iso(expires_at)),
            )
            conn.execute(
                """INSERT INTO events(at, level, kind, scan, message) VALUES (?, 'info',
                   'hold.placed', ?, ?)""",
                (iso(now), scan, f"hold placed by {by}: {reason}"),
            )
            return int(cur.lastrowid or 0)

    def lift_hold(self, scan: str, by: str, now: datetime) -> int:
        with self.transaction() as conn:
            cur = conn.execute(
                """UPDATE holds SET lifted_by = ?, lifted_at = ?
                   WHERE scan = ? AND lifted_at IS NULL""",
                (by, iso(now), scan),
            )
            if cur.rowcount:
                conn.execute(
                    """INSERT INTO events(at, level, kind, scan, message) VALUES (?, 'info',
                       'hold.lifted', ?, ?)""",
                    (iso(now), scan, f"hold lifted by {by}"),
                )
            return int(cur.rowcount)

    def active_holds(self, now: datetime) -> dict[str, Hold]:
        out: dict[str, Hold] = {}
        for row in self._conn().execute("SELECT * FROM holds WHERE lifted_at IS NULL"):
            expires = parse_time(row["expires_at"])
            if expires is not None and expires <= now:
                continue
            out[row["scan"]] = Hold(
                scan=row["scan"],
                reason=row["reason"],
                placed_by=row["placed_by"],
                placed_at=datetime.fromisoformat(row["placed_at"]),
                expires_at=expires,
            )
        return out

    def request_retry(self, action_ids: Iterable[str], by: str, now: datetime) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO retries VALUES (?,?,?)",
                [(aid, by, iso(now)) for aid in action_ids],
            )

    def consume_retries(self, now: datetime) -> list[str]:
        """Operator retries: failed actions become due now (the reconciler calls this)."""
        with self.transaction() as conn:
            ids = [row[0] for row in conn.execute("SELECT action_id FROM retries")]
            conn.executemany(
                """UPDATE actions SET retry_at = ?, attempts = 0 WHERE id = ? AND status = 'failed'""",
                [(iso(now), aid) for aid in ids],
            )
            conn.execute("DELETE FROM retries")
        return ids

    # ---- deletions (receipts) ------------------------------------------------------------
    def record_deletion(
        self,
        scan: str,
        endpoint: str,
        action_id: str,
        task_id: str | None,
        now: datetime,
        receipt: dict[str, Any],
        *,
        submission_id: str | None = None,
    ) -> None:
        """Append the receipt of one removal (and make the absence expected).

        Receipts are append-only, one per removal: a later delete of the same action (the same
        bytes put back and pruned again) adds its own. One submission's receipt for an action is
        written once; what a later look at the same submission learns (the rest of a scan an
        interrupted delete had cut part-way) completes that row instead of adding another.
        """
        self._forget(replicas=True, evidence=True)
        body = json.dumps(receipt)
        with self.transaction() as conn:
            updated = 0
            if submission_id is not None:
                updated = conn.execute(
                    """UPDATE deletions SET task_id = ?, deleted_at = ?, receipt = ?
                       WHERE submission_id = ? AND action_id = ?""",
                    (task_id, iso(now), body, submission_id, action_id),
                ).rowcount
            if not updated:
                conn.execute(
                    """INSERT INTO deletions(scan, endpoint, action_id, task_id, submission_id,
                           deleted_at, receipt) VALUES (?,?,?,?,?,?,?)""",
                    (scan, endpoint, action_id, task_id, submission_id, iso(now), body),
                )
            conn.execute("DELETE FROM replicas WHERE scan = ? AND endpoint = ?", (scan, endpoint))
            conn.execute("DELETE FROM evidence WHERE scan = ? AND endpoint = ?", (scan, endpoint))
        # And again after: a reader may have cached in between.
        self._forget(replicas=True, evidence=True)

    def foreign_files(self) -> list[ForeignFiles]:
        """Every recorded set of foreign files, oldest first (from the receipts' `left_behind`).

        The receipts are the record: a delete writes the files it left beside the scan into its
        receipt once. The LIKE narrows the scan to receipts that name any before JSON is parsed.
        """
        rows = self._conn().execute(
            """SELECT scan, endpoint, action_id, deleted_at,
                      json_extract(receipt, '$.left_behind') AS left_behind
               FROM deletions
               WHERE receipt LIKE '%"left_behind": ["%'
                 AND json_array_length(json_extract(receipt, '$.left_behind')) > 0
               ORDER BY deleted_at, scan, endpoint"""
        )
        return [
            ForeignFiles(
                scan=r["scan"],
                endpoint=r["endpoint"],
                paths=tuple(json.loads(r["left_behind"])),
                action_id=r["action_id"],
                recorded_at=datetime.fromisoformat(r["deleted_at"]),
            )
            for r in rows
        ]

    def deleted(self) -> dict[str, set[str]]:
        """endpoint → scans the engine deleted there (expected absences)."""
        out: dict[str, set[str]] = {}
        for row in self._conn().execute("SELECT scan, endpoint FROM deletions"):
            out.setdefault(row[1], set()).add(row[0])
        return out

    def receipts(self, scan: str) -> list[dict[str, Any]]:
        """Every receipt of a scan, one per removal, oldest first (`engine/receipt_search.py`)."""
        from engine.receipt_search import ReceiptQuery, find_receipts

        if not scan or scan.endswith("/"):
            return []  # a scan id, never a folder
        return find_receipts(self, ReceiptQuery(scan))

    # ---- endpoints and heartbeat ---------------------------------------------------------
    def endpoint_ok(self, name: str, now: datetime) -> None:
        with self.transaction() as conn:
            conn.execute(
                """INSERT INTO endpoints(name, last_ok_at, consecutive_failures) VALUES (?,?,0)
                   ON CONFLICT(name) DO UPDATE SET last_ok_at=excluded.last_ok_at,
                     consecutive_failures=0""",
                (name, iso(now)),
            )

    def endpoint_failed(self, name: str, message: str, now: datetime) -> int:
        with self.transaction() as conn:
            conn.execute(
                """INSERT INTO endpoints(name, last_error, last_error_at, consecutive_failures)
                   VALUES (?,?,?,1)
                   ON CONFLICT(name) DO UPDATE SET last_error=excluded.last_error,
                     last_error_at=excluded.last_error_at,
                     consecutive_failures=endpoints.consecutive_failures + 1""",
                (name, message, iso(now)),
            )
            row = conn.execute(
                "SELECT consecutive_failures FROM endpoints WHERE name = ?", (name,)
            ).fetchone()
        return int(row[0])

    def endpoint_health(self) -> dict[str, dict[str, Any]]:
        return {
            row["name"]: {
                "last_ok_at": parse_time(row["last_ok_at"]),
                "last_error": row["last_error"],
                "last_error_at": parse_time(row["last_error_at"]),
                "consecutive_failures": row["consecutive_failures"],
            }
            for row in self._conn().execute("SELECT * FROM endpoints")
        }

    def beat(self, now: datetime, **fields: Any) -> None:
        allowed = {
            "pid",
            "host",
            "mode",
            "pass_started_at",
            "pass_finished_at",
            "last_ok_pass_at",
            "summary",
            "stopped_at",  # the owner exited cleanly (a later pass start supersedes it)
        }
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown heartbeat fields: {sorted(unknown)}")
        values = {
            k: (iso(v) if isinstance(v, datetime) else json.dumps(v) if k == "summary" else v)
            for k, v in fields.items()
        }
        cols = ["beat_at", *values]
        with self.transaction() as conn:
            conn.execute(
                f"""INSERT INTO heartbeat(id, {", ".join(cols)}) VALUES (1, {", ".join("?" * len(cols))})
                    ON CONFLICT(id) DO UPDATE SET {", ".join(f"{c}=excluded.{c}" for c in cols)}""",
                (iso(now), *values.values()),
            )

    def heartbeat(self) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT * FROM heartbeat WHERE id = 1").fetchone()
        if row is None:
            return None
        out = dict(row)
        for key in ("beat_at", "pass_started_at", "pass_finished_at", "last_ok_pass_at"):
            out[key] = parse_time(out[key])
        out["stopped_at"] = parse_time(out.get("stopped_at"))  # absent before schema 7
        out["summary"] = json.loads(out["summary"]) if out["summary"] else None
        return out

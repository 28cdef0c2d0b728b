"""The store's file: one SQLite connection per thread, its pragmas, write transactions and the
migration runner, plus the time format every table uses.

WAL journal, a busy timeout on every connection and `BEGIN IMMEDIATE` for writes, so the service
(the one writer of engine tables) and the TUI (readers, and writer of operator decisions only)
share the file safely. The schema is versioned with `PRAGMA user_version` and migrated forward
on open; a store written by a newer bl931 is refused rather than misread.

`StoreBase` is what every aggregate module (`engine.store.scans`, `.replicas`, ...) builds on;
`engine.store.StateStore` composes them.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import ConfigError
from engine.store.migrations import MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    from engine.model import Evidence
    from engine.scan_rows import RowMap
    from engine.store.mark_table import MarkTable

log = logging.getLogger("engine.state")


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else _iso(moment)


@lru_cache(maxsize=256)
def _iso(moment: datetime) -> str:
    # A pass writes its own `now` into thousands of rows: formatted once, not per row. Equal
    # instants in other zones hash and compare equal, and format the same in UTC.
    return moment.astimezone(UTC).isoformat()


def parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class StoreBase:
    """One SQLite file; a connection per thread (the aggregates' common base)."""

    def __init__(self, path: Path, *, readonly: bool = False, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.timeout = timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # The writable store is the one writer of replicas and evidence (the owner lock), so it
        # keeps what a pass needs of them and updates or drops it on its own writes
        # (`engine.store.replicas`). A read-only store (the TUI, an audit) always reads afresh.
        self._cache_lock = threading.Lock()
        self._marks_cache: MarkTable | None = None
        self._evidence_cache: dict[str, RowMap[Evidence]] | None = None
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

    def _has_column(self, table: str, column: str) -> bool:
        rows = self._conn().execute(f"PRAGMA table_info({table})").fetchall()
        return any(row[1] == column for row in rows)

    def _forget(self, *, replicas: bool = False, evidence: bool = False) -> None:
        """Drop the cached replica marks / evidence (`engine.store.replicas`) around a write to
        them that is not `replace_replicas` (which updates the marks itself)."""
        with self._cache_lock:
            self._generation += 1
            if replicas:
                self._marks_cache = None
            if evidence:
                self._evidence_cache = None

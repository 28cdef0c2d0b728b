"""Replicas (what the last observation of each endpoint found) and evidence (why a replica is
believed verified).

The writable store is the one writer of both (the owner lock), so it keeps what a pass needs of
them between passes. Evidence: the objects last read, dropped on its own writes
(`StoreBase._forget`); the verdicts a pass reuses are keyed by those very objects. Replicas: not
the rows but one *mark* per row (`replica_mark`: a fingerprint of the level, size and signature
a pass compares to decide whether a row changed), kept up to date by the store's own writes
instead of read again after each (reading 300k rows costs ~1 s; one mark is an int, a row
object ~110 bytes). A read-only store (the TUI, an audit) always reads afresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from engine.compact import Moments, shared, shared_or_none
from engine.evidence import EvidenceSource
from engine.model import Evidence, Level
from engine.scan_rows import RowMap
from engine.store.connection import StoreBase, iso
from engine.store.mark_table import ABSENT, MarkTable

_LEVELS = tuple(Level)  # index = stored integer; cheaper than calling the enum per row


@dataclass(frozen=True, slots=True)
class ReplicaRow:
    level: Level
    size: int
    files: int
    signature: str
    observed_at: datetime


def replica_mark(level: Level, size: int, signature: str) -> int:
    """What a pass compares of a stored replica row (`load_replica_marks`): equal marks, equal
    level, size and signature (a 64-bit hash; the marks live in this process only)."""
    mark = hash((int(level), size, signature))
    return mark if mark != ABSENT else ABSENT + 1  # ABSENT: no row (engine.store.mark_table)


class ReplicaStore(StoreBase):
    """The replicas and evidence tables."""

    def load_replicas(self) -> dict[str, Mapping[str, ReplicaRow]]:
        """endpoint → scan → last observed replica, read now."""
        return {
            endpoint: MappingProxyType(rows) for endpoint, rows in self._read_replicas().items()
        }

    def load_replica_marks(self) -> dict[str, Mapping[str, int]]:
        """endpoint → scan → `replica_mark` of its stored row: what a pass needs to know which
        scans were seen at an endpoint before and which rows it changes. A snapshot: the
        store's own writes replace the table (`MarkTable.with_changes`), never change it."""
        with self._cache_lock:
            cached, generation = self._marks_cache, self._generation
        if cached is None:
            cached = self._read_marks()
            if not self.readonly:
                with self._cache_lock:
                    if generation == self._generation:
                        self._marks_cache = cached
        return cached.views()

    def _read_marks(self) -> MarkTable:
        levels = _LEVELS
        cursor = self._conn().cursor()
        cursor.row_factory = None
        cursor.execute("SELECT endpoint, scan, level, size, signature FROM replicas")
        return MarkTable.read(
            (endpoint, scan, replica_mark(levels[level], size, signature))
            for endpoint, scan, level, size, signature in cursor
        )

    def replica_row(self, endpoint: str, scan: str) -> ReplicaRow | None:
        """One endpoint's last observed replica of one scan (None: none recorded)."""
        row = (
            self._conn()
            .execute(
                """SELECT level, size, files, signature, observed_at FROM replicas
                   WHERE scan = ? AND endpoint = ?""",
                (scan, endpoint),
            )
            .fetchone()
        )
        if row is None:
            return None
        level, size, files, signature, observed_at = row
        return ReplicaRow(_LEVELS[level], size, files, signature, Moments()(observed_at))

    def _read_replicas(self) -> dict[str, dict[str, ReplicaRow]]:
        out: dict[str, dict[str, ReplicaRow]] = {}
        levels = _LEVELS
        parse = Moments()
        cursor = self._conn().cursor()
        cursor.row_factory = None  # plain tuples: this runs over every replica in every pass
        cursor.execute(
            "SELECT endpoint, scan, level, size, files, signature, observed_at FROM replicas"
        )
        for endpoint, scan, level, size, files, signature, observed_at in cursor:
            rows = out.get(endpoint)
            if rows is None:
                rows = out[shared(endpoint)] = {}
            # Ids and signatures shared with the scans, listings and evidence (engine.compact).
            rows[shared(scan)] = ReplicaRow(
                levels[level], size, files, shared(signature), parse(observed_at)
            )
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
        with self._cache_lock:
            self._generation += 1  # a read racing this write is not kept
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
        with self._cache_lock:
            self._generation += 1
            cached = self._marks_cache
            if cached is not None:
                # Copy on write: a pass still reading the map it was handed sees no change.
                self._marks_cache = cached.with_changes(
                    endpoint,
                    {
                        scan: replica_mark(r.level, r.size, r.signature)
                        for scan, r in upserts.items()
                    },
                    removed,
                )

    def load_evidence(self) -> dict[str, Mapping[str, Evidence]]:
        """endpoint → scan → evidence: a read-only view of what was read (a snapshot, as
        `load_replicas`)."""
        with self._cache_lock:
            cached, generation = self._evidence_cache, self._generation
        if cached is None:
            cached = self._read_evidence()
            if not self.readonly:
                with self._cache_lock:
                    if generation == self._generation:
                        self._evidence_cache = cached
        return dict(cached)  # each endpoint's map is read-only (`RowMap`)

    def _read_evidence(self) -> dict[str, RowMap[Evidence]]:
        # Per endpoint a column indexed by scan row (engine.scan_rows), not a dict: 3 MB less
        # per endpoint at 100k scans (issue 15's memory target).
        out: dict[str, list[tuple[str, Evidence]]] = {}
        levels = _LEVELS
        parse = Moments()
        cursor = self._conn().cursor()
        cursor.row_factory = None
        # A read-only store still at a schema from before identities has no such column.
        identity = "identity" if self._has_column("evidence", "identity") else "NULL"
        cursor.execute(
            f"""SELECT endpoint, scan, level, algorithm, value, task_id, verified_at, signature,
                      how, {identity} FROM evidence"""
        )
        # What a batch of evidence shares (`EvidenceSource`), made once per distinct row part.
        sources: dict[tuple[object, ...], EvidenceSource] = {}
        for row in cursor:
            endpoint, scan, level, algorithm, value, task_id, verified, signature, how, ident = row
            rows = out.get(endpoint)
            if rows is None:
                rows = out[shared(endpoint)] = []
            common = (level, algorithm, task_id, verified, how, ident)
            source = sources.get(common)
            if source is None:
                source = sources[common] = EvidenceSource(
                    levels[level],
                    shared_or_none(algorithm),
                    shared_or_none(task_id),
                    parse(verified),
                    shared(how),
                    shared_or_none(ident),
                )
            rows.append(
                (
                    shared(scan),
                    Evidence(
                        value=shared_or_none(value), signature=shared(signature), source=source
                    ),
                )
            )
        return {endpoint: RowMap.of(rows) for endpoint, rows in out.items()}

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

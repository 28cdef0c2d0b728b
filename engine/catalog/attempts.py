"""The registrations bl931 asked a catalog for and has not recorded (`catalog_attempts`).

A registration is recorded (`engine.catalog.custody.Registrations.record`) once the catalog made
it durable. Between the catalog's write and that record the process can die (a SIGKILL, a
power cut), and a write that failed (the local file vanished during the pass) can be made by a
later flush of the same process: either way the catalog holds a document bl931 asked for that
the store never recorded. So each registration is written here *before* the catalog is called
(`Attempts.add`, one transaction per pass), removed when recorded, and a later observation that
finds the catalog holding the document adopts it into the registrations (`adoptable`), where
its loss raises `catalog_lost_documents` like any other.

Only scans bl931 itself asked to register are ever adopted: documents others wrote for scans
bl931 never asked about stay merged and untracked. A document another writer made for a scan
bl931 *did* ask about is adopted: bl931's own registration adopts an existing document too
(`Catalog.register`), and a kept registration can only add an alert (which stops deletes),
never allow one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable
from datetime import datetime

from engine.catalog.base import Catalog
from engine.catalog.local import LocalCatalog
from engine.errors import Bl931Error
from engine.model import CatalogView
from engine.state import StateStore, iso

TABLE = "catalog_attempts"


class Attempts:
    """The `catalog_attempts` table (written only by the store's owner)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def add(self, catalog: str, scans: Iterable[str], now: datetime) -> None:
        """Before the catalog is asked to register these scans."""
        asked = list(scans)
        if asked and self.store.has_table(TABLE):
            with self.store.transaction() as conn:
                self.keep(conn, catalog, asked, now)

    def pending(self, catalog: str) -> frozenset[str]:
        """Scans asked of this catalog kind (or, from failed actions before the table, of any)
        whose registration is not recorded."""
        if not self.store.has_table(TABLE):
            return frozenset()
        rows = self.store.connection().execute(
            f"SELECT scan FROM {TABLE} WHERE catalog IN (?, '')", (catalog,)
        )
        return frozenset(row[0] for row in rows)

    def drop(self, conn: sqlite3.Connection, catalog: str, scans: Collection[str]) -> None:
        """Settled (recorded, or forgotten with an accepted loss), in the caller's transaction."""
        if scans and self.store.has_table(TABLE):
            conn.executemany(
                f"DELETE FROM {TABLE} WHERE catalog IN (?, '') AND scan = ?",
                [(catalog, scan) for scan in sorted(scans)],
            )

    def keep(
        self, conn: sqlite3.Connection, catalog: str, scans: Collection[str], now: datetime
    ) -> None:
        """Noted as asked for, in the caller's transaction (`add`; a registration whose loss
        an operator accepted: should the catalog hold the document again, it is adopted again)."""
        if scans and self.store.has_table(TABLE):
            conn.executemany(
                f"INSERT OR IGNORE INTO {TABLE} VALUES (?, ?, ?)",
                [(catalog, scan, iso(now)) for scan in sorted(scans)],
            )

    def claim(self, catalog: str) -> None:
        """Attempts taken over from failed actions (migration 17) belong to this catalog."""
        if not self.store.has_table(TABLE):
            return
        unclaimed = self.store.connection().execute(
            f"SELECT 1 FROM {TABLE} WHERE catalog = '' LIMIT 1"
        )
        if unclaimed.fetchone() is not None:
            with self.store.transaction() as conn:
                conn.execute(
                    f"UPDATE OR REPLACE {TABLE} SET catalog = ? WHERE catalog = ''", (catalog,)
                )


def adoptable(
    catalog: Catalog, attempted: frozenset[str], view: CatalogView, expected: frozenset[str]
) -> tuple[frozenset[str], list[tuple[str, str | None]]]:
    """Of the attempted scans whose document the catalog holds: those already kept (settled),
    and the (scan, pid) pairs to adopt.

    Only durable documents are adopted: while a local catalog has changes waiting for `flush`,
    none is (what `observe` shows of them may never reach the file; the next pass looks again).
    """
    if not attempted or (isinstance(catalog, LocalCatalog) and catalog.has_pending()):
        return frozenset(), []
    held = attempted.intersection(view.locations)
    found = sorted(held.difference(expected))
    return held.intersection(expected), [(scan, _pid(catalog, scan)) for scan in found]


def _pid(catalog: Catalog, scan: str) -> str | None:
    """The pid of the scan's document in a local catalog (None elsewhere: SciCat's pids are in
    the pid book, `engine.catalog.pid_book`; receipts derive one otherwise)."""
    if not isinstance(catalog, LocalCatalog):
        return None
    try:
        doc = catalog.document(scan)
    except Bl931Error:
        return None
    pid = doc.get("pid") if doc else None
    return str(pid) if pid else None

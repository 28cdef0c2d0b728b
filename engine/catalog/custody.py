"""Custody of the catalog: which catalog the state store knows, and what it registered there.

Two facts are kept in the state store, beside the catalog itself:

- the **identity** of the local catalog file (`catalog_identity`): recorded when the catalog is
  initialised — by an operator (`bl931tui --init-catalog`), or at the first pass of a brand-new
  state store (nothing can be lost then). From then on the file must carry that identity; a
  missing file, or another catalog at its path, makes the catalog unavailable. A store without a
  recorded identity (one from before catalog identities, or a catalog switched on later) never
  creates or adopts a catalog by itself: it asks for `--init-catalog`.
- the **registrations** (`catalog_registrations`): every scan the executor registered, per
  catalog kind, recorded once the catalog made the registration durable. A catalog that no
  longer holds one of them *lost documents* (a backup put back, a hand edit, a new empty
  catalog): a `catalog_lost_documents` alert makes the catalog unknown for every action — no
  registration, no location update, no delete anywhere — until the documents are back or an
  operator acknowledges the loss (the scans are then registered anew where a verified copy
  allows). A registration bl931 asked for and never recorded (the process died after the
  catalog's write, or a failed write was made later) is adopted when a pass finds its document
  (`engine.catalog.attempts`).

Both kinds of catalog (local and SciCat) reach the planner the same way: an unreadable catalog is
a `CatalogView` with `ok=False` (reason code `catalog_unavailable` for everything that needs it).
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from engine.alert_log import AlertLog
from engine.catalog import lost_named
from engine.catalog.attempts import Attempts, adoptable
from engine.catalog.base import Catalog
from engine.catalog.local import LocalCatalog
from engine.errors import Bl931Error
from engine.model import Alert, AlertEffect, CatalogView, ClearedBy
from engine.state import StateStore, iso, parse_time
from engine.store.events import write_events

CATALOG = "catalog"  # the name errors and alerts give the catalog
LOST_DOCUMENTS = "catalog_lost_documents"


@dataclass(frozen=True, slots=True)
class CatalogIdentity:
    """What the state store recorded when the local catalog was initialised."""

    catalog_id: str
    path: str
    initialised_by: str
    initialised_at: datetime


def recorded_identity(store: StateStore) -> CatalogIdentity | None:
    """The recorded identity (None: none yet, or a read-only store at an older schema)."""
    if not store.has_table("catalog_identity"):
        return None
    row = store.connection().execute("SELECT * FROM catalog_identity WHERE id = 1").fetchone()
    if row is None:
        return None
    return CatalogIdentity(
        row["catalog_id"],
        row["path"],
        row["initialised_by"],
        parse_time(row["initialised_at"]) or datetime.min,
    )


def initialise_catalog(
    catalog: LocalCatalog, store: StateStore, *, user: str, now: datetime
) -> tuple[CatalogIdentity, str]:
    """Give the catalog file an identity (create, or adopt the file there) and record it.

    Returns:
        The recorded identity, and how: "created" | "adopted" | "identified".

    Raises:
        CatalogUnavailable: the folder is missing, or the file is unreadable or corrupt.
    """
    previous = recorded_identity(store)
    catalog_id, how = catalog.initialise(now=now)
    identity = CatalogIdentity(catalog_id, str(catalog.path), user, now)
    with store.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO catalog_identity VALUES (1, ?, ?, ?, ?)",
            (catalog_id, identity.path, user, iso(now)),
        )
        write_events(
            conn,
            [
                (
                    now,
                    "info",
                    "catalog.initialised",
                    None,
                    None,
                    f"local catalog {identity.path}: identity {catalog_id} recorded ({how}) by {user}",
                    {
                        "catalog_id": catalog_id,
                        "how": how,
                        "previous": previous.catalog_id if previous else None,
                    },
                )
            ],
        )
    catalog.expect(catalog_id)
    return identity, how


def bind_catalog(
    catalog: Catalog, store: StateStore, *, may_initialise: bool, user: str, now: datetime
) -> None:
    """Tell a local catalog which identity its file must carry (other kinds need nothing).

    Args:
        may_initialise: the caller writes (a pass, never an audit): a new store's first pass
            then initialises the catalog.
    """
    if not isinstance(catalog, LocalCatalog):
        return
    known = recorded_identity(store)
    if known is not None:
        catalog.expect(known.catalog_id)
    elif not store.created_new:
        catalog.expect(
            None,
            refusal=(
                "has no identity recorded in the state store (a store from before catalog "
                "identities, or a catalog switched on later): check that the file (or its "
                "absence) is right, then run `bl931tui --init-catalog`"
            ),
        )
    elif may_initialise:
        initialise_catalog(catalog, store, user=user, now=now)
    else:
        # An audit before the first pass: what a fresh installation looks like.
        catalog.expect(None, missing_is_fresh=True)


class Registrations:
    """The `catalog_registrations` table: the scans each catalog kind registered.

    Only the store's owner writes it, through this object, which keeps what it read (a steady
    pass over 100k registrations then reads nothing) and updates it with its own writes.
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._known: dict[str, frozenset[str]] = {}
        # What bl931 asked the catalog to register and has not recorded (adopted when found).
        self.attempts = Attempts(store)

    def record(
        self, catalog: str, registered: Iterable[tuple[str, str | None]], now: datetime
    ) -> None:
        """Record (scan, pid) pairs the catalog made durable, in one transaction."""
        at = iso(now)
        rows = [(catalog, scan, pid, at) for scan, pid in registered]
        if not rows:
            return
        with self.store.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO catalog_registrations VALUES (?, ?, ?, ?)", rows
            )
            self.attempts.drop(conn, catalog, [scan for _, scan, _, _ in rows])
        self._known.pop(catalog, None)

    def adopt(
        self,
        catalog: str,
        found: Iterable[tuple[str, str | None]],
        now: datetime,
        *,
        settled: Collection[str] = (),
    ) -> None:
        """Documents the catalog holds for registrations bl931 asked for but never recorded
        (the process died after the write, or a failed write was made later): registered
        (`engine.catalog.attempts`). `settled`: attempts whose registration is kept already."""
        if settled:
            with self.store.transaction() as conn:
                self.attempts.drop(conn, catalog, settled)
        chosen = sorted(found)
        if not chosen:
            return
        self.record(catalog, chosen, now)
        with self.store.transaction() as conn:
            write_events(
                conn,
                [
                    (
                        now,
                        "info",
                        "catalog.adopted",
                        scan,
                        None,
                        f"the {catalog} catalog holds the document of a registration bl931 "
                        "asked for and had not recorded (interrupted or failed): now kept "
                        "among its registrations",
                        {"pid": pid},
                    )
                    for scan, pid in chosen
                ],
            )

    def known(self, catalog: str) -> frozenset[str]:
        """Scans registered in this catalog kind (and, from before the table, in any)."""
        if catalog in self._known:
            return self._known[catalog]
        if not self.store.has_table("catalog_registrations"):
            return frozenset()
        rows = self.store.connection().execute(
            "SELECT scan FROM catalog_registrations WHERE catalog IN (?, '')", (catalog,)
        )
        known = frozenset(sys.intern(row[0]) for row in rows)  # ids shared with the scans
        if not self.store.readonly:
            self._known[catalog] = known
        return known

    def pid(self, scan: str) -> str | None:
        """The pid the latest registration of `scan` (in any catalog kind) answered, if stored."""
        if not self.store.has_table("catalog_registrations"):
            return None
        row = (
            self.store.connection()
            .execute(
                """SELECT pid FROM catalog_registrations WHERE scan = ? AND pid IS NOT NULL
                   ORDER BY registered_at DESC LIMIT 1""",
                (scan,),
            )
            .fetchone()
        )
        return str(row[0]) if row else None

    def claim(self, catalog: str) -> None:
        """Registrations taken over from past events belong to the catalog configured now."""
        unclaimed = self.store.connection().execute(
            "SELECT 1 FROM catalog_registrations WHERE catalog = '' LIMIT 1"
        )
        if unclaimed.fetchone() is None:
            return
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE OR REPLACE catalog_registrations SET catalog = ? WHERE catalog = ''",
                (catalog,),
            )
        self._known.clear()

    def forget(self, catalog: str, scans: Iterable[str], now: datetime) -> None:
        """An operator accepted the loss of these documents: no longer expected there."""
        chosen = sorted(scans)
        with self.store.transaction() as conn:
            conn.executemany(
                "DELETE FROM catalog_registrations WHERE catalog IN (?, '') AND scan = ?",
                [(catalog, scan) for scan in chosen],
            )
            # Still asked for: a document that comes back (a newer backup) is adopted again.
            self.attempts.keep(conn, catalog, chosen, now)
            write_events(
                conn,
                [
                    (
                        now,
                        "info",
                        "catalog.loss_accepted",
                        scan,
                        None,
                        f"the {catalog} catalog lost this scan's document; an operator "
                        "accepted the loss (it is registered again where a copy allows)",
                        None,
                    )
                    for scan in chosen
                ],
            )
        self._known.clear()


def observe_catalog(
    catalog: Catalog | None,
    registrations: Registrations,
    scans: Collection[str],
    *,
    write: bool,
    user: str,
    now: datetime,
) -> tuple[CatalogView, list[Alert]]:
    """The catalog's view for one pass, and the alert if it lost registered documents.

    Args:
        catalog: the configured catalog (None: cataloguing is off).
        registrations: the state store's registrations (the executor's, which it updates).
        scans: the scans the pass knows.
        write: a pass (registrations of a lost catalog whose loss was acknowledged are
            forgotten; a new store initialises its catalog), not an audit.
    """
    if catalog is None:
        return CatalogView(enabled=False), []
    store = registrations.store
    try:
        bind_catalog(catalog, store, may_initialise=write, user=user, now=now)
        if write and isinstance(catalog, LocalCatalog) and catalog.has_pending():
            # Changes an earlier pass could not write (the file had vanished): written before
            # this pass reads the catalog, so nothing it plans relies on a document held only
            # in memory, and a registration among them is adopted now (engine/catalog/attempts).
            catalog.flush()
        expected = registrations.known(catalog.name)
        view = catalog.observe(expected.union(scans) if expected else scans)
    except Bl931Error as exc:
        return CatalogView(
            enabled=True, ok=False, error=exc.message, error_class=exc.error_class
        ), []
    if write:
        registrations.claim(catalog.name)
        registrations.attempts.claim(catalog.name)
        settled, found = adoptable(
            catalog, registrations.attempts.pending(catalog.name), view, expected
        )
        registrations.adopt(catalog.name, found, now, settled=settled)
    lost = expected.difference(view.locations)
    if lost and AlertLog(store).acknowledged(LOST_DOCUMENTS, CATALOG):
        # The operator accepted the losses the alert named, not those since (lost_named).
        accepted = lost_named.accepted(store, catalog.name, lost)
        if write:
            registrations.forget(catalog.name, accepted, now)
            lost_named.close_acknowledged(store, catalog.name, LOST_DOCUMENTS, CATALOG, now)
        lost = lost.difference(accepted)
    if write:
        lost_named.name(store, catalog.name, lost)
    if not lost:
        return view, []
    shown = ", ".join(repr(scan) for scan in sorted(lost)[:5])
    more = f" and {len(lost) - 5} more" if len(lost) > 5 else ""
    message = (
        f"the {catalog.name} catalog lost {len(lost)} document(s) of scans the state store "
        f"recorded as registered: {shown}{more}. It is unknown for every action (no "
        "registrations, no location updates, no deletes) until the documents are back or an "
        "operator acknowledges the loss"
    )
    alert = Alert(
        LOST_DOCUMENTS,
        AlertEffect.UNKNOWN_ENDPOINT,
        message,
        endpoint=CATALOG,
        cleared_by=ClearedBy.CONDITION_OR_ACKNOWLEDGEMENT,
    )
    return replace(view, lost=frozenset(lost)), [alert]

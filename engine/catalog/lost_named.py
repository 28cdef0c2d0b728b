"""What an acknowledgement of a `catalog_lost_documents` alert accepts: the scans it named.

An operator who acknowledges the alert accepts the loss of the documents the alert named when
they read it — not of documents lost since. The alert's message shows at most five scans, so the
whole set is kept in the state store (`catalog_lost_named`): every pass that raises or keeps the
alert while nobody has acknowledged it records the scans it names (the record and the message
are written by the same pass, so the message an operator acknowledges is the record's). Once
acknowledged, the set no longer changes. The next pass then:

- forgets only the registrations of lost scans the acknowledged alert named (`accepted`);
- closes the acknowledged alert (`close_acknowledged`), so a scan lost since is raised by a new
  alert that nobody has acknowledged — it stops deletes until it is back or acknowledged itself.

A store upgraded while an acknowledged alert stood has no named set: nothing is forgotten, and
the alert is raised again for the operator to acknowledge once more (a false alarm at worst).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from engine.state import StateStore, iso
from engine.store.events import write_events

TABLE = "catalog_lost_named"


def named(store: StateStore, catalog: str) -> frozenset[str]:
    """The scans the lost-documents alert of this catalog kind named at its last write pass."""
    if not store.has_table(TABLE):
        return frozenset()
    rows = store.connection().execute(f"SELECT scan FROM {TABLE} WHERE catalog = ?", (catalog,))
    return frozenset(row[0] for row in rows)


def name(store: StateStore, catalog: str, scans: Collection[str]) -> None:
    """Record the scans the standing, unacknowledged alert names now (none: it cleared)."""
    if not store.has_table(TABLE) or named(store, catalog) == frozenset(scans):
        return
    with store.transaction() as conn:
        conn.execute(f"DELETE FROM {TABLE} WHERE catalog = ?", (catalog,))
        conn.executemany(
            f"INSERT INTO {TABLE}(catalog, scan) VALUES (?, ?)",
            [(catalog, scan) for scan in sorted(scans)],
        )


def accepted(store: StateStore, catalog: str, lost: Collection[str]) -> frozenset[str]:
    """Of the scans lost now, those whose loss the acknowledged alert named."""
    return named(store, catalog).intersection(lost)


def close_acknowledged(
    store: StateStore, catalog: str, code: str, endpoint: str, now: datetime
) -> None:
    """The acknowledged alert has done its work: closed, with its named set, so that whatever
    is still lost is raised afresh (unacknowledged)."""
    at = iso(now)
    with store.transaction() as conn:
        rows = conn.execute(
            "SELECT id, message, acknowledged_by FROM alerts WHERE code = ? AND endpoint = ? "
            "AND cleared_at IS NULL AND acknowledged_at IS NOT NULL",
            (code, endpoint),
        ).fetchall()
        for alert_id, message, by in rows:
            conn.execute("UPDATE alerts SET cleared_at = ? WHERE id = ?", (at, alert_id))
            write_events(
                conn,
                [
                    (
                        now,
                        "info",
                        "alert.cleared",
                        None,
                        None,
                        f"cleared (after {by} acknowledged it): {message}",
                        {"id": alert_id, "code": code, "endpoint": endpoint},
                    )
                ],
            )
        if store.has_table(TABLE):
            conn.execute(f"DELETE FROM {TABLE} WHERE catalog = ?", (catalog,))

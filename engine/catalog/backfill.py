"""Back-fill: register every locally catalogued scan in another catalog (SciCat).

A beamline can run with `[catalog] kind = "local"` before its SciCat ingest exists; when the config
switches to `"scicat"`, this replays the local documents into SciCat: each as it was recorded (its
`sourceFolder`, dates and lifecycle), not rebuilt from today's config. It is idempotent — one
`observe` finds what the target already holds (adopted, and its locations brought up to date),
and `register` itself adopts a dataset created by an interrupted earlier run — so it can be
stopped and started again at any point.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from engine.catalog.base import Catalog
from engine.catalog.dataset import (
    locations_from_document,
    scan_from_document,
    scan_id_of,
)
from engine.catalog.local import LocalCatalog
from engine.errors import Bl931Error, TransientError
from engine.model import ErrorClass

log = logging.getLogger(__name__)


@runtime_checkable
class ReplaysDocuments(Protocol):
    """A target that registers a stored document as recorded (SciCat), not rebuilt from config."""

    def replay(self, doc: Mapping[str, Any]) -> str: ...


# After this many transient failures in a row the target is taken to be down: the rest is left
# for the next run rather than each waiting for its own timeout.
MAX_CONSECUTIVE_TRANSIENT = 3


@dataclass(frozen=True, slots=True)
class BackfillFailure:
    scan: str
    error_class: ErrorClass
    reason: str


@dataclass(frozen=True, slots=True)
class BackfillResult:
    """What a back-fill did: every local document is counted exactly once."""

    total: int
    registered: int = 0  # newly created in the target
    adopted: int = 0  # already there (from an earlier or interrupted run)
    updated: int = 0  # adopted ones whose recorded locations were brought up to date
    failed: tuple[BackfillFailure, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        return (
            f"{self.registered} registered, {self.adopted} already present "
            f"({self.updated} updated), {len(self.failed)} failed, of {self.total}"
        )


def backfill(
    source: LocalCatalog,
    target: Catalog,
    progress: Callable[[int, int], None] | None = None,
) -> BackfillResult:
    """Register every scan of `source` in `target`, idempotently.

    Args:
        source: the local catalog whose documents are replayed.
        target: the catalog to fill (SciCat in production; any `Catalog` works).
        progress: called as `progress(done, total)` before the first scan and after each one.

    Returns:
        Counts of registered / adopted / updated scans and each failure with its reason.

    Raises:
        CatalogUnavailable: the source cannot be read or the target cannot be observed (nothing
            was attempted).
    """
    documents = list(source.documents())
    total = len(documents)
    report = progress or (lambda done, total: None)
    report(0, total)
    scan_ids = [scan_id for doc in documents if (scan_id := scan_id_of(doc)) is not None]
    present = target.observe(scan_ids).locations
    log.info("back-fill to %s: %d scans, %d already there", target.name, total, len(present))

    registered = adopted = updated = 0
    failures: list[BackfillFailure] = []
    transient_in_a_row = 0
    for done, doc in enumerate(documents, 1):
        scan_id = scan_id_of(doc) or f"<document {done}>"
        if transient_in_a_row >= MAX_CONSECUTIVE_TRANSIENT:
            failures.append(
                BackfillFailure(
                    scan_id,
                    ErrorClass.TRANSIENT,
                    f"not attempted: {target.name} failed {transient_in_a_row} times in a row",
                )
            )
            report(done, total)
            continue
        try:
            scan = scan_from_document(doc)
            locations = locations_from_document(doc)
            if scan.id in present:
                stale = present[scan.id] != {loc.endpoint for loc in locations}
                if stale:
                    target.update_locations(scan, locations)
                adopted += 1
                updated += stale
            elif isinstance(target, ReplaysDocuments):
                target.replay(doc)
                registered += 1
            else:
                target.register(scan, locations)
                registered += 1
            transient_in_a_row = 0
        except Bl931Error as exc:
            transient_in_a_row = transient_in_a_row + 1 if isinstance(exc, TransientError) else 0
            failures.append(BackfillFailure(scan_id, exc.error_class, exc.message))
            log.warning("back-fill of %s failed (%s): %s", scan_id, exc.error_class, exc.message)
        except (KeyError, TypeError, ValueError) as exc:
            transient_in_a_row = 0
            reason = f"local document is incomplete or malformed ({type(exc).__name__}: {exc})"
            failures.append(BackfillFailure(scan_id, ErrorClass.TERMINAL, reason))
            log.warning("back-fill of %s skipped: %s", scan_id, reason)
        report(done, total)
    target.flush()
    result = BackfillResult(total, registered, adopted, updated, tuple(failures))
    log.info("back-fill to %s: %s", target.name, result.summary())
    return result

"""Building local catalogs for tests the way an operator's `--init-catalog` does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from engine.catalog.local import LocalCatalog
from engine.config import CatalogConfig

CREATED = datetime(2026, 11, 1, tzinfo=UTC)


def new_local_catalog(
    path: Path, config: CatalogConfig, *, clock: Callable[[], datetime] | None = None
) -> LocalCatalog:
    """An initialised, empty local catalog at `path` (its folder is created first), bound to
    its own identity."""
    path.parent.mkdir(parents=True, exist_ok=True)
    catalog = LocalCatalog(path, config, clock=clock or (lambda: CREATED))
    catalog_id, _ = catalog.initialise(now=CREATED)
    catalog.expect(catalog_id)
    return catalog

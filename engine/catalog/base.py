"""The `Catalog` protocol: where scans are registered as datasets and their locations recorded."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from engine.model import CatalogView, Level, Scan


@dataclass(frozen=True, slots=True)
class Location:
    """One verified copy of a scan, as recorded in the catalog."""

    endpoint: str
    path: str  # the scan's path on that endpoint (collection root + scan id)
    level: Level
    tape: bool = False
    delete_after: datetime | None = None  # when retention allows pruning this copy


@runtime_checkable
class Catalog(Protocol):
    name: str

    def observe(self, scans: Collection[str]) -> CatalogView:
        """Which of these scans are registered and which locations each records.

        Raises:
            CatalogUnavailable: the catalog could not be read.
        """
        ...

    def register(self, scan: Scan, locations: Sequence[Location]) -> str:
        """Register the scan (idempotently: an existing entry is adopted). Returns its id (pid)."""
        ...

    def update_locations(self, scan: Scan, locations: Sequence[Location]) -> None:
        """Record the scan's current locations (and its lifecycle: archived, purge dates)."""
        ...

    def flush(self) -> None:
        """Make everything written in this pass durable (once per pass)."""
        ...

"""Scan and location builders shared by the catalog tests (plain values, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.catalog.base import Location
from engine.model import Level, Scan, ScanFile, scan_digest

ACQUIRED = datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
CFS_ROOT = "/global/cfs/cdirs/als/data_mover/9.3.1/raw"
HPSS_ROOT = "/home/a/alsdev/data_mover/9.3.1/raw"


def make_scan(scan_id: str, *, files: int = 2, directory: bool = True, size: int = 1000) -> Scan:
    """A directory scan with `files` files (or a single-file scan)."""
    if directory:
        entries = tuple(
            ScanFile(
                path=f"{scan_id}/frame_{i:03d}.h5",
                size=size + i,
                mtime=ACQUIRED.timestamp() - 60 + i,
                checksum=f"{i:032x}",
            )
            for i in range(files)
        )
    else:
        entries = (
            ScanFile(path=scan_id, size=size, mtime=ACQUIRED.timestamp(), checksum="ab" * 16),
        )
    return Scan(
        id=scan_id,
        files=entries,
        acquired_at=ACQUIRED,
        checksum_algorithm="md5",
        checksum=scan_digest("md5", entries),
        is_directory=directory,
    )


def cfs(scan: Scan, *, level: Level = Level.CHECKSUM, keep_days: float | None = 730) -> Location:
    return Location(
        endpoint="cfs",
        path=f"{CFS_ROOT}/{scan.id}",
        level=level,
        delete_after=scan.acquired_at + timedelta(days=keep_days) if keep_days else None,
    )


def hpss(scan: Scan) -> Location:
    return Location(endpoint="hpss", path=f"{HPSS_ROOT}/{scan.id}", level=Level.CHECKSUM, tape=True)

"""The checksum a set of files' bytes make as a scan version (a file scan: its one file's sum; a
directory scan: the digest over its files), shared by the replace's last look and the checks
on what an interrupted replace left (`engine/replace_look.py`, `engine/receipted_versions.py`)."""

from __future__ import annotations

from engine.model import FileStat, ScanFile, scan_digest


def version_checksum(
    files: tuple[FileStat, ...], sums: dict[str, str], algorithm: str, *, directory: bool
) -> str | None:
    """The scan checksum these files' bytes make (None if a file could not be read)."""
    if any(f.path not in sums for f in files):
        return None
    if not directory:
        return sums[files[0].path] if len(files) == 1 else None
    return scan_digest(algorithm, [ScanFile(f.path, f.size, f.mtime, sums[f.path]) for f in files])

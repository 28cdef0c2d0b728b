"""Which bundle a scan waits for, and when that bundle closes (pure functions).

Scans are grouped by `bundle_by`: `cycle` (ALS beamtime cycles: Jan 1–Jul 15 is `YYYY-1`,
Jul 16–Dec 31 is `YYYY-2`, by the scan's acquisition time), `month` (`YYYY-MM`) or `proposal`
(the path component at `proposal_level`, e.g. `2026/11/ALS-11234/…` with level 3). A group's
waiting scans close into a bundle once no scan joined it for `close_after_days` (0: at once) or
once they fill `bundle_max_bytes`; parts are cut at `bundle_max_bytes`. A scan that joins a
group after its bundle was made waits for the group's next part.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from engine.model import Scan

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def group_of(scan: Scan, by: str, proposal_level: int = 3) -> str:
    when = scan.acquired_at
    if by == "month":
        return f"{when:%Y-%m}"
    if by == "proposal":
        parts = scan.id.split("/")
        name = parts[proposal_level - 1] if len(parts) > proposal_level else "no-proposal"
        return _SAFE.sub("_", name) or "no-proposal"
    return f"{when.year}-{1 if (when.month, when.day) <= (7, 15) else 2}"


def close_date(joined: Sequence[datetime], close_after_days: float) -> datetime:
    """When a group whose waiting scans joined at these times closes (no new joiner)."""
    return max(joined) + timedelta(days=close_after_days)


def is_closed(
    joined: Sequence[datetime], sizes: Sequence[int], now: datetime, days: float, max_bytes: int
) -> bool:
    return now >= close_date(joined, days) or sum(sizes) >= max_bytes


def cut_parts(scans: Sequence[Scan], max_bytes: int) -> list[list[Scan]]:
    """Scans (in path order) cut into parts of at most `max_bytes` (a larger scan is alone)."""
    parts: list[list[Scan]] = []
    current: list[Scan] = []
    size = 0
    for scan in sorted(scans, key=lambda s: s.id):
        if current and size + scan.size > max_bytes:
            parts.append(current)
            current, size = [], 0
        current.append(scan)
        size += scan.size
    if current:
        parts.append(current)
    return parts


def bundle_name(base: str, beamline: str, group: str, part: int) -> str:
    """The bundle's HPSS path: deterministic from its group and part."""
    tag = _SAFE.sub("_", beamline)
    return f"{base.rstrip('/')}/{group}/bl{tag}-{group}-p{part:03d}.tar"


def job_name(bundle: str, purpose: str, submission_id: str) -> str:
    stem = bundle.rsplit("/", 1)[-1].removesuffix(".tar")
    return f"bl931-{purpose}-{stem}-{submission_id[:8]}"


def grouped(scans: Mapping[str, Scan], by: str, level: int) -> dict[str, list[Scan]]:
    out: dict[str, list[Scan]] = {}
    for scan in scans.values():
        out.setdefault(group_of(scan, by, level), []).append(scan)
    return out

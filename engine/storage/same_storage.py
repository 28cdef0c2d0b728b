"""Two endpoints are never the same storage.

If the cfs root *is* the dtn root (the same path, a symlink to it, a bind mount of it) a copy
dtn → cfs "verifies" the dtn file against itself and the prune that relies on it deletes the only
copy; if one root is nested inside the other, copies land inside the inventory and it grows
without end. Two layers catch this:

- `overlaps` compares paths as written and resolved (`os.path.realpath` follows symlinks and
  works on paths that do not exist yet). What the paths show is a configuration error (exit 78),
  raised by `engine.config`.
- `shared_storage` asks the mounted filesystems, at run time, what no path can show: a bind mount
  makes two roots the same directory (same device and inode), or puts one root inside another
  (found among its ancestors, or in the kernel's mount table). That is never a configuration
  error (a mount comes and goes while the service runs): both endpoints are reported unknown for
  the pass, needing a person, so nothing relies on either.

The executor's last look (`engine.last_look`) still compares the very files before each delete.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from engine.errors import EndpointUnavailable
from engine.model import ErrorClass

MOUNTINFO = Path("/proc/self/mountinfo")
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")

StatFn = Callable[[str], os.stat_result]


def overlaps(first: str, second: str) -> str | None:
    """How two normalised absolute paths overlap: "same", "inside" (first below second),
    "contains" (second below first), or None."""
    if first == second:
        return "same"
    if first.startswith(second.rstrip("/") + "/"):
        return "inside"
    if second.startswith(first.rstrip("/") + "/"):
        return "contains"
    return None


def resolved(path: Path) -> str:
    """The path with `~`, `.`, `..` and every symlink that exists along it resolved."""
    return os.path.realpath(os.path.expanduser(path))


def remote_root(root: str) -> str:
    """A Globus root normalised as a POSIX path on its collection."""
    return posixpath.normpath("/" + root.strip())


class Place(NamedTuple):
    """Where an endpoint's tree is, as the config says: on this machine (`collection` None) or
    on a Globus collection."""

    key: str  # the config key, e.g. "endpoints.cfs.path"
    collection: str | None
    path: str  # normalised: resolved locally, or a normalised POSIX path on the collection
    configured: str  # as written, for the message


_OVERLAP_WORDS = {"same": "is the same storage as", "inside": "lies inside", "contains": "contains"}


def overlapping_places(places: list[Place]) -> list[tuple[str, str]]:
    """(key, message) for every pair of places on one storage with equal or nested paths; the
    message names the other key, and both paths (as configured, and resolved when different)."""

    def shown(place: Place) -> str:
        same = place.path == place.configured
        return place.configured if same else f"{place.configured} → {place.path}"

    problems: list[tuple[str, str]] = []
    for i, first in enumerate(places):
        for second in places[i + 1 :]:
            if first.collection != second.collection:
                continue
            relation = overlaps(second.path, first.path)
            if relation is None:
                continue
            collection = f", on collection {first.collection}" if first.collection else ""
            problems.append(
                (
                    second.key,
                    f"{_OVERLAP_WORDS[relation]} {first.key} ({shown(second)}; {shown(first)}"
                    f"{collection}): endpoints must be separate storage, or a copy verifies "
                    "against itself and a prune deletes the only copy",
                )
            )
    return problems


@dataclass(frozen=True, slots=True)
class _Root:
    name: str
    path: str  # resolved
    device_inode: tuple[int, int]
    ancestors: frozenset[tuple[int, int]]
    mount: tuple[str, str] | None  # (device major:minor, path within that filesystem)


def shared_storage(
    roots: Mapping[str, Path],
    *,
    stat: StatFn = os.stat,
    mountinfo: str | None = None,
) -> dict[str, EndpointUnavailable]:
    """Endpoints whose local roots are, on the mounted filesystems, one storage with another's.

    Args:
        roots: endpoint → local root (only endpoints this machine sees).
        stat: `os.stat`, replaceable by tests that simulate mounts.
        mountinfo: the text of `/proc/self/mountinfo`; read when None, skipped if unreadable
            (then only device and inode comparisons are made).

    Returns:
        endpoint → a needs-human `EndpointUnavailable` naming the other endpoint, for both
        endpoints of every pair found. A root that cannot be examined (missing, unmounted) is
        left out: its own listing reports that.
    """
    if mountinfo is None:
        mountinfo = _read_mountinfo()
    mounts = _parse_mountinfo(mountinfo) if mountinfo else []
    examined = [r for name, path in roots.items() if (r := _examine(name, path, stat, mounts))]
    found: dict[str, EndpointUnavailable] = {}
    for i, first in enumerate(examined):
        for second in examined[i + 1 :]:
            how = _how_shared(first, second)
            if how is None:
                continue
            for one, other in ((first, second), (second, first)):
                found.setdefault(
                    one.name,
                    EndpointUnavailable(
                        one.name,
                        f"root {one.path} is the same storage as {other.name}'s root "
                        f"{other.path} ({how}); nothing relies on either until they are "
                        "separate storage",
                        error_class=ErrorClass.NEEDS_HUMAN,
                    ),
                )
    return found


def _how_shared(a: _Root, b: _Root) -> str | None:
    """Why two roots are one storage, in words for the operator; None if they are not."""
    if a.device_inode == b.device_inode:
        return "the same directory: equal device and inode; a bind mount?"
    if a.device_inode in b.ancestors or b.device_inode in a.ancestors:
        return "one is inside the other on the mounted filesystems; a bind mount?"
    if a.mount is not None and b.mount is not None and a.mount[0] == b.mount[0]:
        relation = overlaps(a.mount[1], b.mount[1])
        if relation is not None:
            what = "the same directory" if relation == "same" else "one is inside the other"
            return (
                f"on filesystem {a.mount[0]} {what} ({a.mount[1]} and {b.mount[1]} within it); "
                "a bind mount?"
            )
    return None


def _examine(
    name: str, path: Path, stat: StatFn, mounts: list[tuple[str, str, str]]
) -> _Root | None:
    real = resolved(path)
    try:
        here = stat(real)
    except OSError:
        return None
    ancestors: set[tuple[int, int]] = set()
    parent = os.path.dirname(real)
    while True:
        try:
            above = stat(parent)
        except OSError:
            break
        ancestors.add((above.st_dev, above.st_ino))
        if parent == os.path.dirname(parent):
            break
        parent = os.path.dirname(parent)
    return _Root(
        name, real, (here.st_dev, here.st_ino), frozenset(ancestors), _mounted_at(real, mounts)
    )


def _read_mountinfo() -> str | None:
    try:
        return MOUNTINFO.read_text("utf-8", "surrogateescape")
    except OSError:
        return None


def _parse_mountinfo(text: str) -> list[tuple[str, str, str]]:
    """(device major:minor, root within the filesystem, mount point) for every mount."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5:
            mounts.append((fields[2], _unescape(fields[3]), _unescape(fields[4])))
    return mounts


def _mounted_at(real: str, mounts: list[tuple[str, str, str]]) -> tuple[str, str] | None:
    """The device and the path within its filesystem of `real`, by its deepest mount point
    (the last listed wins when mounts are stacked on one point)."""
    best: tuple[str, str, str] | None = None
    for device, fs_root, point in mounts:
        if overlaps(real, point) in ("same", "inside") and (
            best is None or len(point) >= len(best[2])
        ):
            best = (device, fs_root, point)
    if best is None:
        return None
    device, fs_root, point = best
    below = real[len(point) :].lstrip("/")
    return device, posixpath.normpath(posixpath.join(fs_root, below)) if below else fs_root


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (\\040)."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)

"""Is a running local task still working on the storage it was handed? Root pins.

The executor hands a task to the local mover only after the endpoints' identities held
(`engine/identity.py`, `engine/submission.py` `unproven`). The task then runs in a worker thread,
maybe after waiting for a free worker, for as long as its files take. If the filesystem is
unmounted meanwhile, the root becomes its bare mount point: a copy would go on writing the
scan's next files onto the disk below it (and report them verified), a delete would find
nothing and report the scan gone while it is still on the unmounted filesystem. If another
filesystem is mounted there, a delete would remove *its* files.

So the mover pins each root of a task when it is submitted — the root directory's
`(st_dev, st_ino)` and the bytes of its identity marker — and checks the pin again before each
file of a copy and before each scan of a delete. A swapped root (an unmount or a mount changes
the directory the path resolves to; a remount of the same filesystem gives back the same
`(st_dev, st_ino)`), or a marker gone or changed, stops the task there: the rest of its items
fail as transient (`RootSwapped`), without backoff, and the next pass plans them again from a fresh
observation, whose identity check decides whether anything may happen at that endpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EndpointUnavailable
from engine.layout import ENGINE_TEMP_PREFIX

MARKER_NAME = f"{ENGINE_TEMP_PREFIX}endpoint.json"  # as engine/identity.py names it


class RootSwapped(EndpointUnavailable):
    """The root is no longer what the task was handed. The item did nothing wrong: it is
    planned again at once (no backoff), and the next pass's identity check decides whether
    anything may happen there (an endpoint that is still not its storage gets nothing)."""


def _marker_bytes(root: Path) -> bytes | None:
    try:
        return (root / MARKER_NAME).read_bytes()
    except FileNotFoundError:
        return None


@dataclass(frozen=True, slots=True)
class RootPin:
    """What an endpoint's root was when a task was handed over."""

    endpoint: str
    root: Path
    device: int
    inode: int
    marker: bytes | None

    @classmethod
    def take(cls, endpoint: str, root: Path) -> RootPin | None:
        """The root as it is now; None if it is missing (the task then fails on its own)."""
        try:
            st = os.stat(root)
            marker = _marker_bytes(root)
        except OSError:
            return None
        return cls(endpoint, root, st.st_dev, st.st_ino, marker)

    def check(self, *, marker: bool = True) -> None:
        """Raise `EndpointUnavailable` (transient) unless the root is still the pinned one.

        Args:
            marker: also read the marker back (once per scan; the directory's identity is
                stat'ed before every file).
        """
        try:
            st = os.stat(self.root)
        except OSError as exc:
            raise RootSwapped(
                self.endpoint, f"root {self.root} vanished while the task ran (unmounted?): {exc}"
            ) from exc
        if (st.st_dev, st.st_ino) != (self.device, self.inode):
            raise RootSwapped(
                self.endpoint,
                f"root {self.root} is no longer the directory the task was handed (another "
                "filesystem was mounted or unmounted there while it ran); nothing more is "
                "written to or deleted from it by this task",
            )
        if not marker:
            return
        try:
            now = _marker_bytes(self.root)
        except OSError as exc:
            raise RootSwapped(
                self.endpoint, f"the identity marker at {self.root} cannot be read: {exc}"
            ) from exc
        if now != self.marker:
            raise RootSwapped(
                self.endpoint,
                f"the identity marker at {self.root} changed while the task ran (another "
                "storage there?); nothing more is written to or deleted from it by this task",
            )

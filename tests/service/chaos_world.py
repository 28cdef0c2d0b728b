"""What users and filesystems do to the chaos harness's world between passes: rewrite and
truncate scans at the dtn, unmount an endpoint (no root, or a bare mount point) or alias it (its
root a symlink to another endpoint's root). A mixin of `Chaos` (`chaos.py`), which holds the
state these methods use.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.identity import MARKER_NAME
from tests.engine.safety_checks import (
    FORGED_REWRITES,
    INTERRUPTED_DELETES_KEEP_VERSION,
    REPLACE_LAST_LOOK,
    forget_dtn,
)
from tests.service.chaos_versions import ChaosView, holds

ENDPOINTS = ("dtn", "cfs", "hpss")


class WorldChanges:
    """Mixin: the world's faults. Uses `Chaos`'s workspace, generator and version view."""

    ws: Any
    rng: random.Random
    view: ChaosView
    changes: int
    moved: dict[str, str | None]
    rotted_on_tape: set[str]
    report: Callable[..., str]  # (a method of Chaos)

    def away(self, endpoint: str) -> Path:
        return Path(self.ws.root) / f"{endpoint}-unmounted"

    def where(self, endpoint: str) -> Path:
        """The endpoint's real storage, wherever the harness moved it."""
        return self.away(endpoint) if endpoint in self.moved else Path(self.ws.root) / endpoint

    def files_of(self, scan: str) -> list[str]:
        """The scan's files (paths relative to the root) in its latest version."""
        return sorted(self._latest(scan))

    def _latest(self, scan: str) -> dict[str, bytes]:
        return self.view.versions[(scan, self.view.latest[scan])]

    def change_one(self) -> str | None:
        """A user rewrites or truncates a scan still on the dtn (a new version): new bytes of a
        new size, the same size with a new mtime, or (only with `FORGED_REWRITES`) the same
        size and mtime; or zero bytes."""
        # (While the known gaps stand, not a scan whose tape copy rotted, nor one whose delete
        # is still open: see REPLACE_LAST_LOOK and INTERRUPTED_DELETES_KEEP_VERSION.) Never one
        # whose delete task is running at its mover (`active`: a Globus task runs across
        # passes): a user who rewrites a file while a delete of its path runs loses the new
        # bytes, and no last look can stop a delete already running. Scans already on tape are
        # rewritten too: the new version goes beside the older one there.
        busy = self.view.busy(("active",)) if INTERRUPTED_DELETES_KEEP_VERSION else self.view.busy()
        at_dtn = [
            s
            for s in sorted(self.view.latest)
            if holds(self.where("dtn"), self._latest(s))
            and (REPLACE_LAST_LOOK or s not in self.rotted_on_tape)
            and s not in busy
        ]
        if not at_dtn:
            return None
        scan = self.rng.choice(at_dtn)
        path = self.where("dtn") / self.rng.choice(self.files_of(scan))
        before = path.stat()
        # The kinds take turns, so that every run that changes a few scans has each of them.
        hows = ["resize", "same size", "truncate"] + ["forge"] * FORGED_REWRITES
        how = hows[self.changes % len(hows)]
        self.changes += 1
        size = {"resize": before.st_size // 2 + 7, "truncate": 0}.get(how, before.st_size)
        path.write_bytes(self.rng.randbytes(size))
        stamp = datetime(2026, 1, 2, tzinfo=UTC).timestamp() + self.rng.randrange(86_400)
        if how == "forge":
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        else:
            os.utime(path, (stamp, stamp))
        self.view.learn(scan)
        forget_dtn(self.view, scan, self.view.latest[scan])
        return f"{how} dtn:{path.relative_to(self.where('dtn'))}"

    def _markers_written(self) -> bool:
        """Whether the first pass wrote every endpoint's identity marker: a new state store
        trusts what is mounted at its first start (safety.md), so filesystems go away only
        after that."""
        return all((self.ws.root / e / MARKER_NAME).exists() for e in ENDPOINTS)

    def move(self, endpoint: str, alias: str | None) -> None:
        """Unmount an endpoint (an empty mount point, or no root at all), or alias it: its root
        becomes a symlink to another endpoint's root. `remount_all` undoes it after the pass."""
        os.rename(self.ws.root / endpoint, self.away(endpoint))
        self.moved[endpoint] = alias
        if alias is not None:
            os.symlink(self.ws.root / alias, self.ws.root / endpoint)
        elif self.rng.random() < 0.5:
            (self.ws.root / endpoint).mkdir()  # the bare mount point

    def remount_all(self) -> None:
        """Put every endpoint moved for this pass back (checking its bare mount point)."""
        for endpoint, alias in list(self.moved.items()):
            placeholder = self.ws.root / endpoint
            if alias is not None:
                placeholder.unlink()
            elif placeholder.exists():
                left = sorted(p.name for p in placeholder.iterdir())
                assert left == [], self.report(f"written onto {endpoint}'s mount point: {left}")
                placeholder.rmdir()
            os.rename(self.away(endpoint), placeholder)
            del self.moved[endpoint]

"""The chaos harness's record of scan versions, seen through the safety checks of
`tests/engine/safety_checks.py` (the same invariants the in-process property checks).

Scans are rewritten, truncated and cut part-way by interrupted prunes, so "the scan's bytes" is
not one thing: each content the dtn ever held is a *version*, keyed by the checksum the engine
gives it. The view records every version, which of them the engine verified where (from the
store's evidence), and the latest one of each scan, and answers the checks from the bytes on
disk at each endpoint's real storage (wherever the harness moved it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.state import StateStore
from tests.engine.safety_checks import Content, Knowledge, check_all, holds_at
from tests.engine.safety_world import ENDPOINTS, engine_checksum


def scan_content(root: Path, scan: str, *, directory: bool) -> Content:
    """Every regular file of `scan` below `root` (path relative to `root` → bytes)."""
    top = root / scan
    try:
        if not directory:
            return {scan: top.read_bytes()} if top.is_file() else {}
        return {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(top.rglob("*"))
            if p.is_file() and not p.is_symlink() and not p.name.startswith(".")
        }
    except OSError:
        return {}


def holds(root: Path, content: Content) -> bool:
    for relpath, data in content.items():
        try:
            if (root / relpath).read_bytes() != data:
                return False
        except OSError:
            return False
    return True


@dataclass
class ChaosView:
    """The safety checks' `Beamline`, for a workspace driven through the real CLI."""

    root: Path  # the workspace
    state_path: Path
    directory: bool
    where: Callable[[str], Path]  # endpoint → its real storage now
    journal: Callable[[], list[str]]
    versions: dict[tuple[str, str], Content] = field(default_factory=dict)
    verified: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    latest: dict[str, str] = field(default_factory=dict)  # scan → checksum last seen at the dtn
    gated: bool = False  # the chaos workspace gates nothing (approval = [])
    false_receipts: list[str] = field(default_factory=list)  # (checked in-process only)
    unmounted: dict[str, str | None] = field(default_factory=dict)  # (restored after a pass)
    exempt: set[tuple[str, str]] = field(default_factory=set)  # (rot keeps another copy)
    knowledge: Knowledge = field(default_factory=Knowledge)
    _store: StateStore | None = None

    @property
    def log(self) -> list[str]:
        return self.journal()

    @property
    def store(self) -> StateStore:
        assert self._store is not None, "open the view first"
        return self._store

    @contextlib.contextmanager
    def opened(self) -> Iterator[ChaosView]:
        self._store = StateStore(self.state_path, readonly=True)
        try:
            yield self
        finally:
            self._store.close()
            self._store = None

    def scan_names(self) -> list[str]:
        return sorted(self.latest)

    def learn(self, scan: str) -> None:
        """Record what the dtn holds of `scan` now (a new version if its bytes changed)."""
        content = scan_content(self.where("dtn"), scan, directory=self.directory)
        if content:
            checksum = engine_checksum(content, directory=self.directory)
            self.versions[(scan, checksum)] = content
            self.latest[scan] = checksum

    def learn_dtn(self) -> None:
        for scan in list(self.latest):
            self.learn(scan)

    def holds(self, endpoint: str, scan: str, content: Content) -> bool:
        return holds_at(self.where(endpoint), scan, content)

    def intact_copies(self, scan: str, checksum: str) -> list[str]:
        content = self.versions[(scan, checksum)]
        return [e for e in ENDPOINTS if holds_at(self.where(e), scan, content)]

    def configured(self, endpoint: str) -> Path:
        return self.root / endpoint

    def busy(self, states: tuple[str, ...] = ("preparing", "active")) -> set[str]:
        """Scans with a delete still open (`preparing`/`active`, or only those `states`)."""
        if not self.state_path.exists():
            return set()
        with self.opened():
            tasks = self.store.tasks(states)
            ids = {aid for t in tasks if t.kind == "delete" for aid in t.action_ids}
            return {a.scan for a in map(self.store.get_action, ids) if a is not None}

    def changed(self) -> set[str]:
        """Scans that had more than one version (rewritten, truncated, or cut part-way)."""
        counts: dict[str, int] = {}
        for scan, _ in self.versions:
            counts[scan] = counts.get(scan, 0) + 1
        return {scan for scan, count in counts.items() if count > 1}

    def rotted(self, scan: str, endpoint: str) -> None:
        """The harness damaged the copy at `endpoint`: no receipt is owed for its versions."""
        for (name, _), where in self.verified.items():
            if name == scan:
                where.discard(endpoint)

    def check(self, *, settled: bool = False) -> None:
        """Every invariant of `safety_checks`, and: the latest version of every scan (verified
        or not yet) is held somewhere — the engine prunes the dtn only after a verified copy."""
        if self.state_path.exists():  # (a first pass killed early may not have made it)
            with self.opened():
                check_all(self, self.knowledge, settled=settled)
        for scan, checksum in self.latest.items():
            assert self.intact_copies(scan, checksum), (
                f"the latest version {checksum[:8]} of {scan!r} has no intact copy"
            )

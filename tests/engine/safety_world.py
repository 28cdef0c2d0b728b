"""A small beamline driven in-process for the safety property: the real engine, local folders, a
`FakeClock`, and the things users, filesystems and crashes do to it between passes.

The world keeps its own record of every scan *version* it ever wrote (the bytes, keyed by the
checksum the engine gives them) and of where the engine said it verified each one, so that the
checks in `safety_checks.py` compare the engine's claims with the bytes really on disk, never
with the engine's own bookkeeping alone.

"Unmounting" renames an endpoint's root away and leaves an empty directory (or, for an *alias*, a
symlink to another endpoint's root) where it was: the data still exists, on the storage the
engine cannot see. Crashes (`safety_crash.py`) abandon the engine objects; `restart` builds them
anew on the same state store, as a restarted process would.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.backends import Backends
from engine.clock import FakeClock
from engine.config import Config
from engine.model import ScanFile, scan_digest
from engine.reconciler import Reconciler
from engine.state import StateStore
from engine.storage.local_mover import LocalMover
from engine.workspace import LocalWorkspace, create_workspace
from tests.engine.safety_checks import (
    INTERRUPTED_DELETES_KEEP_VERSION,
    REPLACE_LAST_LOOK,
    Content,
    forget_dtn,
    held_as,
    holds_at,
)
from tests.engine.safety_decisions import Operators
from tests.engine.tally_oracle import audited_tallies, last_seq
from tests.engine_world import open_engine

ENDPOINTS = ("dtn", "cfs", "hpss")
START = datetime(2026, 3, 1, tzinfo=UTC)
ACQUIRED = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
FILE_NAMES = ("s0.h5", "scan 1.h5", "Ångström_2.h5")
DIR_NAMES = ("scan_0", "scan 1", "Ångström_2")


def engine_checksum(content: Content, *, directory: bool) -> str:
    """The checksum the engine gives these bytes (its version identity)."""
    if not directory:
        (data,) = content.values()
        return hashlib.md5(data).hexdigest()
    files = [
        ScanFile(path, len(data), 0.0, hashlib.md5(data).hexdigest())
        for path, data in content.items()
    ]
    return scan_digest("md5", files)


@dataclass
class World:
    root: Path
    directory: bool
    gated: bool  # deletes (and so replaces) need an operator's approval
    dtn_keep_days: int = 0
    cfs_keep_days: int = 0
    ws: LocalWorkspace = field(init=False)
    clock: FakeClock = field(init=False)
    config: Config = field(init=False)
    store: StateStore = field(init=False)
    backends: Backends = field(init=False)
    reconciler: Reconciler = field(init=False)
    # (scan, checksum) → the bytes of every version ever written at the dtn
    versions: dict[tuple[str, str], Content] = field(default_factory=dict)
    # (scan, checksum) → endpoints where the engine recorded a verified copy of it
    verified: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    unmounted: dict[str, str | None] = field(default_factory=dict)  # endpoint → alias target
    # Verified versions the world (rot, then a user's change at the dtn) destroyed.
    exempt: set[tuple[str, str]] = field(default_factory=set)
    passes: int = 0
    _writes: int = 0  # user writes so far (each gets its own mtime)
    _logging_before: int = 0
    crashes: int = 0
    log: list[str] = field(default_factory=list)  # what happened, for a failure's report
    false_receipts: list[str] = field(default_factory=list)  # found as they were written
    # The operators' decisions as the harness made them, checked at each delete submission.
    operators: Operators = field(default_factory=Operators)

    def __post_init__(self) -> None:
        # Thousands of passes: the store records what matters. Restored by `close`, so that
        # later tests' log capture (caplog) is unaffected.
        self._logging_before = logging.root.manager.disable
        logging.disable(logging.CRITICAL)
        self.ws = create_workspace(
            self.root,
            dtn_keep_days=self.dtn_keep_days,
            cfs_keep_days=self.cfs_keep_days,
            approval=("delete",) if self.gated else (),
            scan_unit="directory" if self.directory else "file",
            retry_base_seconds=1,
        )
        self.config = self.ws.config()
        self.clock = FakeClock(START)
        self._open()

    # ---- the engine, as one process ------------------------------------------------------
    def _open(self) -> None:
        engine = open_engine(self.config, clock=self.clock, user="bl931-test")
        self.store, self.backends, self.reconciler = (
            engine.store,
            engine.backends,
            engine.reconciler,
        )
        self._watch_receipts()
        self.operators.watch(self)

    def _watch_receipts(self) -> None:
        """Check each receipt at the moment it is written: the files it says were removed must
        really be gone from the endpoint's storage (a copy may put them back later)."""
        record = self.store.record_deletion

        def checked(
            scan: str,
            endpoint: str,
            aid: str,
            task: str | None,
            now: datetime,
            receipt: Any,
            **keywords: Any,
        ) -> None:
            content = self.versions.get((scan, receipt["acquisition"]["checksum"]), {})
            still = [
                path
                for path in receipt.get("removed", [])
                if path in content and self.holds(endpoint, scan, {path: content[path]})
            ]
            if still:
                self.false_receipts.append(
                    f"a receipt says {still} were removed from {endpoint}, but its storage "
                    f"still holds them: {receipt}"
                )
            # A delete that ran to its end in this pass relied on copies that hold its version
            # right now (after a crash, a copy may have rotted since: not checked then).
            relied = [c["endpoint"] for c in receipt["verified_copies"]]
            bad = [e for e in relied if content and not self.holds(e, scan, content)]
            if bad and "note" not in receipt and not receipt.get("partial"):
                self.false_receipts.append(
                    f"a delete at {endpoint} relied on {bad}, which do not hold its version's "
                    f"bytes: {receipt}"
                )
            record(scan, endpoint, aid, task, now, receipt, **keywords)

        self.store.record_deletion = checked  # type: ignore[method-assign]

    def _shut_down(self) -> None:
        self.backends.close()  # waits for copies still running in worker threads
        self.store.close()

    def close(self) -> None:
        self._shut_down()
        logging.disable(self._logging_before)

    def restart(self) -> None:
        """A new process on the same state store and folders."""
        self._shut_down()
        self._open()

    def run_pass(self, *, drain: bool = True) -> None:
        mark = last_seq(self.store)
        report = self.reconciler.reconcile_once(self.clock.now(), drain=drain)
        # The pass's own counts (the metrics') are what its audit rows record.
        assert report.actions == audited_tallies(self.store, mark), self.log[-20:]
        self._workers_done()
        self.passes += 1
        self.clock.advance(seconds=1)

    def _workers_done(self) -> None:
        """Wait until every in-process task's worker has stopped touching the files (recorded
        or not: a delete whose target cannot be listed stays open, and `drain` does not wait
        for it). The world's next step then sees the same files on every run of the same
        steps, which hypothesis needs: what the steps may do is drawn from what is there."""
        for mover in self.backends.movers.values():
            if isinstance(mover, LocalMover):
                with mover._lock:
                    ids = list(mover._tasks)
                for task_id in ids:
                    mover.wait(task_id)

    def approve_all(self) -> list[str]:
        plan = self.reconciler.dry_run(self.clock.now())
        ids = [a.id for a in plan.actions if a.requires_approval and not a.approved]
        self.operators.approve(self, ids)
        return ids

    # ---- where the bytes really are ------------------------------------------------------
    def configured(self, endpoint: str) -> Path:
        return self.ws.root / endpoint

    def physical(self, endpoint: str) -> Path:
        """The endpoint's real storage, wherever an unmount moved it."""
        if endpoint in self.unmounted:
            return self.ws.root / f"{endpoint}-away"
        return self.configured(endpoint)

    def content_at(self, endpoint: str, scan: str) -> Content:
        """Every regular file of `scan` at the endpoint's real storage."""
        top = self.physical(endpoint) / scan
        if not self.directory:
            return {scan: top.read_bytes()} if top.is_file() else {}
        out: Content = {}
        if top.is_dir():
            for path in sorted(top.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    out[path.relative_to(self.physical(endpoint)).as_posix()] = path.read_bytes()
        return out

    def holds(self, endpoint: str, scan: str, content: Content) -> bool:
        """Whether the endpoint's real storage holds every file of `content`, byte for byte
        (at the scan's path, or in a versioned object beside it on tape)."""
        return holds_at(self.physical(endpoint), scan, content)

    def intact_copies(self, scan: str, checksum: str) -> list[str]:
        content = self.versions[(scan, checksum)]
        return [e for e in ENDPOINTS if self.holds(e, scan, content)]

    # ---- what users do at the dtn --------------------------------------------------------
    def scan_names(self) -> tuple[str, ...]:
        return DIR_NAMES if self.directory else FILE_NAMES

    def at_dtn(self) -> list[str]:
        return [s for s in self.scan_names() if self.content_at("dtn", s)]

    def changeable(self) -> list[str]:
        """Scans a user may change now: all of them, but (while the known gap
        `INTERRUPTED_DELETES_KEEP_VERSION` stands) none with a delete still open."""
        if INTERRUPTED_DELETES_KEEP_VERSION:
            return list(self.scan_names())
        open_ids = {aid for t in self.store.tasks(("preparing", "active")) for aid in t.action_ids}
        busy = {a.scan for a in map(self.store.get_action, open_ids) if a is not None}
        return [s for s in self.scan_names() if s not in busy]

    def write(self, scan: str, files: list[bytes], *, fixed_mtime: bool = False) -> None:
        """A detector writes a (new) scan: temporary name, rename, a fresh mtime — or, with
        `fixed_mtime`, one timestamp for every scan (so a name written again with the same
        size looks unchanged but for its inode and ctime)."""
        base = self.physical("dtn")
        paths = [f"{scan}/frame_{i}.h5" for i in range(len(files))] if self.directory else [scan]
        for relpath, data in zip(paths, files, strict=True):
            target = base / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{target.name}.part")
            temp.write_bytes(data)
            os.replace(temp, target)
            if fixed_mtime:
                os.utime(target, (ACQUIRED, ACQUIRED))
            else:
                self._touch(target)
        self._learn_dtn(scan, f"write {scan} {[len(d) for d in files]}", user=True)

    def rewrite(self, scan: str, data: bytes, *, index: int, in_place: bool, keep: bool) -> None:
        """Someone rewrites one file of a scan: in place or by rename; with `keep`, the same
        size and mtime as before (only the content — and ctime — tell the change)."""
        old = self.content_at("dtn", scan)
        target = self.physical("dtn") / sorted(old)[index % len(old)]
        before = target.stat()
        if keep:
            data = (data * (before.st_size // max(1, len(data)) + 1))[: before.st_size]
            if data == target.read_bytes():
                data = bytes(b ^ 0xFF for b in data)
        if in_place:
            with open(target, "r+b") as fh:
                fh.truncate(0)
                fh.write(data)
        else:
            temp = target.with_name(f".{target.name}.part")
            temp.write_bytes(data)
            os.replace(temp, target)
        if keep:
            os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
        else:
            self._touch(target)
        self._learn_dtn(scan, f"rewrite {target.name} in_place={in_place} keep={keep}", user=True)

    def truncate(self, scan: str, *, every: bool, keep_mtime: bool) -> None:
        """A scan (or one of its files) emptied to zero bytes in place."""
        old = self.content_at("dtn", scan)
        files = sorted(old)
        for relpath in files if every else files[:1]:
            target = self.physical("dtn") / relpath
            before = target.stat()
            os.truncate(target, 0)
            if keep_mtime:
                os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
            else:
                self._touch(target)
        self._learn_dtn(scan, f"truncate every={every} keep_mtime={keep_mtime}", user=True)

    def add_file(self, scan: str, data: bytes) -> None:
        """A directory scan grows a file after it was copied (a new version with more files)."""
        old = self.content_at("dtn", scan)
        self.write_file(f"{scan}/extra_{len(old)}.h5", data)
        self._learn_dtn(scan, f"add a file to {scan}", user=True)

    def remove_file(self, scan: str) -> None:
        old = self.content_at("dtn", scan)
        files = sorted(old)
        (self.physical("dtn") / files[-1]).unlink()
        self._learn_dtn(scan, f"remove {files[-1]}", user=True)

    def write_file(self, relpath: str, data: bytes, endpoint: str = "dtn") -> None:
        target = self.physical(endpoint) / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self._touch(target)

    def _touch(self, path: Path) -> None:
        """A fresh mtime by the fake clock (never the real one: the test is date-independent),
        distinct from every earlier one and in the past (the inventory takes it in at once)."""
        self._writes += 1
        stamp = self.clock.now().timestamp() - 3600 + self._writes
        os.utime(path, (stamp, stamp))

    def _learn_dtn(self, scan: str, what: str | None = None, user: bool = False) -> None:
        """Record the dtn's content of `scan` as a version; after a user's change, what the
        world (not the engine) did to the versions the dtn held (`forget_dtn`)."""
        content = self.content_at("dtn", scan)
        checksum = engine_checksum(content, directory=self.directory) if content else None
        if what is not None:
            self.log.append(what)
        if checksum is not None:
            self.versions[(scan, checksum)] = content
        if user:
            forget_dtn(self, scan, checksum)

    def learn_dtn(self) -> None:
        """What the dtn holds now is a version too, even where the engine made it: a delete
        cut part-way leaves a directory scan with fewer files (a new version)."""
        for scan in self.scan_names():
            self._learn_dtn(scan)

    def rot_candidates(self) -> list[tuple[str, str, str]]:
        """(scan, checksum, endpoint): verified copies whose version another endpoint also
        holds intact, so that rot alone never loses a version (relying on the rotted copy
        might). Only cfs copies while `REPLACE_LAST_LOOK` is off: a replace at cfs relies on
        hpss without re-reading it (the known gap pinned in test_safety_regressions.py)."""
        endpoints = ("cfs", "hpss") if REPLACE_LAST_LOOK else ("cfs",)
        out = []
        for (scan, checksum), where in sorted(self.verified.items()):
            intact = self._standing_copies(scan, checksum)
            if len(intact) >= 2 and any(self.versions[(scan, checksum)].values()):
                out += [
                    (scan, checksum, e)
                    for e in endpoints
                    if e in where and e in intact and not self._sole_copy_of_a_version(scan, e)
                ]
        return out

    def _sole_copy_of_a_version(self, scan: str, endpoint: str) -> bool:
        """Whether `endpoint` holds the only intact copy of some version of `scan` (files shared
        between versions rot together: rotting them there would lose that version)."""
        return any(
            self._standing_copies(name, checksum) == [endpoint]
            for (name, checksum) in self.verified
            if name == scan
        )

    def _standing_copies(self, scan: str, checksum: str) -> list[str]:
        """Intact copies of a version that no receipt says were replaced: a directory scan's
        older version may still sit intact inside a copy a receipted replace wrote over (a
        replace removes nothing), but the engine no longer counts on it there, and a later
        prune of the newer version may remove those files. Rot may not leave a version with
        such copies only."""
        replaced = {
            (data["target"], data["old_checksum"])
            for data in (
                json.loads(row[0])
                for row in self.store.connection().execute(
                    "SELECT data FROM events WHERE scan = ? AND kind = 'copy.replaced'", (scan,)
                )
                if row[0]
            )
        }
        return [e for e in self.intact_copies(scan, checksum) if (e, checksum) not in replaced]

    def rot(self, scan: str, checksum: str, endpoint: str, at: int) -> None:
        """Flip a byte of one file of a verified copy, keeping its size and mtime (bit rot)."""
        content = self.versions[(scan, checksum)]
        files = [p for p, data in sorted(content.items()) if data]
        # Where the endpoint keeps this version: the scan's path, or a versioned tape object.
        name = held_as(self.physical(endpoint), scan, content) or scan
        path = self.physical(endpoint) / (name + files[at % len(files)][len(scan) :])
        before = path.stat()
        data = bytearray(path.read_bytes())
        data[at % len(data)] ^= 0xFF
        path.write_bytes(bytes(data))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        for (name, _), where in self.verified.items():
            if name == scan:  # the harness's damage: no receipt is owed for it
                where.discard(endpoint)
        self.log.append(f"rot {endpoint}:{path.relative_to(self.physical(endpoint))}")

    # ---- filesystems ----------------------------------------------------------------------
    def unmount(self, endpoint: str, alias: str | None = None) -> None:
        """The filesystem goes away: an empty mount point, or (alias) a symlink to another
        endpoint's root where it was."""
        os.rename(self.configured(endpoint), self.ws.root / f"{endpoint}-away")
        if alias is None:
            self.configured(endpoint).mkdir()
        else:
            os.symlink(self.configured(alias), self.configured(endpoint))
        self.unmounted[endpoint] = alias
        self.log.append(f"unmount {endpoint}" + (f" (alias of {alias})" if alias else ""))

    def remount(self, endpoint: str) -> list[str]:
        """Put the real filesystem back; returns what the engine left on the mount point."""
        placeholder = self.configured(endpoint)
        left: list[str] = []
        if placeholder.is_symlink():
            placeholder.unlink()
        else:
            left = sorted(p.relative_to(placeholder).as_posix() for p in placeholder.rglob("*"))
            shutil.rmtree(placeholder)
        os.rename(self.ws.root / f"{endpoint}-away", placeholder)
        del self.unmounted[endpoint]
        self.log.append(f"remount {endpoint}")
        return left

"""A seeded chaos harness: many real `--reconcile --once` passes against local endpoints while
roots vanish (missing, or an empty mount point), an endpoint's root is swapped for a symlink to
another's (an alias), disks fill, permissions fail, copies rot, users rewrite and truncate scans
at the dtn, and processes are killed at random points or right after a chosen step of a delete
(`crash_inject/delete_steps.py`). File scans or directory scans (`scan_unit`). With `gated`,
deletes need approval and an operator decides before each pass (`chaos_decisions.py`).

Everything random is drawn from one `random.Random(seed)`, and each pass's faults are written
to `Chaos.journal`, so a failing seed can be replayed and read. Between passes the harness
checks what must hold at every instant (`ChaosView.check`: every version the engine ever
verified, and the latest version of every scan, has an intact copy; every verified copy that
went is receipted or still in flight); at the end, after fault-free passes let the service
settle, it checks convergence, receipts, task history, temporary files and the store's
integrity.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.state import StateStore
from engine.workspace import LocalWorkspace, create_workspace
from tests.engine.safety_checks import held_as
from tests.service.chaos_decisions import Decider
from tests.service.chaos_versions import ChaosView
from tests.service.chaos_world import ENDPOINTS, WorldChanges

CLI = [sys.executable, "-m", "bl931tui"]
INJECT = Path(__file__).parent / "chaos_inject"
CRASH_INJECT = Path(__file__).parent / "crash_inject"
NAMES = ("scan {n:03d}.h5", "Ångström_{n:03d}.h5", "line{n:03d} two.h5", "s{n:03d}.h5")
DELETE_STEPS = ("prepared", "some_unlinked", "all_unlinked", "submitted", "before_receipt")


@dataclass
class PassRecord:
    number: int
    faults: list[str]
    returncode: int | None
    killed: bool

    def __str__(self) -> str:
        result = "killed" if self.killed else f"exit {self.returncode}"
        return f"pass {self.number}: {', '.join(self.faults) or 'no faults'} -> {result}"


@dataclass
class Faults:
    """What one pass's process suffers (the world's faults are applied when drawn)."""

    notes: list[str] = field(default_factory=list)
    injected: str | None = None  # disk faults (chaos_inject)
    kill_after: float | None = None  # SIGKILL after this many seconds
    crash_step: str | None = None  # death right after this step of a delete (delete_steps)


@dataclass
class Chaos(WorldChanges):
    root: Path
    seed: int
    scan_unit: str = "file"
    # Deletes gated by approval, and operator decisions drawn per pass (chaos_decisions.py).
    gated: bool = False
    decider: Decider | None = field(init=False, default=None)
    ws: LocalWorkspace = field(init=False)
    rng: random.Random = field(init=False)
    view: ChaosView = field(init=False)  # every version written, and where each was verified
    journal: list[PassRecord] = field(default_factory=list)
    scans_written: int = 0
    # Scans whose tape copy rotted: not rewritten while a replace has no last look
    # (`REPLACE_LAST_LOOK`: it would rely on the rotted copy).
    rotted_on_tape: set[str] = field(default_factory=set)
    changes: int = 0  # scans rewritten or truncated so far
    moves: int = 0  # endpoints unmounted or aliased so far
    # Endpoints moved away during a pass: endpoint → alias target (None: unmounted).
    moved: dict[str, str | None] = field(default_factory=dict)
    # With BL931_CHAOS_TRACE=1, the audit after every pass (for reading a failure's history).
    trace: list[tuple[int, dict[str, object]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.ws = create_workspace(
            self.root / "ws",
            dtn_keep_days=0,
            cfs_keep_days=0,
            approval=("delete",) if self.gated else (),
            retry_base_seconds=0.01,
            scan_unit=self.scan_unit,
            depth=3,
        )
        self.view = ChaosView(
            self.ws.root,
            self.ws.state_path,
            self.scan_unit == "directory",
            self.where,
            lambda: [str(r) for r in self.journal[-40:]],
        )
        if self.gated:
            self.decider = Decider(
                CLI, self.ws.config_path, self.ws.state_path, self.child_env, self.report
            )
        # Short back-offs: the harness runs passes back to back, not once a minute.
        text = self.ws.config_path.read_text("utf-8")
        text = text.replace("max_seconds = 60", "max_seconds = 0.2")
        text = text.replace(
            "max_deletes_per_pass = 1000",
            "max_deletes_per_pass = 1000\nendpoint_backoff_after = 3\n"
            "endpoint_backoff_seconds = 0.2\nendpoint_backoff_max_seconds = 0.5",
        )
        self.ws.config_path.write_text(text, "utf-8")

    # ---- the world --------------------------------------------------------------------
    @property
    def originals(self) -> dict[str, str]:
        """Scans whose bytes never changed (no rewrite, no cut) → their one version."""
        changed = self.view.changed()
        return {s: c for s, c in self.view.latest.items() if s not in changed}

    def good_copies(self, scan: str) -> list[str]:
        """Endpoints holding the latest version of the scan, byte for byte."""
        return self.view.intact_copies(scan, self.view.latest[scan])

    def write_scans(self, count: int) -> list[str]:
        written = []
        for _ in range(count):
            n = self.scans_written
            self.scans_written += 1
            name = NAMES[n % len(NAMES)].format(n=n)
            scan = f"2026/P{n % 3}/{name if self.scan_unit == 'file' else name[:-3]}"
            frames = (
                [scan]
                if self.scan_unit == "file"
                else [f"{scan}/frame_{i}.h5" for i in range(self.rng.randint(1, 3))]
            )
            for relpath in frames:
                size = self.rng.choice((512, 4096, 65_536, 1 << 20, 3 << 20))
                data = self.rng.randbytes(size // len(frames))
                self.ws.write_scan(relpath, data, mtime=datetime(2026, 1, 1, tzinfo=UTC))
            self.view.learn(scan)
            written.append(scan)
        return written

    def corrupt_one(self) -> str | None:
        """Rot one copy in place (same size and mtime) where another good copy keeps it safe.

        Only a copy nobody will read from again is chosen (hpss while cfs is good; cfs while
        hpss is good): rot at a copy's *source* is a person's problem by design (the copy
        refuses and holds), not something the service can converge on alone.
        """
        candidates = []
        for scan in sorted(self.view.latest):
            good = self.good_copies(scan)
            if "hpss" in good and "cfs" in good and any(self._latest(scan).values()):
                candidates += [(scan, e) for e in ("hpss", "cfs") if not self._last_copy(scan, e)]
        if not candidates:
            return None
        scan, endpoint = self.rng.choice(candidates)
        files = [f for f, data in self._latest(scan).items() if data]
        path = self.where(endpoint) / self.rng.choice(files)
        stat = path.stat()
        data = bytearray(path.read_bytes())
        data[self.rng.randrange(len(data))] ^= 0xFF
        path.write_bytes(bytes(data))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        self.view.rotted(scan, endpoint)
        if endpoint == "hpss":
            self.rotted_on_tape.add(scan)
        return f"corrupt {endpoint}:{scan}"

    def _last_copy(self, scan: str, endpoint: str) -> bool:
        """Whether `endpoint` holds the last intact copy of some version of the scan (an older
        version kept on tape beside the latest, or at cfs): rot there would be the harness
        destroying a version, not a fault the service must survive."""
        return any(
            self.view.intact_copies(name, checksum) == [endpoint]
            for name, checksum in self.view.versions
            if name == scan
        )

    # ---- passes -----------------------------------------------------------------------
    def child_env(self) -> dict[str, str]:
        """The environment of every child `bl931tui` (passes, audits, operator commands)."""
        return {**os.environ, "PYTHONUNBUFFERED": "1"}

    def _env(self, faults: str | None, crash_step: str | None, seed: int) -> dict[str, str]:
        env = self.child_env()
        if faults or crash_step:
            env["PYTHONPATH"] = os.pathsep.join(
                [str(INJECT), str(CRASH_INJECT), *filter(None, [env.get("PYTHONPATH")])]
            )
        if faults:
            env["BL931_CHAOS_FAULTS"] = faults
            env["BL931_CHAOS_SEED"] = str(seed)
        if crash_step:
            env["BL931_CRASH_AT_DELETE"] = crash_step
        return env

    def _draw_faults(self, number: int) -> Faults:
        """This pass's faults, applied to the world now (those of the process: in `Faults`)."""
        drawn = Faults()
        rng = self.rng
        if number < 3 or rng.random() < 0.25:
            drawn.notes.append(f"+{len(self.write_scans(rng.randint(1, 3)))} scans")
        if rng.random() < 0.25 and (changed := self.change_one()):
            drawn.notes.append(changed)
        # Moves are also forced late in a run that has not had its three (two unmounts, then an
        # alias): how far a SIGKILLed pass got changes what later draws find, so a seed alone
        # does not promise every kind of fault.
        late = number >= 20 and self.moves < 3
        if (rng.random() < 0.2 or late) and self._markers_written():
            endpoint, other = rng.sample(ENDPOINTS, 2)
            alias = other if self.moves % 3 == 2 else None  # unmounted twice, then an alias
            self.moves += 1
            self.move(endpoint, alias)
            drawn.notes.append(f"alias {endpoint}->{alias}" if alias else f"unmount {endpoint}")
        if rng.random() < 0.2:
            drawn.injected = "enospc:0.3,eacces:0.2"
            drawn.notes.append("disk faults")
        if rng.random() < 0.4 and (corrupted := self.corrupt_one()):
            drawn.notes.append(corrupted)
        death = rng.random()
        if death < 0.2:
            drawn.kill_after = rng.uniform(0.05, 0.5)
            drawn.notes.append(f"SIGKILL at {drawn.kill_after:.2f}s")
        elif death < 0.35:
            drawn.crash_step = rng.choice(DELETE_STEPS)
            drawn.notes.append(f"crash at delete step {drawn.crash_step}")
        return drawn

    def run_pass(self, number: int, *, chaotic: bool = True) -> PassRecord:
        # The operator decides first, while every endpoint is where the configuration says.
        decided: list[str] = []
        if self.decider is not None and chaotic:
            self.decider.draw(self.rng, self.audit()[1], decided)
        drawn = self._draw_faults(number) if chaotic else Faults()
        drawn.notes[:0] = decided
        if self.decider is not None:
            self.decider.before_pass()
        argv = [*CLI, "--config", str(self.ws.config_path), "--reconcile", "--once"]
        env = self._env(drawn.injected, drawn.crash_step, self.seed * 100_003 + number)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        killed = False
        try:
            timeout = drawn.kill_after if drawn.kill_after is not None else 120
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL: no handler, no cleanup, wherever the pass was
            _, stderr = proc.communicate()
            killed = True
        finally:
            self.remount_all()
        # A crash placed at a delete step exits 137; if the pass had no delete, it just ends.
        killed = killed or (drawn.crash_step is not None and proc.returncode == 137)
        record = PassRecord(number, drawn.notes, proc.returncode, killed)
        self.journal.append(record)
        text = stderr.decode("utf-8", "replace")
        # A root replaced by a symlink to another endpoint's root shows in the paths themselves:
        # the configuration is refused (78, naming both keys) and the pass does nothing.
        aliased = any(note.startswith("alias ") for note in drawn.notes)
        allowed = (0, 1, 78) if aliased else (0, 1)
        if not killed:
            assert proc.returncode in allowed, self.report(f"{record}: unexpected exit\n{text}")
            assert "Traceback" not in text, self.report(f"{record}: a crash\n{text}")
        if os.environ.get("BL931_CHAOS_TRACE"):
            self.trace.append((number, self.audit()[1]))
        if self.decider is not None:
            self.decider.check(sorted(self.view.latest))
        return record

    def check_no_scan_lost(self, *, settled: bool = False) -> None:
        """The invariants of `ChaosView.check` (every verified version, and the latest version
        of every scan, has an intact copy; verified copies that went are receipted)."""
        try:
            self.view.check(settled=settled)
        except AssertionError as exc:
            raise AssertionError(self.report(str(exc))) from None

    def audit(self) -> tuple[int, dict[str, object]]:
        done = subprocess.run(
            [*CLI, "--config", str(self.ws.config_path), "--dry-run", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            env=self.child_env(),
        )
        return done.returncode, json.loads(done.stdout)

    def operator_retries(self) -> None:
        """What a person does in the TUI for held failures: retry them.

        A prune is held, not run, when the copy it would delete no longer holds the acquisition's
        bytes (rot injected at cfs after the dtn copy is gone): the service never deletes bytes
        it cannot vouch for. The person restores that copy from a good one first, then retries.
        """
        store = StateStore(self.ws.state_path)
        try:
            failures = store.failures()
            held = [aid for aid, f in failures.items() if f.retry_at is None]
            for aid in held:
                action = store.get_action(aid)
                if (
                    action is not None
                    and action.target is not None
                    and "no longer holds the bytes" in failures[aid].message
                ):
                    self.restore(action.scan, action.target)
            if held:
                store.request_retry(held, "chaos-operator", datetime.now(UTC))
        finally:
            store.close()
        # Tape is never overwritten by the service: bytes there that are not the scan's (rot
        # injected at hpss) wait for a person, who checks them and restores a good copy.
        _, doc = self.audit()
        for blocked in doc.get("blocked", []):  # type: ignore[attr-defined]
            scan, endpoint = blocked["scan"], blocked["endpoint"]
            if (
                blocked["reason_code"] == "version_conflict"
                and scan in self.originals
                and (self.where(endpoint) / scan).exists()
                and endpoint not in self.good_copies(scan)
            ):
                self.restore(scan, endpoint)

    def restore(self, scan: str, endpoint: str) -> None:
        """Put a good copy's bytes (and mtime) back at `endpoint`, as an operator would."""
        good = self.good_copies(scan)
        assert good, self.report(f"no good copy of {scan!r} to restore from", scan)
        source_root, target_root = self.where(good[0]), self.where(endpoint)
        # On tape the latest version may be kept beside an older one, under a versioned name.
        content = self.view.versions[(scan, self.view.latest[scan])]
        name = held_as(source_root, scan, content) or scan
        sources = [source_root / name]
        if sources[0].is_dir():  # a directory scan: every file of it
            sources = sorted(p for p in sources[0].rglob("*") if p.is_file())
        for source in sources:
            relpath = source.relative_to(source_root).as_posix()
            target = target_root / (scan + relpath[len(name) :])
            stat = source.stat()
            target.write_bytes(source.read_bytes())
            os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    def settle(self, first: int, max_passes: int = 40) -> int:
        """Fault-free passes until the audit is in sync; returns how many it took.

        In sync: nothing to do (exit 0) — or nothing to do but the questions a changed scan
        leaves a person (`version_conflict` at write-once tape, a `version_suspect` notify),
        after the operator approved what awaited approval (a suspect version's copies).
        """
        for extra in range(max_passes):
            self.operator_retries()
            self.run_pass(first + extra, chaotic=False)
            code, doc = self.audit()
            if code == 0 or (code == 1 and self._only_version_questions(doc)):
                return extra + 1
            if any(a["requires_approval"] and not a["approved"] for a in doc["actions"]):
                self.operator_approves()
        code, doc = self.audit()
        raise AssertionError(self.report(f"not converged (audit exit {code}): {doc}"))

    def _only_version_questions(self, doc: dict[str, Any]) -> bool:
        changed = self.view.changed()
        settled = {"retention_not_reached", "on_hold", "rejected", "export_controlled"}
        return (
            not doc["actions"]
            and not doc.get("in_flight")  # (Globus tasks finish in a later pass)
            and not doc["errors"]
            # A changed directory scan pruned at cfs after its new version reached tape may
            # leave an older version's extra files there (a replace removes nothing): reported
            # (`foreign_files`, a notify) for a person, like the version questions.
            and all(
                a["code"] == "version_suspect"
                or (a["code"] == "foreign_files" and a["scan"] in changed)
                for a in doc["alert_details"]
            )
            and all(b["scan"] in changed or b["reason_code"] in settled for b in doc["blocked"])
        )

    def operator_approves(self) -> None:
        """What a person does after looking at a suspect version: approve its copies (and, in
        a gated run, the prunes that await approval)."""
        if self.decider is not None:
            self.decider.approve_all()
            return
        done = subprocess.run(
            [*CLI, "--config", str(self.ws.config_path), "--approve-all", "--yes"],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            env=self.child_env(),
        )
        assert done.returncode == 0, self.report(f"--approve-all failed: {done.stderr}")

    def history(self, scan: str) -> str:
        """The store's story of one scan: actions, events and receipts (for failure reports)."""
        store = StateStore(self.ws.state_path, readonly=True)
        try:
            lines = [
                f"  action {a.id} {a.kind.value} {a.source}->{a.target} {a.status} "
                f"{a.error_class} {a.error}"
                for a in store.actions_for_scan(scan)
            ]
            lines += [
                f"  {e['at']} {e['kind']} {e['action_id']} {e['message'][:160]}"
                for e in store.events(scan=scan)
            ]
            lines += [
                f"  receipt {r['endpoint']} {r['deleted_at']} {r['action_id']} task "
                f"{r['task_id']} {r.get('note', '')}"
                for r in store.receipts(scan)
            ]
            lines += [
                f"  task {t.submission_id} {t.kind} {t.source}->{t.target} {t.status} "
                f"created {t.created_at}"
                for t in store.tasks()
                if any(aid in {a.id for a in store.actions_for_scan(scan)} for aid in t.action_ids)
            ]
        finally:
            store.close()
        _, doc = self.audit()
        lines += [f"  audit: {b}" for b in doc.get("blocked", []) if b["scan"] == scan]  # type: ignore[union-attr, index]
        for number, traced in self.trace[-40:]:
            wanted = [
                f"{a['kind']}:{a['source']}->{a['target']}"
                for a in traced["actions"]  # type: ignore[attr-defined]
                if a["scan"] == scan
            ]
            blocked = [
                f"{b['kind']}@{b['endpoint']}:{b['reason_code']}"
                for b in traced["blocked"]  # type: ignore[attr-defined]
                if b["scan"] == scan
            ]
            lines.append(f"  after pass {number}: actions {wanted} blocked {blocked}")
        return "\n".join(lines)

    def report(self, message: str, scan: str | None = None) -> str:
        tail = "\n".join(str(r) for r in self.journal[-25:])
        story = f"\nhistory of {scan!r}:\n{self.history(scan)}" if scan else ""
        return f"{message}\nseed {self.seed}, last passes:\n{tail}{story}"

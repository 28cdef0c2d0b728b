"""A seeded chaos harness: many real `--reconcile --once` passes against local endpoints while
roots vanish, disks fill, permissions fail, copies rot and processes are killed at random points.

Everything random is drawn from one `random.Random(seed)`, and each pass's faults are written
to `Chaos.journal`, so a failing seed can be replayed and read. Between passes the harness
checks the one promise that must hold at every instant (some endpoint holds a good copy of
every scan); at the end, after fault-free passes let the service settle, it checks convergence,
receipts, task history, temporary files and the store's integrity.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from engine.state import StateStore
from engine.workspace import LocalWorkspace, create_workspace

CLI = [sys.executable, "-m", "bl931tui"]
INJECT = Path(__file__).parent / "chaos_inject"
ENDPOINTS = ("dtn", "cfs", "hpss")
NAMES = ("scan {n:03d}.h5", "Ångström_{n:03d}.h5", "line{n:03d} two.h5", "s{n:03d}.h5")


def md5(path: Path) -> str | None:
    try:
        return hashlib.md5(path.read_bytes()).hexdigest()
    except OSError:
        return None


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
class Chaos:
    root: Path
    seed: int
    ws: LocalWorkspace = field(init=False)
    rng: random.Random = field(init=False)
    originals: dict[str, str] = field(default_factory=dict)  # scan → md5 of its bytes
    journal: list[PassRecord] = field(default_factory=list)
    scans_written: int = 0
    # With BL931_CHAOS_TRACE=1, the audit after every pass (for reading a failure's history).
    trace: list[tuple[int, dict[str, object]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.ws = create_workspace(
            self.root / "ws",
            dtn_keep_days=0,
            cfs_keep_days=0,
            approval=(),
            retry_base_seconds=0.01,
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
    def away(self, endpoint: str) -> Path:
        return self.ws.root / f"{endpoint}-unmounted"

    def where(self, endpoint: str) -> Path:
        """The endpoint's root, wherever the harness moved it."""
        root = self.ws.root / endpoint
        return root if root.exists() else self.away(endpoint)

    def good_copies(self, scan: str) -> list[str]:
        want = self.originals[scan]
        return [e for e in ENDPOINTS if md5(self.where(e) / scan) == want]

    def write_scans(self, count: int) -> list[str]:
        written = []
        for _ in range(count):
            n = self.scans_written
            self.scans_written += 1
            scan = f"2026/11/P{n % 3}/{NAMES[n % len(NAMES)].format(n=n)}"
            size = self.rng.choice((512, 4096, 65_536, 1 << 20, 3 << 20))
            data = self.rng.randbytes(size)
            self.ws.write_scan(scan, data, mtime=datetime(2026, 1, 1, tzinfo=UTC))
            self.originals[scan] = hashlib.md5(data).hexdigest()
            written.append(scan)
        return written

    def corrupt_one(self) -> str | None:
        """Rot one copy in place (same size and mtime) where another good copy keeps it safe.

        Only a copy nobody will read from again is chosen (hpss while cfs is good; cfs while
        hpss is good): rot at a copy's *source* is a person's problem by design (the copy
        refuses and holds), not something the service can converge on alone.
        """
        candidates = []
        for scan in sorted(self.originals):
            good = self.good_copies(scan)
            if "hpss" in good and "cfs" in good:
                candidates += [(scan, "hpss"), (scan, "cfs")]
        if not candidates:
            return None
        scan, endpoint = self.rng.choice(candidates)
        path = self.where(endpoint) / scan
        stat = path.stat()
        data = bytearray(path.read_bytes())
        data[self.rng.randrange(len(data))] ^= 0xFF
        path.write_bytes(bytes(data))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        return f"corrupt {endpoint}:{scan}"

    # ---- passes -----------------------------------------------------------------------
    def _env(self, faults: str | None, seed: int) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if faults:
            env["PYTHONPATH"] = os.pathsep.join(
                [str(INJECT), *filter(None, [env.get("PYTHONPATH")])]
            )
            env["BL931_CHAOS_FAULTS"] = faults
            env["BL931_CHAOS_SEED"] = str(seed)
        return env

    def run_pass(self, number: int, *, chaotic: bool = True) -> PassRecord:
        faults: list[str] = []
        unmounted: str | None = None
        injected: str | None = None
        kill_after: float | None = None
        if chaotic:
            if number < 3 or self.rng.random() < 0.25:
                faults.append(f"+{len(self.write_scans(self.rng.randint(1, 3)))} scans")
            if self.rng.random() < 0.15:
                unmounted = self.rng.choice(ENDPOINTS)
                os.rename(self.ws.root / unmounted, self.away(unmounted))
                faults.append(f"unmount {unmounted}")
            if self.rng.random() < 0.2:
                injected = "enospc:0.3,eacces:0.2"
                faults.append("disk faults")
            if self.rng.random() < 0.4 and (corrupted := self.corrupt_one()):
                faults.append(corrupted)
            if self.rng.random() < 0.25:
                kill_after = self.rng.uniform(0.05, 0.5)
                faults.append(f"SIGKILL at {kill_after:.2f}s")
        argv = [*CLI, "--config", str(self.ws.config_path), "--reconcile", "--once"]
        env = self._env(injected, self.seed * 100_003 + number)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        killed = False
        try:
            _, stderr = proc.communicate(timeout=kill_after if kill_after is not None else 120)
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL: no handler, no cleanup, wherever the pass was
            _, stderr = proc.communicate()
            killed = True
        finally:
            if unmounted is not None:
                os.rename(self.away(unmounted), self.ws.root / unmounted)
        record = PassRecord(number, faults, proc.returncode, killed)
        self.journal.append(record)
        text = stderr.decode("utf-8", "replace")
        if not killed:
            assert proc.returncode in (0, 1), self.report(f"{record}: unexpected exit\n{text}")
            assert "Traceback" not in text, self.report(f"{record}: a crash\n{text}")
        if os.environ.get("BL931_CHAOS_TRACE"):
            self.trace.append((number, self.audit()[1]))
        return record

    def check_no_scan_lost(self) -> None:
        for scan in self.originals:
            assert self.good_copies(scan), self.report(f"no good copy of {scan!r}", scan)

    def audit(self) -> tuple[int, dict[str, object]]:
        done = subprocess.run(
            [*CLI, "--config", str(self.ws.config_path), "--dry-run", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
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
                and md5(self.where(endpoint) / scan) != self.originals[scan]
            ):
                self.restore(scan, endpoint)

    def restore(self, scan: str, endpoint: str) -> None:
        """Put a good copy's bytes (and mtime) back at `endpoint`, as an operator would."""
        good = self.good_copies(scan)
        assert good, self.report(f"no good copy of {scan!r} to restore from", scan)
        source = self.where(good[0]) / scan
        target = self.where(endpoint) / scan
        stat = source.stat()
        target.write_bytes(source.read_bytes())
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    def settle(self, first: int, max_passes: int = 40) -> int:
        """Fault-free passes until the audit is in sync; returns how many it took."""
        for extra in range(max_passes):
            self.operator_retries()
            self.run_pass(first + extra, chaotic=False)
            code, _ = self.audit()
            if code == 0:
                return extra + 1
        code, doc = self.audit()
        raise AssertionError(self.report(f"not converged (audit exit {code}): {doc}"))

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

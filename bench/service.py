"""Service benchmark: the steady pass against the full-rescan floor at 10k / 100k (/ 300k) scans,
the pass that finds 1,000 new scans, the service's RSS, and (optionally) the CPU of an idle service.

A local workspace is populated directly (the way a long-running beamline would look): 100k
small files on the DTN, hard-linked into CFS and HPSS (same bytes, same mtime), the scans and
their checksum evidence written to the state store in bulk. Warm-up passes then record the
replicas and register the scans in the local catalog, so the timed passes are true steady
state: nothing to copy, every delete still inside its retention period.

Each size runs in its own child process (so each RSS is that size's own), all in one run of
this script. The full-rescan floor is what any pass that looks at everything must pay: an
`os.scandir` walk of the three endpoint trees plus reading every state row (scans, replicas,
evidence) once; the steady pass is compared with it as a ratio measured in the same child.
Cyclic garbage collection during the steady passes is timed with `gc.callbacks`.

Run: `.venv/bin/python bench/service.py` (10k and 100k: minutes on a quiet machine, about 35
at load 7; `--with-300k` adds 300,000 scans: about three times the 100k child, and GBs of RSS;
`--full-every-pass` turns the incremental view off; `--new`, `--idle-seconds` (0: skipped, the
default), `--new-mib` (the size of each file of a second batch of `--new` scans, 1 MiB by
default, so that their checksum dominates; 0 skips it), `--dir`). The last line is `floor_s=…
pass_100k_s=… ratio_to_floor=… rss_100k_mb=… growth_100k_to_300k=… pass_after_1000_new_s=…
new_budget_s=… pass_after_1000_new_mib_s=… new_mib_budget_s=… new_mib=… load_avg_1m=…`
(growth: the 100k→300k ratio of pass time divided by the ratio of scans, 1.0 = linear; `n/a`
without `--with-300k`; budgets: the steady pass plus twice the time to checksum the new bytes;
the load average as the run ended).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.backends import build_backends
from engine.catalog.custody import initialise_catalog
from engine.catalog.factory import build_catalog
from engine.catalog.local import LocalCatalog
from engine.identity import IdentityCheck
from engine.incremental.view import IncrementalView
from engine.inventory.checksum import file_checksum
from engine.model import Level, Scan, ScanFile
from engine.observe import inventory_signature
from engine.reconciler import Reconciler
from engine.state import StateStore, iso
from engine.workspace import LocalWorkspace, create_workspace

PER_DIR = 1000
ACQUIRED = datetime(2026, 11, 1, tzinfo=UTC)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def scan_id(n: int) -> str:
    return f"2026/11/P{n // PER_DIR:04d}/scan_{n:06d}.h5"


def write_scans(
    ws: LocalWorkspace, first: int, count: int, *, link: bool, size: int = 0
) -> list[Scan]:
    """Write `count` one-file scans on the DTN (and hard links on CFS and HPSS if `link`):
    80 bytes each, or `size` bytes (one random block, made unique per scan by its header)."""
    stamp = ACQUIRED.timestamp()
    scans = []
    block = os.urandom(size) if size else b""
    for n in range(first, first + count):
        sid = scan_id(n)
        data = f"bl931 bench scan {n}\n".encode() * 4
        if size:
            data = (data + block)[:size]
        path = ws.dtn / sid
        if n % PER_DIR == 0 or n == first:
            for root in (ws.dtn, ws.cfs, ws.hpss) if link else (ws.dtn,):
                (root / sid).parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (stamp, stamp))
        if link:
            os.link(path, ws.cfs / sid)
            os.link(path, ws.hpss / sid)
        digest = hashlib.md5(data).hexdigest()
        scans.append(
            Scan(
                id=sid,
                files=(ScanFile(sid, len(data), stamp, digest),),
                acquired_at=ACQUIRED,
                checksum_algorithm="md5",
                checksum=digest,
            )
        )
    return scans


def populate(ws: LocalWorkspace, count: int) -> None:
    """Files on all three endpoints, scans and checksum evidence in the store, in bulk."""
    scans = write_scans(ws, 0, count, link=True)
    now = datetime.now(UTC)
    store = StateStore(ws.state_path)
    try:
        # The endpoints' identity markers, as the first pass of a new store writes them.
        check = IdentityCheck(ws.config(), store, may_initialise=True)
        for name in check.local_endpoints():
            check.initialise(name, user="bench", now=now)
        store.upsert_scans(scans, now)
        rows = [
            (
                s.id,
                endpoint,
                int(Level.CHECKSUM),
                "md5",
                s.checksum,
                "bench",
                inventory_signature(s),
                "rehash",
                iso(now),
            )
            for s in scans
            for endpoint in ("cfs", "hpss")
        ]
        with store.transaction() as conn:
            # No identity: evidence from before identities, stamped by the first pass.
            conn.executemany(
                """INSERT INTO evidence(scan, endpoint, level, algorithm, value, task_id,
                     signature, how, verified_at) VALUES (?,?,?,?,?,?,?,?,?)""",
                rows,
            )
        # What the deployment's first pass recorded: the endpoints' markers and the catalog's
        # identity (this store is new, as a first pass's is).
        config = ws.config()
        identity = IdentityCheck(config, store, may_initialise=True)
        for name in identity.local_endpoints():
            identity.initialise(name, user="bench", now=now)
        catalog = build_catalog(config)
        assert isinstance(catalog, LocalCatalog)
        initialise_catalog(catalog, store, user="bench", now=now)
    finally:
        store.close()
    # The folders of a beamline's older scans (and the endpoints' roots, with their identity
    # markers) last changed when those scans were written.
    stamp = ACQUIRED.timestamp()
    for root in (ws.dtn, ws.cfs, ws.hpss):
        for folder, _dirs, _files in os.walk(root):
            os.utime(folder, (stamp, stamp))
        for entry in os.scandir(root):
            if entry.is_file(follow_symlinks=False):
                os.utime(entry.path, (stamp, stamp))


def timed_pass(reconciler: Reconciler) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    report = reconciler.reconcile_once()
    return time.perf_counter() - started, report.summary()


def idle_cpu(ws: LocalWorkspace, seconds: float) -> float:
    """CPU % (of one core) of `bl931tui --reconcile` between passes, watcher and metrics on."""
    log_path = ws.root / "service.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bl931tui",
                "--config",
                str(ws.config_path),
                "--reconcile",
                "--interval",
                str(max(3600.0, seconds * 10)),
                "--metrics-port",
                "0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=Path(__file__).resolve().parent.parent,
        )
        try:
            deadline = time.monotonic() + 600
            while not re.search(rb"pass done in", log_path.read_bytes()):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"service did not finish a pass:\n{log_path.read_text()}")
                time.sleep(0.2)
            time.sleep(2)  # let the watcher finish registering its directories
            before, start = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(seconds)
            used, elapsed = cpu_seconds(proc.pid) - before, time.monotonic() - start
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
    return 100.0 * used / elapsed


def floor_seconds(ws: LocalWorkspace) -> float:
    """The full-rescan floor: scandir the three trees and read every state row once."""
    started = time.perf_counter()
    for root in (ws.dtn, ws.cfs, ws.hpss):
        pending = [os.fspath(root)]
        while pending:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    else:
                        entry.stat(follow_symlinks=False)
    conn = sqlite3.connect(ws.state_path)
    try:
        for table in ("scans", "replicas", "evidence"):
            for _row in conn.execute(f"SELECT * FROM {table}"):
                pass
    finally:
        conn.close()
    return time.perf_counter() - started


class GcTimer:
    """Seconds spent in cyclic garbage collection while enabled (via `gc.callbacks`)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0
        self.on = False

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if not self.on:
            return
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start


def one_size(args: argparse.Namespace) -> dict[str, float]:
    """Build one workspace of `args.scans` scans and measure it (runs in a child process)."""
    base = Path(tempfile.mkdtemp(prefix="bl931-bench-service-", dir=args.dir))
    out: dict[str, float] = {"scans": args.scans}
    try:
        ws = create_workspace(base / "ws", quiet_seconds=0, watch="inotify")
        t0 = time.perf_counter()
        populate(ws, args.scans)
        log(f"[{args.scans}] populated in {time.perf_counter() - t0:.1f}s")

        config = ws.config()
        store = StateStore(config.state.path)
        backends = build_backends(config)
        timer = GcTimer()
        gc.callbacks.append(timer)
        try:
            reconciler = Reconciler(config, store, backends)
            if not args.full_every_pass:  # the service's passes (bl931tui/service.py)
                reconciler.incremental = IncrementalView(config.safety.full_walk_seconds)
            for i in range(4):  # warm-up: replicas recorded, catalog registered and updated
                seconds, summary = timed_pass(reconciler)
                reconciler.executor.drain()
                busy = {k: v for k, v in summary.items() if v and k != "blocked"}
                log(f"[{args.scans}] warm-up pass {i + 1}: {seconds:.2f}s {busy}")
            floors = [floor_seconds(ws) for _ in range(3)]
            steady = []
            timer.on = True
            for i in range(3):
                quiet = reconciler.quiet.quiet if reconciler.quiet is not None else 0
                seconds, summary = timed_pass(reconciler)
                steady.append(seconds)
                kind = "quiet" if reconciler.quiet and reconciler.quiet.quiet > quiet else "full"
                log(f"[{args.scans}] steady pass {i + 1} ({kind}): {seconds:.4f}s")
                assert summary["copy"] == summary["register"] == summary["update_catalog"] == 0
            timer.on = False
            if reconciler.incremental is not None:
                reconciler.incremental.last_full = None  # the periodic full walk, forced
                out["full_walk_pass_s"], _ = timed_pass(reconciler)
                log(f"[{args.scans}] full-walk pass: {out['full_walk_pass_s']:.3f}s")
            out["rss_mb"] = rss_mb()
            out["floor_s"] = statistics.median(floors)
            out["pass_s"] = statistics.median(steady)
            out["gc_s"] = timer.seconds / len(steady)
            log(
                f"[{args.scans}] floor {out['floor_s']:.3f}s, steady {out['pass_s']:.3f}s "
                f"(gc {out['gc_s']:.3f}s per pass), RSS {out['rss_mb']:.0f} MB"
            )
            if args.new:
                # The next pass after 1,000 scans landed: walk, hash and register them, plan
                # and submit their copies (the copies themselves run after the pass).
                new = write_scans(ws, args.scans, args.new, link=False)
                deltas = reconciler.quiet.deltas if reconciler.quiet is not None else 0
                seconds_new, summary = timed_pass(reconciler)
                out["delta_pass"] = int(
                    reconciler.quiet is not None and reconciler.quiet.deltas > deltas
                )
                assert summary["new_scans"] == args.new, summary
                started = time.perf_counter()
                for scan in new:
                    file_checksum(ws.dtn / scan.id, "md5")
                out["checksum_new_s"] = time.perf_counter() - started
                out["pass_new_s"] = seconds_new
                log(
                    f"[{args.scans}] pass finding {args.new} new scans "
                    f"({'a delta pass' if out['delta_pass'] else 'a full pass'}): {seconds_new:.3f}s "
                    f"(checksum of their bytes alone {out['checksum_new_s']:.3f}s, "
                    f"copies submitted={summary['submitted']})"
                )
                for _ in range(4):  # settle again (copies, archive, catalog) before idling
                    reconciler.executor.drain()
                    timed_pass(reconciler)
                reconciler.executor.drain()
            if args.new and args.new_mib:
                # The same with beamline-sized files (`--new-mib` MiB each), so the checksum of
                # the new bytes dominates; written just before the pass (in the page cache, as
                # a detector's fresh files are), and hashed again after it for the budget.
                size = int(args.new_mib * 2**20)
                new = write_scans(ws, args.scans + args.new, args.new, link=False, size=size)
                deltas = reconciler.quiet.deltas if reconciler.quiet is not None else 0
                seconds_big, summary = timed_pass(reconciler)
                out["delta_pass_mib"] = int(
                    reconciler.quiet is not None and reconciler.quiet.deltas > deltas
                )
                assert summary["new_scans"] == args.new, summary
                reconciler.executor.drain()  # the copies it submitted, not timed beside them
                started = time.perf_counter()
                for scan in new:
                    file_checksum(ws.dtn / scan.id, "md5")
                out["checksum_new_mib_s"] = time.perf_counter() - started
                out["pass_new_mib_s"] = seconds_big
                log(
                    f"[{args.scans}] pass finding {args.new} new {args.new_mib:g} MiB scans "
                    f"({'a delta pass' if out['delta_pass_mib'] else 'a full pass'}): "
                    f"{seconds_big:.3f}s (checksum of their bytes alone "
                    f"{out['checksum_new_mib_s']:.3f}s, copies submitted={summary['submitted']})"
                )
        finally:
            gc.callbacks.remove(timer)
            backends.close()
            store.close()
        if args.idle_seconds:
            out["idle_cpu_pct"] = idle_cpu(ws, args.idle_seconds)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return out


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-300k", action="store_true", help="also measure 300,000 scans")
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument(
        "--new-mib",
        type=float,
        default=1.0,
        help="size of each file of the second batch of new scans (0: skip that batch)",
    )
    parser.add_argument("--idle-seconds", type=float, default=0.0)
    parser.add_argument(
        "--dir", type=Path, help="where to build the workspaces (default: a temp dir)"
    )
    parser.add_argument(
        "--full-every-pass",
        action="store_true",
        help="no incremental view: every pass reads every file (the behaviour before it)",
    )
    parser.add_argument("--scans", type=int, help=argparse.SUPPRESS)  # one size, in a child
    args = parser.parse_args()
    if args.scans:
        print(json.dumps(one_size(args)), flush=True)
        return

    sizes = [10_000, 100_000] + ([300_000] if args.with_300k else [])
    results: dict[int, dict[str, float]] = {}
    for size in sizes:
        command = [sys.executable, __file__, "--scans", str(size)]
        command += ["--new", str(args.new if size == 100_000 else 0)]
        command += ["--new-mib", str(args.new_mib)]
        command += ["--idle-seconds", str(args.idle_seconds if size == 100_000 else 0)]
        if args.dir:
            command += ["--dir", str(args.dir)]
        if args.full_every_pass:
            command.append("--full-every-pass")
        done = subprocess.run(command, stdout=subprocess.PIPE, check=True, text=True)
        results[size] = json.loads(done.stdout.strip().splitlines()[-1])

    print(
        f"{'scans':>8} {'floor_s':>8} {'pass_s':>8} {'ratio':>6} {'gc_s':>6} {'rss_mb':>7} "
        f"{'full_walk_pass_s':>16}"
    )
    for size, r in results.items():
        ratio = r["pass_s"] / r["floor_s"]
        print(
            f"{size:>8} {r['floor_s']:>8.3f} {r['pass_s']:>8.3f} {ratio:>6.3f} "
            f"{r['gc_s']:>6.3f} {r['rss_mb']:>7.0f} {r.get('full_walk_pass_s', float('nan')):>16.3f}"
        )
    big = results[100_000]
    budget = big["pass_s"] + 2 * big["checksum_new_s"] if args.new else float("nan")
    if args.new:
        print(
            f"pass after {args.new} new: {big['pass_new_s']:.3f}s; "
            f"target ≤ steady + 2 × checksum = {budget:.3f}s"
        )
    budget_mib = float("nan")
    if "pass_new_mib_s" in big:
        budget_mib = big["pass_s"] + 2 * big["checksum_new_mib_s"]
        print(
            f"pass after {args.new} new {args.new_mib:g} MiB scans: {big['pass_new_mib_s']:.3f}s; "
            f"target ≤ steady + 2 × checksum = {budget_mib:.3f}s"
        )
    if "idle_cpu_pct" in big:
        print(f"idle service: {big['idle_cpu_pct']:.2f}% of one core over {args.idle_seconds:g}s")
    growth_10k = (big["pass_s"] / results[10_000]["pass_s"]) / 10
    rss_growth_10k = (big["rss_mb"] / results[10_000]["rss_mb"]) / 10
    print(f"growth 10k→100k (1.0 = linear): pass {growth_10k:.2f}, RSS {rss_growth_10k:.2f}")
    growth_300k = "n/a"
    if 300_000 in results:
        huge = results[300_000]
        growth_300k = f"{(huge['pass_s'] / big['pass_s']) / 3:.2f}"
        rss_300k = (huge["rss_mb"] / big["rss_mb"]) / 3
        print(f"growth 100k→300k (1.0 = linear): pass {growth_300k}, RSS {rss_300k:.2f}")
    print(
        f"floor_s={big['floor_s']:.3f} pass_100k_s={big['pass_s']:.3f} "
        f"ratio_to_floor={big['pass_s'] / big['floor_s']:.3f} rss_100k_mb={big['rss_mb']:.0f} "
        f"growth_100k_to_300k={growth_300k} pass_after_1000_new_s="
        f"{big.get('pass_new_s', float('nan')):.3f} new_budget_s={budget:.3f} "
        f"pass_after_1000_new_mib_s={big.get('pass_new_mib_s', float('nan')):.3f} "
        f"new_mib_budget_s={budget_mib:.3f} new_mib={args.new_mib:g} "
        f"load_avg_1m={os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()

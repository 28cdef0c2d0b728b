"""Service benchmark: steady-state pass time and memory at 100,000 scans, the pass that finds
1,000 new scans, and the CPU of an idle service.

A local workspace is populated directly (the way a long-running beamline would look): 100k
small files on the DTN, hard-linked into CFS and HPSS (same bytes, same mtime), the scans and
their checksum evidence written to the state store in bulk. Warm-up passes then record the
replicas and register the scans in the local catalog, so the timed passes are true steady
state: nothing to copy, every delete still inside its retention period.

Run: `.venv/bin/python bench/service.py` (about 3 minutes; `--scans`, `--new`, `--idle-seconds`,
`--dir`). The last line is `pass_100k_s=… pass_after_1000_new_s=… rss_100k_mb=… idle_cpu_pct=…`.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.backends import build_backends
from engine.identity import IdentityCheck
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


def write_scans(ws: LocalWorkspace, first: int, count: int, *, link: bool) -> list[Scan]:
    """Write `count` one-file scans on the DTN (and hard links on CFS and HPSS if `link`)."""
    stamp = ACQUIRED.timestamp()
    scans = []
    for n in range(first, first + count):
        sid = scan_id(n)
        data = f"bl931 bench scan {n}\n".encode() * 4
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
    finally:
        store.close()


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument(
        "--dir", type=Path, help="where to build the workspace (default: a temp dir)"
    )
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bl931-bench-service-", dir=args.dir))
    try:
        ws = create_workspace(base / "ws", quiet_seconds=0, watch="inotify")
        t0 = time.perf_counter()
        populate(ws, args.scans)
        print(f"populated {args.scans} scans in {time.perf_counter() - t0:.1f}s", flush=True)

        config = ws.config()
        store = StateStore(config.state.path)
        backends = build_backends(config)
        try:
            reconciler = Reconciler(config, store, backends)
            for i in range(4):  # warm-up: replicas recorded, catalog registered and updated
                seconds, summary = timed_pass(reconciler)
                reconciler.executor.drain()
                busy = {k: v for k, v in summary.items() if v and k != "blocked"}
                print(f"warm-up pass {i + 1}: {seconds:.2f}s {busy}", flush=True)
            steady = []
            for i in range(3):
                gc.collect()
                seconds, summary = timed_pass(reconciler)
                steady.append(seconds)
                print(f"steady pass {i + 1}: {seconds:.2f}s blocked={summary['blocked']}")
                assert summary["copy"] == summary["register"] == summary["update_catalog"] == 0
            rss = rss_mb()
            pass_steady = statistics.median(steady)

            # The service's next pass after 1,000 scans landed: walk, hash and register them,
            # plan and submit their copies (the copies themselves run after the pass).
            write_scans(ws, args.scans, args.new, link=False)
            seconds_new, summary = timed_pass(reconciler)
            print(
                f"pass finding {args.new} new scans: {seconds_new:.2f}s "
                f"(new_scans={summary['new_scans']}, copies submitted={summary['submitted']})"
            )
            assert summary["new_scans"] == args.new
            for _ in range(4):  # settle again (copies, archive, catalog) before idling
                reconciler.executor.drain()
                seconds, summary = timed_pass(reconciler)
            reconciler.executor.drain()
        finally:
            backends.close()
            store.close()

        idle = idle_cpu(ws, args.idle_seconds)
        print(f"idle service: {idle:.2f}% of one core over {args.idle_seconds:g}s", flush=True)
        print(
            f"pass_100k_s={pass_steady:.2f} pass_after_1000_new_s={seconds_new:.2f} "
            f"rss_100k_mb={rss:.0f} idle_cpu_pct={idle:.2f}"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

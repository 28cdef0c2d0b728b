"""The live inventory watcher: burst completeness, idle cost and completion latency.

Three measurements against a real watchdog observer on a temporary directory:

1. **Burst**: 10,000 one-file scans written into 100 folders created the same instant (the
   case where inotify loses close events and the folder's watch comes late). Time until every
   scan is declared complete and then inventoried by `walk_inventory` (checksums included),
   and how many were missed (never inventoried; target 0). Scans found by a walk rather than
   by an event are reported separately (`missed_by_events`).
2. **Idle CPU**: a fresh watcher over the 10,000-file tree, once the scans its start-up walk
   found recent have settled, with nothing written for 60 s: process CPU time / wall time
   (target < 1 % of a core).
3. **Latency**: directory scans written frame by frame; time from the last write until the
   watcher declares the scan complete, minus `quiet_seconds` (the quiescence path, which every
   other path is faster than; target <= 2 s). The worst of several trials.

Run from the repository root:

    .venv/bin/python bench/watcher.py             # about 90 s

The last line is machine-readable:
`burst_files=10000 missed=0 idle_cpu_pct=<%> latency_over_quiet_s=<s>`.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from engine.config import InventoryConfig
from engine.inventory.walk import walk_inventory
from engine.inventory.watcher import ScanWatcher
from engine.layout import ScanLayout
from engine.storage.local import LocalStorage


def wait_until(predicate: object, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(step)
    return bool(predicate())  # type: ignore[operator]


def watcher(root: Path, **inventory: object) -> ScanWatcher:
    config = InventoryConfig(**inventory)  # type: ignore[arg-type]
    return ScanWatcher(root, ScanLayout.from_config(config), config, name="bench")


def burst(root: Path, files: int, folders: int, quiet: float) -> tuple[float, float, int, int]:
    """Returns (seconds to all complete, seconds to all inventoried, missed, missed by events)."""
    per_folder = files // folders
    expected: set[str] = set()
    with watcher(root, quiet_seconds=quiet, rescan_minutes=0.25) as w:
        started = time.monotonic()
        for d in range(folders):
            folder = root / "2026" / f"run_{d:03d}"
            folder.mkdir(parents=True)
            for n in range(per_folder):
                path = folder / f"scan_{n:05d}.h5"
                path.write_bytes(b"frame %d %d\n" % (d, n) * 8)
                expected.add(f"2026/run_{d:03d}/scan_{n:05d}.h5")
        written = time.monotonic() - started
        wait_until(lambda: expected <= set(w.completed()), timeout=120)
        complete_s = time.monotonic() - started
        result = walk_inventory(
            LocalStorage("bench", root),
            ScanLayout(),
            algorithm="md5",
            quiet_seconds=3600,  # only the watcher's declarations make these fresh scans complete
            now=datetime.now(UTC),
            known={},
            declared_complete=w.completed(),
        )
        inventoried_s = time.monotonic() - started
        stats = w.stats()
    missed = len(expected - set(result.scans))
    print(
        f"burst: {files} files written in {written:.2f}s; all complete after {complete_s:.2f}s, "
        f"inventoried after {inventoried_s:.2f}s; missed={missed}, "
        f"found by walks instead of events={stats.missed_by_events}, events={stats.events}"
    )
    return complete_s, inventoried_s, missed, stats.missed_by_events


def idle_cpu(root: Path, seconds: float, mode: str) -> float:
    """Percent of one core the watcher uses over `seconds` with nothing written."""
    with watcher(root, quiet_seconds=30, watch=mode) as w:
        # The tree was just written: let the start-up walk's recent scans settle first.
        wait_until(lambda: w.stats().walks >= 1 and not w.pending(), timeout=120)
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(seconds)
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - wall0
    pct = 100 * cpu / wall
    print(f"idle ({mode}): {cpu:.3f}s CPU over {wall:.1f}s = {pct:.2f}% of a core")
    return pct


def latency(root: Path, trials: int, quiet: float) -> float:
    """Worst (complete - last write - quiet) over `trials` directory scans."""
    worst = 0.0
    scans = root / "latency"
    scans.mkdir()
    with watcher(scans, scan="directory", quiet_seconds=quiet) as w:
        wait_until(lambda: w.stats().walks >= 1, timeout=10)
        for trial in range(trials):
            folder = scans / f"scan_{trial:02d}"
            folder.mkdir()
            for frame in range(5):
                if frame:
                    time.sleep(0.2)
                (folder / f"frame_{frame}.tif").write_bytes(b"x" * 65536)
            last_write = time.monotonic()
            wait_until(lambda f=folder.name: f in w.completed(), timeout=quiet + 30, step=0.01)
            over = time.monotonic() - last_write - quiet
            worst = max(worst, over)
    print(f"latency: worst of {trials} directory scans = quiet_seconds + {worst:.2f}s")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--folders", type=int, default=100)
    parser.add_argument("--quiet", type=float, default=2.0, help="quiet_seconds for burst/latency")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--poll-idle", action="store_true", help="also measure polling idle CPU")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bl931-watch-") as tmp:
        root = Path(tmp) / "dtn"
        root.mkdir()
        _, _, missed, _ = burst(root, args.files, args.folders, args.quiet)
        idle = idle_cpu(root, args.idle_seconds, "inotify")
        if args.poll_idle:
            idle_cpu(root, args.idle_seconds, "poll")
        worst = latency(Path(tmp), args.trials, args.quiet)
    print(
        f"burst_files={args.files} missed={missed} idle_cpu_pct={idle:.2f} "
        f"latency_over_quiet_s={worst:.2f}"
    )


if __name__ == "__main__":
    main()

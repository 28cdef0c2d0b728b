"""Bundling 10,000 small scans on a tape endpoint (local runner, htar/hsi shims).

Measures: bundles and tape objects made (vs one object per scan with per-file archiving), the
bundle build's throughput as a ratio to plain `tar` of the same files, and the time to plan a
pass with every scan waiting for its bundle (`close_after_days = 14`, the engine's own planner
and tape hook, in process). Last line `key=value`.

    python bench/tape.py [--scans 10000]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from engine.backends import build_backends
from engine.reconciler import Reconciler
from engine.state import StateStore
from engine.storage.tape_local import SHIMS
from engine.workspace import create_workspace


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scans", type=int, default=10_000)
    args = parser.parse_args()
    rng = random.Random(931)
    with tempfile.TemporaryDirectory() as tmp:
        ws = create_workspace(Path(tmp) / "ws", hpss_kind="tape", close_after_days=14)
        when = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
        names = []
        total = 0
        for n in range(args.scans):
            rel = f"2026/03/ALS-{n % 7}/scan_{n:05d}.h5"
            size = rng.randint(1_000, 500_000)
            ws.write_scan(rel, rng.randbytes(size), mtime=when, endpoint="cfs")
            names.append(rel)
            total += size
        # Plain tar of the same files.
        listfile = Path(tmp) / "members"
        listfile.write_text("\n".join(names) + "\n")
        t0 = time.perf_counter()
        subprocess.run(
            ["tar", "-cf", str(Path(tmp) / "plain.tar"), "-T", str(listfile)],
            cwd=ws.cfs,
            check=True,
        )
        tar_s = time.perf_counter() - t0
        # The bundle job as the mover writes it: checksums, htar -Hcrc -Hverify, -tvf.
        from engine.storage.tape_script import Member, archive_script

        members = []
        for rel in names:
            data = (ws.cfs / rel).read_bytes()
            members.append(
                Member(
                    rel,
                    rel,
                    len(data),
                    when,
                    hashlib.md5(data).hexdigest(),
                    "htar",
                    "/2026-1/bench-p001.tar",
                )
            )
        script = archive_script(str(ws.cfs), "/2026-1/bench-p001.tar", "md5", members, {"bench": 1})
        env = {"PATH": f"{SHIMS}:/usr/bin:/bin", "HPSS_ROOT": str(ws.hpss)}
        t0 = time.perf_counter()
        script_file = Path(tmp) / "job.sh"
        script_file.write_text(script, "utf-8")
        done = subprocess.run(["bash", str(script_file)], env=env, capture_output=True, text=True)
        bundle_s = time.perf_counter() - t0
        assert done.returncode == 0, done.stderr[-2000:]
        objects = len([p for p in ws.hpss.rglob("*") if p.is_file() and p.suffix == ".tar"])
        # Planning a pass with every scan waiting for its bundle.
        config = ws.config()
        store = StateStore(config.state.path)
        backends = build_backends(config)
        rec = Reconciler(config, store, backends)
        # The inventory (dtn) holds the same scans; cfs holds copies to be verified first, so
        # the first pass plans dtn → cfs; the hpss copies wait for their bundle.
        for rel in names:
            (ws.dtn / rel).parent.mkdir(parents=True, exist_ok=True)
            (ws.dtn / rel).hardlink_to(ws.cfs / rel)
        rec.reconcile_once(drain=True)  # dtn → cfs (links: same bytes), verified
        seen = rec.observe(datetime.now(UTC))
        t0 = time.perf_counter()
        plan = rec.make_plan(seen, datetime.now(UTC))
        plan_s = time.perf_counter() - t0
        waiting = sum(1 for b in plan.blocked if b.reason_code == "waiting_for_bundle")
        backends.close()
        store.close()
    print(
        f"scans={args.scans} bytes={total} bundles=1 tape_objects={objects} per_file_objects={args.scans}"
    )
    print(f"tar_s={tar_s:.2f} bundle_job_s={bundle_s:.2f} plan_s={plan_s:.2f} waiting={waiting}")
    print(
        f"bundles=1 tape_objects={objects} per_file_objects={args.scans} "
        f"build_vs_tar={bundle_s / tar_s:.1f} plan_waiting_s={plan_s:.2f}"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()

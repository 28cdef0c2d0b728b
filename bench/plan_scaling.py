"""Plan time for 10k and 100k synthetic scans (target: ≤ 1 s at 100k, growth ≤ 12× from 10k).

The inventory mixes every stage of the lifecycle — new scans, copies pending, archived scans
awaiting prune, pruned scans — on the production policy shape (dtn → cfs → hpss, deletes gated),
so every rule of the planner runs. Only `plan()` is timed (best of 3); building inputs is not.
It runs with cyclic garbage collection paused, as the reconciler runs it (`engine/gc_pause.py`).

Run: python bench/plan_scaling.py
"""

from __future__ import annotations

import gc
import random
import time
from datetime import UTC, datetime, timedelta

from engine.gc_pause import paused_gc
from engine.model import CatalogView, EndpointObservation, Level, Replica, Scan, ScanFile
from engine.planner import PlanInput, plan
from engine.policy import Policy, RetentionRule

NOW = datetime(2027, 6, 1, tzinfo=UTC)
POLICY = Policy(
    inventory_endpoint="dtn",
    endpoints=("dtn", "cfs", "hpss"),
    copies=(("dtn", "cfs"), ("cfs", "hpss")),
    retention={
        "dtn": RetentionRule(180, ("cfs",), Level.CHECKSUM),
        "cfs": RetentionRule(730, ("hpss",), Level.CHECKSUM),
    },
    tape=frozenset({"hpss"}),
    max_deletes_per_pass=1000,
)


def synthetic_input(count: int, seed: int = 931) -> PlanInput:
    rng = random.Random(seed)
    drawn = []
    for i in range(count):
        acquired = NOW - timedelta(days=rng.uniform(0, 1000))
        sid = f"{acquired:%Y/%m}/ALS-{i % 97:05d}/scan_{i:07d}.h5"
        drawn.append((sid, acquired, f"{rng.getrandbits(128):032x}", rng.random()))
    # The state store loads scans ordered by id (its primary key), the order the planner visits
    # them in; the values are built in that order here too.
    drawn.sort()
    scans: dict[str, Scan] = {}
    replicas: dict[str, dict[str, Replica]] = {name: {} for name in POLICY.endpoints}
    registered: dict[str, frozenset[str]] = {}
    for sid, acquired, checksum, stage in drawn:
        scans[sid] = Scan(
            sid,
            (ScanFile(sid, 1 << 20, acquired.timestamp(), checksum),),
            acquired,
            "md5",
            checksum,
        )
        holders = (
            ["dtn"]
            if stage < 0.2
            else ["dtn", "cfs"]
            if stage < 0.4
            else ["dtn", "cfs", "hpss"]
            if stage < 0.8
            else ["cfs", "hpss"]
        )
        for name in holders:
            replicas[name][sid] = Replica(sid, name, Level.CHECKSUM, 1 << 20, 1)
        if stage >= 0.4:
            registered[sid] = frozenset(holders)
    observations = {
        name: EndpointObservation(name, ok=True, replicas=reps, previously_present=frozenset(reps))
        for name, reps in replicas.items()
    }
    return PlanInput(
        policy=POLICY,
        scans=scans,
        observations=observations,
        now=NOW,
        catalog=CatalogView(enabled=True, locations=registered),
    )


def best_of(inp: PlanInput, runs: int = 3) -> tuple[float, int, int]:
    times = []
    actions = blocked = 0
    for _ in range(runs):
        gc.collect()  # free the previous run's plan before the clock starts, not inside it
        with paused_gc():
            start = time.perf_counter()
            result = plan(inp)
            times.append(time.perf_counter() - start)
        actions, blocked = len(result.actions), len(result.blocked)
        del result
    return min(times), actions, blocked


def main() -> None:
    figures = {}
    for count in (10_000, 100_000):
        inp = synthetic_input(count)
        seconds, actions, blocked = best_of(inp)
        figures[count] = seconds
        print(
            f"{count:>7} scans: plan {seconds:.3f}s, {actions} actions, {blocked} blocked "
            f"({seconds / count * 1e6:.1f} µs/scan)"
        )
    growth = figures[100_000] / figures[10_000]
    print(
        f"plan_10k_s={figures[10_000]:.3f} plan_100k_s={figures[100_000]:.3f} "
        f"growth_10k_to_100k={growth:.1f}"
    )


if __name__ == "__main__":
    main()

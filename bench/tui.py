"""TUI at scale: first paint, keystroke-to-repaint and memory with 10,000 and 100,000 scans.

Each size runs in its own child process (so RSS is that size's alone): a state store is filled
with the `populate_large` scenario mix, the app starts headless at 160×48, and we time
- first paint: app start → the first rendered update with rows (the newest page; the full read follows),
- full read: app start → every scan in the table,
- keystroke: a `down` / `pagedown` key event → the compositor's next rendered update (median
  over 40 presses; includes Textual's own frame pacing),
- filter: one typed filter character → the filtered rows on screen (runs in a worker),
- RSS after the full read,
- refresh: the read model brought up to date (`bl931tui.incremental.RowCache`) after a
  heartbeat-only change (what a quiet service pass writes) and after 100 changed scans, beside
  a full re-read (`load_snapshot`) of the same store; with the rows each rebuilt.

Run: `.venv/bin/python bench/tui.py` (add `--sizes 10000` for a quick run). The last line is
`first_paint_100k_s=… keystroke_100k_ms=… rss_100k_mb=… refresh_quiet_100k_ms=…
refresh_100_changed_100k_ms=… full_read_100k_s=…`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure(count: int) -> dict[str, float]:
    from textual import events

    from bl931tui.widgets.virtual_table import VirtualTable
    from tests.tui.scenarios import build_large

    with tempfile.TemporaryDirectory(prefix="bl931-bench-tui-") as scratch:
        started = time.perf_counter()
        scenario = build_large(Path(scratch) / "ws", count)
        populate_s = time.perf_counter() - started
        app = scenario.app()
        painted = asyncio.Event()
        paints: list[float] = []
        display = app._display

        def spy(screen: object, renderable: object) -> None:
            """The compositor has rendered an update: the moment a terminal would get it."""
            display(screen, renderable)  # type: ignore[arg-type]
            if renderable is not None:
                paints.append(time.perf_counter())
                painted.set()

        app._display = spy  # type: ignore[method-assign]

        async def next_paint(after: float) -> float:
            while not paints or paints[-1] < after:
                painted.clear()
                await asyncio.wait_for(painted.wait(), 30)
            return next(p for p in paints if p >= after)

        t0 = time.perf_counter()
        async with app.run_test(size=(160, 48)) as pilot:
            table = app.scans_screen.query_one(VirtualTable)
            while not table.rows:
                await asyncio.sleep(0.001)
            first_paint = await next_paint(time.perf_counter()) - t0
            while len(table.rows) < count:
                await asyncio.sleep(0.005)
            full_read = await next_paint(time.perf_counter()) - t0
            await app.workers.wait_for_complete()
            await pilot.pause()
            rss = rss_mb()

            async def timed(key: str, character: str | None = None) -> float:
                begin = time.perf_counter()
                app.post_message(events.Key(key, character))
                painted_at = await next_paint(begin)
                await pilot.pause()
                return (painted_at - begin) * 1000

            downs = [await timed("down") for _ in range(40)]
            pages = [await timed("pagedown") for _ in range(40)]
            await pilot.press("slash")
            await pilot.pause()
            begin = time.perf_counter()
            app.post_message(events.Key("z", "z"))  # matches no generated name
            while table.rows:
                await asyncio.sleep(0.001)
            filter_ms = (await next_paint(time.perf_counter()) - begin) * 1000
        refresh = measure_refresh(scenario)
    return {
        "scans": count,
        "populate_s": populate_s,
        "first_paint_s": first_paint,
        "full_read_s": full_read,
        "keystroke_ms": statistics.median(downs),
        "keystroke_p95_ms": sorted(downs)[int(len(downs) * 0.95) - 1],
        "pagedown_ms": statistics.median(pages),
        "filter_ms": filter_ms,
        "rss_mb": rss,
        **refresh,
    }


def measure_refresh(scenario: Any) -> dict[str, float]:
    """Refresh times of the read model after a quiet pass and after 100 scans changed."""
    from datetime import timedelta

    from bl931tui.incremental import RowCache
    from bl931tui.readmodel import load_snapshot
    from engine.model import Level
    from engine.policy import Policy
    from engine.state import ReplicaRow, StateStore
    from tests.tui.scenarios import NOW, USER

    policy = Policy.from_config(scenario.config)
    writer = StateStore(scenario.store_path)
    reader = StateStore(scenario.store_path, readonly=True)
    cache = RowCache()
    now = NOW
    started = time.perf_counter()
    cache.snapshot(reader, policy, now)
    first_s = time.perf_counter() - started

    def timed(step: timedelta) -> tuple[float, int]:
        nonlocal now
        now += step
        begin = time.perf_counter()
        cache.snapshot(reader, policy, now)
        return (time.perf_counter() - begin) * 1000, cache.rebuilt

    # A quiet pass: the heartbeat and the endpoints' health times, nothing else.
    writer.beat(now + timedelta(seconds=30), pass_finished_at=now, last_ok_pass_at=now)
    for endpoint in policy.endpoints:
        writer.endpoint_ok(endpoint, now + timedelta(seconds=30))
    quiet_ms, quiet_rows = timed(timedelta(seconds=30))
    # 100 scans changed: 50 copies verified at hpss, 50 holds placed.
    changed = scenario.scans[-100:]
    rows = {s.id: ReplicaRow(Level.CHECKSUM, s.size, 1, "sig-bench", now) for s in changed[:50]}
    writer.replace_replicas("hpss", rows, [])
    for scan in changed[50:]:
        writer.place_hold(scan.id, "bench", USER, now)
    changed_ms, changed_rows = timed(timedelta(seconds=30))
    begin = time.perf_counter()
    load_snapshot(reader, policy, now)
    full_s = time.perf_counter() - begin
    writer.close()
    reader.close()
    return {
        "refresh_first_s": first_s,
        "refresh_quiet_ms": quiet_ms,
        "refresh_quiet_rows": quiet_rows,
        "refresh_changed_ms": changed_ms,
        "refresh_changed_rows": changed_rows,
        "refresh_full_s": full_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(asyncio.run(measure(args.one))))
        return
    results = {}
    for count in args.sizes:
        child = subprocess.run(
            [sys.executable, __file__, "--one", str(count)],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        results[count] = figures
        print(
            f"{count:>7,} scans: first paint {figures['first_paint_s']:.3f} s, "
            f"full read {figures['full_read_s']:.2f} s, "
            f"keystroke {figures['keystroke_ms']:.1f} ms (p95 {figures['keystroke_p95_ms']:.1f}), "
            f"pagedown {figures['pagedown_ms']:.1f} ms, filter {figures['filter_ms']:.0f} ms, "
            f"RSS {figures['rss_mb']:.0f} MB (store filled in {figures['populate_s']:.1f} s)"
        )
        print(
            f"{'':>7}  refresh: quiet pass {figures['refresh_quiet_ms']:.1f} ms "
            f"({figures['refresh_quiet_rows']} rows rebuilt), 100 changed scans "
            f"{figures['refresh_changed_ms']:.1f} ms ({figures['refresh_changed_rows']} rows), "
            f"full re-read {figures['refresh_full_s']:.2f} s"
        )
    big = results.get(100_000) or results[max(results)]
    print(
        f"first_paint_100k_s={big['first_paint_s']:.3f} "
        f"keystroke_100k_ms={big['keystroke_ms']:.1f} rss_100k_mb={big['rss_mb']:.0f} "
        f"refresh_quiet_100k_ms={big['refresh_quiet_ms']:.1f} "
        f"refresh_100_changed_100k_ms={big['refresh_changed_ms']:.1f} "
        f"full_read_100k_s={big['refresh_full_s']:.2f}"
    )


if __name__ == "__main__":
    main()

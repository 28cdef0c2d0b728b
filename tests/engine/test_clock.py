"""Time is one dependency: only `engine/clock.py` reads the system clock, and the engine runs at
any date a test chooses."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.workspace import create_workspace
from tests.conftest import MakeEngine

ENGINE = Path(__file__).resolve().parents[2] / "engine"

# Every way Python code reads or waits on the system clock.
CLOCK_READS = re.compile(
    r"\b(?:datetime\.(?:now|utcnow|today)|date\.today|time\.(?:time|time_ns|monotonic|"
    r"monotonic_ns|perf_counter|perf_counter_ns|sleep|localtime|gmtime|ctime))\s*\("
)


def test_only_the_clock_module_reads_the_system_clock() -> None:
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        if path.name == "clock.py" and path.parent == ENGINE:
            continue
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if CLOCK_READS.search(code):
                offenders.append(f"{path.relative_to(ENGINE.parent)}:{number}: {line.strip()}")
    assert not offenders, "direct clock reads outside engine/clock.py:\n" + "\n".join(offenders)


def test_the_grep_would_catch_a_clock_read() -> None:
    assert CLOCK_READS.search("x = datetime.now(UTC)")
    assert CLOCK_READS.search("deadline = time.monotonic() + 5")
    assert not CLOCK_READS.search("now = self.clock.now()")


@pytest.mark.parametrize(
    "start",
    [datetime(2001, 1, 1, tzinfo=UTC), datetime(2099, 12, 31, 23, 0, tzinfo=UTC)],
    ids=["past", "future"],
)
def test_a_whole_lifecycle_runs_at_any_date(
    tmp_path: Path, start: datetime, make_engine: MakeEngine
) -> None:
    """Copies (with their deadlines), verification and prunes happen at the clock's date, far
    from the real one, in both directions."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1, cfs_keep_days=1000)
    ws.write_scan("2026/s0.h5", os.urandom(64), mtime=start - timedelta(days=3))
    engine = make_engine(ws.config(), start=start)
    clock, store, reconciler = engine.clock, engine.store, engine.reconciler
    for _ in range(4):
        report = reconciler.reconcile_once(drain=True)
        assert report.ok, report.plan.errors
        store.approve(
            [a.id for a in report.plan.actions if a.requires_approval],
            "operator",
            clock.now(),
        )
        clock.advance(minutes=1)
    assert not (ws.dtn / "2026/s0.h5").exists()
    assert (ws.cfs / "2026/s0.h5").exists() and (ws.hpss / "2026/s0.h5").exists()
    events = store.events(scan="2026/s0.h5", limit=100)
    assert events and all(str(e["at"]).startswith(str(start.year)) for e in events)

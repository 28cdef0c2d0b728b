"""The service's passes against SciCat with short-lived tokens: it converges and deletes proceed.

One process (the same reconciler, catalog and session across passes, as `--reconcile` keeps them),
a `FakeClock` shared with the fake SciCat, and a token that lives 10 minutes while passes are an
hour apart: every pass would start on an expired token if the session were not refreshed. With a
backend ≤ 5.1 an expired token reads as anonymous (the list answers `200 []`), with ≥ 5.2 it is
401 `SESSION_EXPIRED`; both must end with every scan registered and the dtn pruned.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.catalog.pid_book import StorePidBook
from engine.clock import FakeClock
from engine.workspace import create_workspace
from tests.conftest import MakeEngine
from tests.fakes.scicat_api import FakeScicat

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeScicat]:
    with FakeScicat(clock=clock, token_ttl_seconds=600) as server:
        yield server


@pytest.mark.parametrize("expired_status", [403, 401], ids=["anonymous-v4", "session-expired-v5"])
def test_short_tokens_do_not_stop_convergence_or_deletes(
    tmp_path: Path,
    fake: FakeScicat,
    clock: FakeClock,
    expired_status: int,
    make_engine: MakeEngine,
) -> None:
    fake.expired_status = expired_status
    ws = create_workspace(tmp_path, dtn_keep_days=0, cfs_keep_days=3650, approval=())
    text = ws.config_path.read_text("utf-8").replace(
        'kind = "local"\npath = "state/catalog.json"',
        'kind = "scicat"\npath = "state/catalog.json"\ncreation_location = "ALS 9.3.1"\n'
        'principal_investigator = "Jane Doe"',
    )
    ws.config_path.write_text(text, "utf-8")
    for i in range(3):
        ws.write_scan(f"2026/11/scan {i}.h5", bytes([i]) * 100, mtime=START.timestamp() - 3600)
    config = ws.config()
    env = {
        "SCICAT_URL": fake.base_url,
        "SCICAT_USERNAME": "ingestor",
        "SCICAT_PASSWORD": fake.users["ingestor"],
    }
    engine = make_engine(config, clock=clock, environ=env, user="test")
    store, reconciler = engine.store, engine.reconciler
    reports = []
    for _ in range(6):
        # As the service loop does, on the same objects; drained so that no local delete
        # is still running when the next pass lists the dtn (no real timing in the test).
        reports.append(reconciler.reconcile_once(drain=True))
        clock.advance(3600)
    assert all(r.ok for r in reports), [r.summary() for r in reports]
    assert len(fake.datasets) == 3  # each registered once
    assert sorted(p.name for p in (ws.root / "dtn" / "2026" / "11").iterdir()) == []
    assert len(StorePidBook(store).all()) == 3
    # The session was always renewed in time: the backend never saw a stale token.
    assert [r.status for r in fake.requests if r.status in (401, 403)] == []

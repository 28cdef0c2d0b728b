"""Blast radius: an endpoint that keeps failing is backed off; the rest keep working."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from engine.backends import Backends, build_backends
from engine.errors import EndpointUnavailable
from engine.layout import ScanLayout
from engine.metrics import ServiceMetrics
from engine.reconciler import Reconciler
from engine.state import StateStore
from engine.storage.base import ScanListing, Storage
from engine.workspace import create_workspace
from tests.conftest import MakeEngine

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class CountingStorage:
    """A storage that counts its listings and fails them on demand (a remote filesystem that
    stops answering; everything else passes through)."""

    def __init__(self, inner: Storage, calls: Counter[str], failing: set[str]) -> None:
        self._inner = inner
        self._calls = calls
        self._failing = failing

    def list_scans(
        self, layout: ScanLayout, wanted: Collection[str] | None = None
    ) -> dict[str, ScanListing]:
        self._calls[self._inner.name] += 1
        if self._inner.name in self._failing:
            raise EndpointUnavailable(self._inner.name, "listing timed out; answer missing")
        return self._inner.list_scans(layout, wanted=wanted)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_repeated_listing_failures_open_the_breaker_with_a_growing_interval(
    tmp_path: Path, make_engine: MakeEngine
) -> None:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0)
    for i in range(3):
        ws.write_scan(f"2026/s{i}.h5", os.urandom(100), mtime=T0 - timedelta(days=1))
    config = ws.config()
    assert config.safety.endpoint_backoff_after == 3
    calls: Counter[str] = Counter()
    failing: set[str] = set()

    def counting(backends: Backends) -> None:
        for name in ("cfs", "hpss"):
            backends.storages[name] = CountingStorage(backends.storages[name], calls, failing)  # type: ignore[assignment]

    # One clock for the reconciler and the movers: their deadlines are judged at the test's time.
    engine = make_engine(config, start=T0, prepare=counting)
    store, reconciler = engine.store, engine.reconciler
    reconciler.reconcile_once(T0, drain=True)
    failing.add("hpss")
    for minute in (1, 2, 3):  # three failures in a row: the breaker opens
        report = reconciler.reconcile_once(T0 + timedelta(minutes=minute), drain=True)
        assert [e.endpoint for e in report.plan.errors] == ["hpss"]
    assert calls["hpss"] == 4
    health = store.endpoint_health()["hpss"]
    assert health["consecutive_failures"] == 3

    # Within the back-off: hpss is not listed, reported unknown with its last error; cfs is
    # still listed and its copies still run.
    cfs_before = calls["cfs"]
    report = reconciler.reconcile_once(T0 + timedelta(minutes=3, seconds=30), drain=True)
    assert calls["hpss"] == 4 and calls["cfs"] == cfs_before + 1
    (error,) = report.plan.errors
    assert error.endpoint == "hpss" and "not listed until" in error.message
    assert "missing" in error.message  # the last real error travels with it
    assert not any(a.kind.value == "delete" and a.target == "cfs" for a in report.plan.actions)
    assert store.endpoint_health()["hpss"]["consecutive_failures"] == 3  # a skip is no failure

    # The audit, run by a person, always looks for real.
    reconciler.dry_run(T0 + timedelta(minutes=3, seconds=40))
    assert calls["hpss"] == 5

    # After 60 s it is tried again; failing once more doubles the interval to 120 s.
    reconciler.reconcile_once(T0 + timedelta(minutes=4, seconds=1), drain=True)
    assert calls["hpss"] == 6 and store.endpoint_health()["hpss"]["consecutive_failures"] == 4
    reconciler.reconcile_once(T0 + timedelta(minutes=5, seconds=30), drain=True)
    assert calls["hpss"] == 6

    # Answering again: the next try succeeds, the breaker closes and the work resumes.
    failing.discard("hpss")
    report = reconciler.reconcile_once(T0 + timedelta(minutes=6, seconds=2), drain=True)
    assert calls["hpss"] == 7 and report.ok
    assert store.endpoint_health()["hpss"]["consecutive_failures"] == 0
    assert sorted(p.name for p in (ws.hpss / "2026").iterdir()) == [f"s{i}.h5" for i in range(3)]


def test_metrics_registries_are_isolated_and_follow_the_report(tmp_path: Path) -> None:
    ws = create_workspace(tmp_path / "ws")
    for i in range(2):
        ws.write_scan(f"2026/s{i}.h5", b"z" * 10)
    config = ws.config()
    store = StateStore(config.state.path)
    backends = build_backends(config)
    try:
        report = Reconciler(config, store, backends).reconcile_once()
    finally:
        backends.close()
        store.close()
    one, other = ServiceMetrics(), ServiceMetrics()
    one.observe_pass(report)
    text = generate_latest(one.registry).decode()
    assert 'bl931_bytes_pending{endpoint="cfs"} 20.0' in text  # two copies wanted at cfs
    assert 'bl931_actions_total{kind="copy",outcome="submitted"} 2.0' in text
    assert 'bl931_scans{state="pending"} 2.0' in text  # as planned, before submission
    assert 'bl931_passes_total{result="ok"} 1.0' in text
    assert 'bl931_passes_total{result="ok"} 0.0' in generate_latest(other.registry).decode()


def test_a_mounted_globus_endpoint_is_still_observed_through_globus(tmp_path: Path) -> None:
    """The inventory walks the local mount; the endpoint's own observation stays Globus's."""
    from engine.config import parse_config
    from tests.fakes.transfer_api import FakeTransferAPI

    with FakeTransferAPI() as fake:
        dtn = fake.add_collection(tmp_path / "dtn")
        cfs = fake.add_collection(tmp_path / "cfs")
        raw = tmp_path / "dtn" / "raw"
        (raw / "2026").mkdir(parents=True)
        (tmp_path / "cfs" / "raw").mkdir(parents=True)
        (raw / "2026/s0.h5").write_bytes(b"x" * 10)
        os.utime(raw / "2026/s0.h5", (1.7e9, 1.7e9))
        config = parse_config(
            {
                "state": {"path": str(tmp_path / "state.sqlite")},
                "inventory": {"quiet_seconds": 0},
                "endpoints": {
                    "dtn": {"kind": "globus", "collection": dtn, "root": "/raw", "path": str(raw)},
                    "cfs": {"kind": "globus", "collection": cfs, "root": "/raw"},
                },
                "copy": [{"from": "dtn", "to": "cfs"}],
                "catalog": {"kind": "none"},
            }
        )
        backends = build_backends(config, environ=fake.environ)
        store = StateStore(config.state.path)
        try:
            fake.deny_consent(dtn)  # Globus refuses dtn; the local mount still reads fine
            report = Reconciler(config, store, backends).reconcile_once()
        finally:
            store.close()
            backends.close()
    assert "dtn" in {e.endpoint for e in report.plan.errors}
    assert report.new_scans == 1  # the walk of the mount did its part

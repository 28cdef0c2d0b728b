"""After a crash: what the dead process did is recognised as the engine's own doing."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from engine.backends import build_backends
from engine.reconciler import Reconciler
from engine.state import StateStore
from engine.workspace import create_workspace


def test_a_delete_batch_interrupted_by_a_crash_is_recorded_not_alarmed(tmp_path: Path) -> None:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=1000, approval=())
    scans = [f"2026/s{i:02d}.h5" for i in range(10)]
    for scan in scans:
        ws.write_scan(scan, os.urandom(256), mtime=datetime(2026, 1, 1, tzinfo=UTC))
    config = ws.config()
    store = StateStore(config.state.path)
    first = build_backends(config)
    reconciler = Reconciler(config, store, first)
    for _ in range(6):  # copied to cfs and hpss, catalogued: the dtn prune is due
        if sum(a.kind.value == "delete" for a in reconciler.dry_run().actions) == 10:
            break
        reconciler.reconcile_once(drain=True)
    report = reconciler.reconcile_once()  # the dtn deletes are submitted, not waited for
    assert report.submitted == 10
    first.close()  # the worker threads finish the deletes; the "process" dies unrecorded
    assert not any((ws.dtn / scan).exists() for scan in scans)
    assert all(store.receipts(scan) == [] for scan in scans)

    second = build_backends(config)  # a new process: its mover never heard of those tasks
    try:
        report = Reconciler(config, store, second).reconcile_once(drain=True)
    finally:
        second.close()
    assert report.plan.alerts == ()  # not "10 of 10 replicas vanished at dtn"
    assert not any(b.reason_code == "missing_fraction_exceeded" for b in report.plan.blocked)
    for scan in scans:
        (receipt,) = store.receipts(scan)
        assert receipt["endpoint"] == "dtn" and "confirmed absent" in receipt["note"]
        assert receipt["verified_copies"][0]["level"] == "checksum"
    store.close()

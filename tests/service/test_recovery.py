"""After a crash: what the dead process did is recognised as the engine's own doing."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.backends import build_backends
from engine.reconciler import Reconciler
from engine.state import StateStore
from engine.storage.base import TaskRequest, TaskStatus
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


class StallingDeletes:
    """The local mover, except that deletes at one endpoint are accepted and never finish."""

    def __init__(self, inner: Any, endpoint: str) -> None:
        self._inner = inner
        self._endpoint = endpoint
        self.stalled: list[str] = []

    def submit(self, request: TaskRequest) -> str:
        if request.kind == "delete" and request.target == self._endpoint:
            self.stalled.append(f"stalled-{request.submission_id}")
            return self.stalled[-1]
        return str(self._inner.submit(request))

    def poll(self, task_id: str) -> TaskStatus:
        if task_id in self.stalled:
            return TaskStatus(task_id, "active")
        return self._inner.poll(task_id)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_copy_stays_while_a_delete_relying_on_it_is_in_flight(tmp_path: Path) -> None:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0, approval=())
    scan = "2026/s.h5"
    ws.write_scan(scan, os.urandom(256), mtime=datetime(2026, 1, 1, tzinfo=UTC))
    config = ws.config()
    store = StateStore(config.state.path)
    backends = build_backends(config)
    mover = StallingDeletes(backends.movers["local"], "dtn")
    backends.movers["local"] = mover  # type: ignore[assignment]
    try:
        reconciler = Reconciler(config, store, backends)
        for _ in range(8):
            reconciler.reconcile_once(drain=False)
            reconciler.executor.drain(timeout_seconds=0)
            if mover.stalled:
                break
        assert mover.stalled, "the dtn delete was never submitted"
        for _ in range(3):  # the dtn delete never finishes: the cfs copy it relies on stays
            report = reconciler.reconcile_once()
            assert not any(
                a.kind.value == "delete"
                and a.target == "cfs"
                and a.id in {r.id for r in store.actions(["submitted", "succeeded"])}
                for a in report.plan.actions
            )
        assert (ws.cfs / scan).exists() and (ws.hpss / scan).exists()
        assert store.receipts(scan) == []
    finally:
        backends.close()
        store.close()

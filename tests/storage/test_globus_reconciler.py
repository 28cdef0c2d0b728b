"""The reconciler drives Globus endpoints across processes: submit in one, verify in the next."""

from __future__ import annotations

import os
from pathlib import Path

from engine.backends import build_backends
from engine.config import parse_config
from engine.model import Level
from engine.reconciler import Reconciler
from engine.state import StateStore
from tests.fakes.transfer_api import FakeTransferAPI


def test_copy_submitted_in_one_process_is_verified_by_the_next(tmp_path: Path) -> None:
    with FakeTransferAPI() as fake:
        dtn = fake.add_collection(tmp_path / "dtn")
        cfs = fake.add_collection(tmp_path / "cfs")
        raw = tmp_path / "dtn" / "raw"
        (raw / "2026").mkdir(parents=True)
        (tmp_path / "cfs" / "raw").mkdir(parents=True)
        for i in range(3):
            scan = raw / f"2026/s{i}.h5"
            scan.write_bytes(b"x" * (i + 5))
            os.utime(scan, (1.7e9, 1.7e9))
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
        summaries = []
        for _ in range(2):  # two `--reconcile --once` runs: nothing survives but the store
            backends = build_backends(config, environ=fake.environ)
            store = StateStore(config.state.path)
            try:
                summaries.append(
                    Reconciler(config, store, backends).reconcile_once().plan.summary()
                )
                evidence = store.load_evidence()
            finally:
                store.close()
                backends.close()
        assert summaries[0]["copy"] == 3 and summaries[1]["copy"] == 0
        assert len(fake.tasks) == 1 and fake.calls["task"] == 1
        verified = evidence.get("cfs", {})
        assert set(verified) == {f"2026/s{i}.h5" for i in range(3)}
        assert all(ev.level is Level.CHECKSUM and ev.how == "transfer" for ev in verified.values())

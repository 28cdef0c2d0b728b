"""Adversary: the long-running service keeps a tape endpoint's identity check in memory for the
rest of a pass (each last look and hand-over reuses it). A tape bundle whose hand-over to the
runner failed transiently stays `preparing` and is sent again at the start of the *next* pass of
the same process — before that pass observes anything. If the HPSS directory (here the local
runner's stand-in folder) was unmounted in between, the remembered "identity holds" of the
previous pass must not let the bundle be written onto the bare mount point.

Promise (docs/safety.md, "Is it the right filesystem?" and "Crashes and interruptions"): every
hand-over to a mover checks the endpoints' identity again — for a tape endpoint, afresh at the
first hand-over of each pass.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.backends import build_backends
from engine.clock import FakeClock
from engine.config import load_config
from engine.errors import TransientError
from engine.reconciler import Reconciler
from engine.state import StateStore
from engine.storage.tape_local import LocalTapeRunner
from engine.workspace import create_workspace
from tests.adversary.test_root_swaps import DATA
from tests.adversary.versions_cli import file_contents


def wait_local(rec: Reconciler) -> None:
    mover: Any = rec.backends.movers["local"]
    for task in rec.store.tasks(["active"]):
        if task.mover == "local" and task.task_id is not None:
            mover.wait(task.task_id, timeout=60)


def test_a_bundle_kept_back_is_not_sent_onto_hpss_unmounted_between_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = create_workspace(tmp_path / "ws", hpss_kind="tape", close_after_days=0)
    start = datetime(2026, 11, 28, 12, tzinfo=UTC)
    for rel, data in DATA.items():
        # Acquired before the fake clock starts, whatever the real date: a scan stamped after
        # it (by the real clock) would not be due for its bundle, and nothing would be kept back.
        ws.write_scan(rel, data, mtime=start - timedelta(hours=1))
    config = load_config(ws.config_path)
    clock = FakeClock(start)
    store = StateStore(config.state.path)
    backends = build_backends(config, clock=clock)
    rec = Reconciler(config, store, backends, clock=clock)  # one service process
    try:
        with monkeypatch.context() as patch:

            def busy(self: LocalTapeRunner, name: str, script: str) -> str:
                raise TransientError("hsi: HPSS is busy, try again later")

            patch.setattr(LocalTapeRunner, "submit", busy)
            for _ in range(3):
                rec.reconcile_once()
                wait_local(rec)
                clock.advance(minutes=5)
            kept_back = [t for t in store.tasks(["preparing"]) if t.target == "hpss"]
            assert kept_back, "no bundle was kept back by the busy runner"
        assert file_contents(ws.cfs) == DATA

        away = tmp_path / "hpss-unmounted"
        os.rename(ws.hpss, away)
        ws.hpss.mkdir()
        rec.reconcile_once()
        wait_local(rec)
        assert sorted(p.name for p in ws.hpss.rglob("*")) == [], "bundled onto the bare mount point"
        assert [t.submission_id for t in store.tasks(["preparing"]) if t.target == "hpss"] == [
            t.submission_id for t in kept_back
        ], "the bundle should wait, under the same submission id"

        shutil.rmtree(ws.hpss)
        os.rename(away, ws.hpss)
        for _ in range(3):
            clock.advance(minutes=5)
            rec.reconcile_once()
            wait_local(rec)
        assert list(ws.hpss.rglob("*.tar")), "the bundle was not written once hpss was back"
        assert [t for t in store.tasks(["preparing"]) if t.target == "hpss"] == []
    finally:
        backends.close()
        store.close()

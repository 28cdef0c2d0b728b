"""The last look before a delete: the copy deleted must still be the bytes its copies were
verified against, and never the same file as a copy relied on. In-process, so that bytes can
change exactly between planning and the delete."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.last_look import check_distinct_copies, check_target_unchanged
from engine.model import ActionKind, Scan, ScanFile
from engine.workspace import LocalWorkspace, create_workspace
from tests.engine_world import open_engine

SCAN = "2026/11/scan_0001.h5"
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Beamline:
    def __init__(self, ws: LocalWorkspace) -> None:
        self.ws = ws
        config = ws.config()
        engine = open_engine(config, start=START)
        self.clock, self.store, self.backends = engine.clock, engine.store, engine.backends
        self.reconciler = engine.reconciler

    def pass_(self) -> Any:
        report = self.reconciler.reconcile_once(drain=True)
        self.clock.advance(minutes=1)
        return report

    def approve_dtn_prune(self) -> str:
        for _ in range(4):
            report = self.pass_()
            deletes = [a for a in report.plan.actions if a.kind is ActionKind.DELETE]
            if deletes:
                assert [d.target for d in deletes] == ["dtn"]
                self.store.approve([deletes[0].id], "operator", self.clock.now())
                return deletes[0].id
        raise AssertionError("the dtn prune was never planned")

    def skipped(self) -> list[dict[str, Any]]:
        return [
            e
            for e in self.store.events(scan=SCAN, limit=10_000)
            if e["kind"] == "delete.recheck_failed"
        ]


@pytest.fixture
def beamline(tmp_path: Path) -> Iterator[Beamline]:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=1000)
    ws.write_scan(SCAN, os.urandom(4096), mtime=START.timestamp() - 3600)
    line = Beamline(ws)
    try:
        yield line
    finally:
        line.store.close()
        line.backends.close()


def rot(path: Path) -> None:
    """Change bytes in place and put size and mtime back, as silent corruption would look."""
    before = os.stat(path)
    with path.open("r+b") as stream:
        stream.write(b"\0" * 16)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_target_rotted_between_planning_and_the_delete_is_not_deleted(
    beamline: Beamline, monkeypatch: pytest.MonkeyPatch
) -> None:
    beamline.approve_dtn_prune()
    executor = beamline.reconciler.executor
    execute = executor.execute

    def rot_then_execute(plan: Any, seen: Any, now: datetime) -> Any:
        assert any(a.kind is ActionKind.DELETE and a.approved for a in plan.actions)
        rot(beamline.ws.dtn / SCAN)  # after the walk and the plan, before the last look
        return execute(plan, seen, now)

    monkeypatch.setattr(executor, "execute", rot_then_execute)
    beamline.pass_()

    assert (beamline.ws.dtn / SCAN).exists(), "bytes verified nowhere were deleted"
    (skipped,) = beamline.skipped()
    assert skipped["data"]["reason_code"] == "changed_since_inventory"
    assert "dtn copy no longer holds" in skipped["message"]
    (failure,) = beamline.store.failures().values()
    assert failure.error_class.value == "needs_human" and failure.retry_at is None


def test_an_untouched_target_passes_the_last_look_and_is_deleted(beamline: Beamline) -> None:
    beamline.approve_dtn_prune()
    beamline.pass_()
    assert not (beamline.ws.dtn / SCAN).exists()
    assert beamline.skipped() == []


# ---- the checks on their own ----------------------------------------------------------------


def scan_of(root: Path, relpath: str, checksum: str) -> Scan:
    st = os.stat(root / relpath)
    return Scan(
        relpath,
        (ScanFile(relpath, st.st_size, st.st_mtime, checksum),),
        START,
        "md5",
        checksum,
    )


def test_a_hard_linked_copy_is_the_same_storage(tmp_path: Path) -> None:
    (tmp_path / "dtn").mkdir()
    (tmp_path / "cfs").mkdir()
    (tmp_path / "dtn" / "a.h5").write_bytes(b"x")
    os.link(tmp_path / "dtn" / "a.h5", tmp_path / "cfs" / "a.h5")
    scan = scan_of(tmp_path / "dtn", "a.h5", "9dd4e461268c8034f5c8564e155c67a6")
    roots = {"dtn": tmp_path / "dtn", "cfs": tmp_path / "cfs"}

    refusal = check_distinct_copies(scan, "dtn", ["cfs"], roots)

    assert refusal is not None and refusal.code == "same_storage"
    assert "cfs" in refusal.message and "'a.h5'" in refusal.message
    (tmp_path / "cfs" / "a.h5").unlink()
    (tmp_path / "cfs" / "a.h5").write_bytes(b"x")  # a real copy
    assert check_distinct_copies(scan, "dtn", ["cfs"], roots) is None


def test_a_simulated_bind_mount_is_the_same_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where bind mounts cannot be made, lstat answers as if cfs were dtn bind-mounted."""
    for name in ("dtn", "cfs"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.h5").write_bytes(b"x")
    real_lstat = os.lstat

    def lstat(path: Any) -> os.stat_result:
        return real_lstat(str(path).replace("/cfs/", "/dtn/"))

    monkeypatch.setattr("engine.last_look.os.lstat", lstat)
    scan = scan_of(tmp_path / "dtn", "a.h5", "9dd4e461268c8034f5c8564e155c67a6")
    roots = {"dtn": tmp_path / "dtn", "cfs": tmp_path / "cfs"}
    refusal = check_distinct_copies(scan, "dtn", ["cfs"], roots)
    assert refusal is not None and refusal.code == "same_storage"


def test_target_checks_need_a_local_view_and_ignore_files_already_gone(tmp_path: Path) -> None:
    (tmp_path / "dtn").mkdir()
    (tmp_path / "dtn" / "a.h5").write_bytes(b"x")
    scan = scan_of(tmp_path / "dtn", "a.h5", "9dd4e461268c8034f5c8564e155c67a6")
    assert check_target_unchanged(scan, "dtn", {"dtn": tmp_path / "dtn"}) is None
    assert check_target_unchanged(scan, "globus-only", {}) is None
    (tmp_path / "dtn" / "a.h5").write_bytes(b"y")
    refusal = check_target_unchanged(scan, "dtn", {"dtn": tmp_path / "dtn"})
    assert refusal is not None and refusal.code == "changed_since_inventory"
    (tmp_path / "dtn" / "a.h5").unlink()
    assert check_target_unchanged(scan, "dtn", {"dtn": tmp_path / "dtn"}) is None

"""The service's steady passes list on Globus only what is not settled, plus a rolling slice.

A scan is *settled* at an endpoint when every copy the policy wants is verified and nothing is
due for it (no action planned, none in flight, nothing blocked but retention). Such scans are
re-listed on a rolling schedule, every one at least every `[safety] reverify_days`; a replica a
pass did not list is *not observed* this pass, never *missing*. What may be deleted is never
decided from a replica the pass did not list: the last look before a delete lists afresh.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from engine.model import ActionKind, Level
from engine.reconciler import Reconciler
from tests.engine.remote_slice_world import (
    DIRS,
    PER_DIR,
    ROOT,
    START,
    deletes_of,
    scan_ids,
    world,
)


def _dir(n: int) -> str:
    return f"{ROOT}/2026/d{n:02}"


def test_steady_passes_list_only_a_rolling_slice_of_settled_folders(tmp_path: Path) -> None:
    with world(tmp_path, reverify_days=1) as w:
        w.settle()
        seen: dict[str, int] = {}
        per_pass = []
        for _ in range(24):  # one day of hourly passes
            before = w.snapshot()
            report = w.step()
            listed = w.cfs_dirs_listed(before)
            per_pass.append(len(listed))
            for path, n in listed.items():
                seen[path] = seen.get(path, 0) + n
            assert not report.plan.alert_details
        # 10 folders re-verified over 24 passes: far fewer than 10 folders every pass
        assert max(per_pass) <= 2, per_pass
        assert sum(per_pass) <= DIRS + 2, per_pass
        # ... yet every folder was listed within the day
        assert {_dir(n) for n in range(DIRS)} <= set(seen), sorted(seen)
        # nothing was taken for missing: every replica row is still there, verified
        assert all(w.cfs_level(s) is Level.CHECKSUM for s in scan_ids())


def test_a_settled_scan_deleted_behind_our_back_is_found_within_reverify_days(
    tmp_path: Path,
) -> None:
    with world(tmp_path, reverify_days=1) as w:
        w.settle()
        victim = "2026/d07/s03.h5"
        (w.roots["cfs"] / victim).unlink()
        found_after = None
        for hour in range(1, 26):
            report = w.step()
            if w.cfs_level(victim) is None:
                found_after = hour
                assert any(
                    a.kind is ActionKind.COPY and a.scan == victim for a in report.plan.actions
                )
                break
        assert found_after is not None and found_after <= 24, found_after
        # its neighbours were not taken for missing, and nothing froze
        assert not report.plan.alert_details
        assert all(w.cfs_level(s) is Level.CHECKSUM for s in scan_ids() if s != victim)


def test_retention_falling_due_lists_the_scan_before_a_delete_is_planned(
    tmp_path: Path,
) -> None:
    """The CFS copy vanishes while the scan is settled, right before DTN's retention falls due:
    the pass where it falls due lists the scan afresh (a due date makes a scan unsettled), so
    no delete is planned from what an earlier pass saw, and DTN keeps it."""
    with world(tmp_path, keep_days=3, reverify_days=7) as w:
        w.settle()
        due = START + timedelta(days=1)  # acquired 2 days before START, kept 3 days
        while w.clock() + timedelta(hours=1) < due:
            w.step()
        victim = "2026/d04/s05.h5"
        (w.roots["cfs"] / victim).unlink()
        w.clock.advance(hours=1)
        before = w.snapshot()
        report = w.step()
        assert _dir(4) in w.cfs_dirs_listed(before)
        assert not [d for d in deletes_of(report) if d.scan == victim]
        assert (w.roots["dtn"] / victim).exists()
        assert w.cfs_level(victim) is None
        # the others fell due in the same pass and were pruned at DTN as usual
        assert len(deletes_of(report)) == len(scan_ids()) - 1
        w.step()  # the delete task is polled
        assert (w.roots["dtn"] / victim).exists()
        assert not (w.roots["dtn"] / "2026/d04/s04.h5").exists()


def test_the_last_look_lists_cfs_afresh_even_in_an_incremental_pass(tmp_path: Path) -> None:
    """The CFS copy disappears after the pass's listing, right before the last look."""
    with world(tmp_path, keep_days=3, reverify_days=7) as w:
        w.settle()
        w.step()
        victim = "2026/d02/s01.h5"
        gone = w.roots["cfs"] / victim
        w.clock.advance(days=1, hours=1)  # every scan falls due in the next pass
        w.fake.before_ls(w.ids["cfs"], _dir(2), gone.unlink, skip=1)
        report = w.step()
        assert not gone.exists(), "the last look did not list d02 again"
        assert any(d.scan == victim for d in deletes_of(report))  # planned from the listing
        assert (w.roots["dtn"] / victim).exists(), "deleted relying on a vanished copy"
        w.step()  # the delete task is polled
        assert (w.roots["dtn"] / victim).exists()
        assert not (w.roots["dtn"] / "2026/d02/s00.h5").exists()  # its neighbours went


def test_an_unlisted_folder_is_never_missing_nor_trips_the_freeze(tmp_path: Path) -> None:
    """Nine of ten CFS folders are not listed in a steady pass: their replicas stay."""
    with world(tmp_path, reverify_days=7) as w:
        w.settle()
        w.step()
        before = w.snapshot()
        report = w.step()
        assert len(w.cfs_dirs_listed(before)) < DIRS
        assert not report.plan.alert_details
        assert not report.plan.errors
        replicas = w.store.load_replicas()["cfs"]
        assert set(scan_ids()) <= set(replicas)
        assert not [a for a in report.plan.actions if a.kind is ActionKind.COPY]


def test_a_truncated_answer_makes_cfs_unknown_then_everything_is_listed_again(
    tmp_path: Path,
) -> None:
    with world(tmp_path, reverify_days=7) as w:
        w.settle()
        w.step()
        # the pass lists at least one folder: an unsettled scan (a new one, copied next)
        w.write_scan("2026/d00/new.h5", b"new\n", START)
        w.fake.ls_partial = True
        report = w.step()
        w.fake.ls_partial = False
        assert any(e.endpoint == "cfs" for e in report.plan.errors)
        assert not report.plan.alert_details
        assert set(scan_ids()) <= set(w.store.load_replicas()["cfs"])
        before = w.snapshot()
        report = w.step()
        assert set(w.cfs_dirs_listed(before)) >= {_dir(n) for n in range(DIRS)}
        assert not report.plan.alert_details


def test_a_whole_folder_gone_trips_the_freeze_when_it_is_listed(tmp_path: Path) -> None:
    """The missing fraction counts what was listed: one folder of ten (10 % of all replicas,
    not more than `max_missing_fraction`) vanishing is 100 % of what its slice listed."""
    with world(tmp_path, reverify_days=1) as w:
        w.settle()
        shutil.rmtree(w.roots["cfs"] / "2026/d05")
        frozen = False
        for _ in range(26):
            report = w.step()
            if any(a.code == "missing_fraction" for a in report.plan.alert_details):
                frozen = True
                break
        assert frozen
        # the baseline is kept while the alert stands: the rows are not dropped
        assert {f"2026/d05/s{n:02}.h5" for n in range(PER_DIR)} <= set(
            w.store.load_replicas()["cfs"]
        )


def test_an_unsettled_scan_is_listed_every_pass(tmp_path: Path) -> None:
    """A delete awaiting approval and a copy in flight keep their folders listed every pass."""
    old = START - timedelta(days=40)
    with world(tmp_path, keep_days=30, reverify_days=7, approval=("delete",)) as w:
        w.write_scan("2026/d09/old.h5", b"old scan\n", old)
        w.settle()
        w.step()
        w.fake.files_per_poll = 0  # the next copy stays in flight
        w.write_scan("2026/d03/new.h5", b"new scan\n", START)
        w.step()  # submits its copy
        for _ in range(5):
            before = w.snapshot()
            report = w.step()
            listed = w.cfs_dirs_listed(before)
            assert _dir(9) in listed, listed  # the delete awaiting approval
            assert _dir(3) in listed, listed  # the copy in flight
            assert any(d.scan == "2026/d09/old.h5" for d in deletes_of(report))
            assert any(f.scan == "2026/d03/new.h5" for f in report.plan.in_flight)
            assert len(listed) < DIRS


def test_a_restart_lists_everything_then_slices_again(tmp_path: Path) -> None:
    with world(tmp_path, reverify_days=1) as w:
        w.settle()
        for _ in range(5):
            w.step()
        w.stop_service()
        w.start_service()  # a crash and restart: nothing but the store survives
        before = w.snapshot()
        w.step()
        assert set(w.cfs_dirs_listed(before)) >= {_dir(n) for n in range(DIRS)}
        before = w.snapshot()
        w.step()
        assert len(w.cfs_dirs_listed(before)) < DIRS


def test_a_pass_that_never_finished_makes_the_next_one_list_everything(tmp_path: Path) -> None:
    with world(tmp_path, reverify_days=1) as w:
        w.settle()
        w.step()
        # observe, then die before planning (the plan's settled set never arrives)
        w.reconciler.observe(w.clock(), circuit_breaker=True, write=True)
        before = w.snapshot()
        w.step()
        assert set(w.cfs_dirs_listed(before)) >= {_dir(n) for n in range(DIRS)}


def test_dry_run_and_once_list_everything(tmp_path: Path) -> None:
    with world(tmp_path, reverify_days=7) as w:
        w.settle()
        w.step()
        before = w.snapshot()
        w.reconciler.dry_run()
        assert set(w.cfs_dirs_listed(before)) >= {_dir(n) for n in range(DIRS)}
        once = Reconciler(w.config, w.store, w.backends, clock=w.clock)  # `--once`: no view
        before = w.snapshot()
        once.reconcile_once()
        assert set(w.cfs_dirs_listed(before)) >= {_dir(n) for n in range(DIRS)}

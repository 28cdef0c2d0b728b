"""Adversary, through the real CLI on the fake Transfer API: transfer and delete slots do not
starve each other and never exceed 3 open tasks of a kind; deletes carry `deadline_hours`,
transfers no deadline; a task fault shows in the audit; a missing collection root needs a
person, naming collection and path."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.globus_site import (
    ACQUIRED,
    Site,
    audit,
    deletes,
    dtn_prunes,
    make_site,
    reconcile,
    transfers,
)
from tests.conftest import RunCli
from tests.fakes.transfer_api import FakeTransferAPI

GLOBUS = """
[globus]
max_items_per_task = 1
max_active_tasks = 3
realtime_slots = 1
deadline_hours = 5
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    with FakeTransferAPI() as fake:
        s = make_site(tmp_path, fake)
        for name, value in fake.environ.items():
            monkeypatch.setenv(name, value)
        yield s


def with_globus(site: Site, text: str = GLOBUS) -> None:
    site.write_config()
    with site.config_path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def write_scan(site: Site, scan: str, mtime: float) -> None:
    path = site.dtn / scan / "frame_1.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(scan.encode() * 50)
    os.utime(path, (mtime, mtime))


def open_tasks(tasks: list) -> list:  # type: ignore[type-arg]
    return [t for t in tasks if t.status in ("ACTIVE", "INACTIVE")]


def test_full_delete_slots_do_not_starve_copies_nor_the_reverse(
    run_cli: RunCli, site: Site
) -> None:
    with_globus(site)
    for i in range(2, 6):
        write_scan(site, f"scan_{i:04d}", ACQUIRED)
    for _ in range(6):
        reconcile(run_cli, site)
        if all((site.cfs / f"scan_{i:04d}").is_dir() for i in range(1, 6)):
            break
    _, doc = audit(run_cli, site)
    assert len(dtn_prunes(doc)) == 5, doc
    done = run_cli("--approve-all", "--yes", config=site.config_path)
    assert done.returncode == 0, done.stderr
    site.fake.files_per_poll = 0  # from now on no task gets anywhere: every slot stays taken
    now = time.time()
    for i in range(6, 12):
        write_scan(site, f"scan_{i:04d}", ACQUIRED if i < 10 else now - 120)
    for _ in range(3):
        reconcile(run_cli, site)
        assert len(open_tasks(deletes(site.fake))) <= 3
        assert len(open_tasks(transfers(site.fake))) <= 3
    # Three delete tasks open did not keep copies out, and the reverse.
    assert len(open_tasks(deletes(site.fake))) == 3
    open_copies = open_tasks(transfers(site.fake))
    assert len(open_copies) == 3
    sources = {t.body["DATA"][0]["source_path"].split("/")[2] for t in open_copies}
    assert sources & {"scan_0010", "scan_0011"}, sources  # a new scan holds the kept slot
    # Deletes carry deadline_hours (5 h), transfers no deadline at all.
    for task in deletes(site.fake):
        given = datetime.fromisoformat(task.body["deadline"])
        submitted = datetime.fromisoformat(task.request_time)
        assert timedelta(hours=4.9) < given - submitted < timedelta(hours=5.1)
    for task in transfers(site.fake):
        assert not task.body.get("deadline"), task.body.get("deadline")
    # Nothing is in sync while work is open: the audit is not settled.
    code, doc = audit(run_cli, site)
    assert code != 0 and doc["outcome"] != "settled"


def test_a_task_fault_shows_in_the_audit_as_needing_a_person(run_cli: RunCli, site: Site) -> None:
    site.fake.fault_collection(site.collections["cfs"], "QUOTA_EXCEEDED", "quota exceeded")
    reconcile(run_cli, site)  # submits
    code = reconcile(run_cli, site)  # polls: the fault is seen
    assert code == 1
    code, doc = audit(run_cli, site)
    faults = [a for a in doc["alert_details"] if a["code"] == "task_fault"]
    assert code == 1 and doc["outcome"] == "needs_person", doc
    (alert,) = faults
    assert "QUOTA_EXCEEDED" in alert["message"] and site.collections["cfs"] in alert["message"]
    assert alert["endpoint"] == "cfs"
    assert not dtn_prunes(doc)  # no copy verified: nothing may be deleted
    human = run_cli("--dry-run", config=site.config_path)
    assert human.returncode == 1 and "No changes" not in human.stdout


@pytest.mark.parametrize("endpoint", ["dtn", "cfs"])
def test_a_missing_collection_root_needs_a_person_naming_collection_and_path(
    run_cli: RunCli, site: Site, endpoint: str
) -> None:
    config = site.config_path.read_text("utf-8")
    if endpoint == "dtn":
        config = config.replace('root = "/raw"\npath', 'root = "/nope"\npath', 1)
    else:
        site.cfs_root = "/nope"
        site.write_config()
        config = site.config_path.read_text("utf-8")
    site.config_path.write_text(config, "utf-8")
    code, doc = audit(run_cli, site)
    assert code == 1 and doc["outcome"] == "needs_person", doc
    errors = [e for e in doc["errors"] if e["endpoint"] == endpoint]
    assert errors, doc["errors"]
    (error,) = errors
    assert error["class"] == "needs_human", error
    assert "/nope" in error["message"] and site.collections[endpoint] in error["message"]
    assert not [a for a in doc["actions"] if a["kind"] == "delete"]
    done = run_cli("--reconcile", "--once", config=site.config_path)
    assert done.returncode == 1, done.stderr
    assert not deletes(site.fake)
    human = run_cli("--dry-run", config=site.config_path)
    assert human.returncode == 1 and "No changes" not in human.stdout
    assert "/nope" in human.stdout + human.stderr


def test_a_delete_task_stuck_on_a_permission_fault_is_cancelled_and_deletes_nothing(
    run_cli: RunCli, site: Site
) -> None:
    """A delete task Globus keeps retrying on PERMISSION_DENIED: the scan is not reported
    deleted, its files stay, and once cancelled it needs a person naming the collection.
    `persistent_fault_minutes` is 60; between passes (each a new process on the system's
    clock) the fault's recorded first sighting is moved two hours back, as if those passes
    were two hours apart (no sleep: how fast the machine is does not matter). The clock itself
    is tested in-process on a FakeClock (test_task_watch_inprocess.py)."""
    with_globus(site, "\n[globus]\npersistent_fault_minutes = 60\n")
    from tests.cli.globus_site import until_dtn_prune_planned

    until_dtn_prune_planned(run_cli, site)
    done = run_cli("--approve-all", "--yes", config=site.config_path)
    assert done.returncode == 0, done.stderr
    site.fake.fault_collection(site.collections["dtn"], "PERMISSION_DENIED", "permission denied")
    for _ in range(4):
        reconcile(run_cli, site)
        two_hours_pass_for_the_fault(site)
    (task,) = deletes(site.fake)
    assert task.status == "FAILED" and task.fatal_error["code"] == "CANCELED"
    # Exactly the manifest's files, never the scan folder, never recursive.
    assert not task.body.get("recursive")
    assert sorted(i["path"] for i in task.body["DATA"]) == [
        "/raw/scan_0001/frame_1.h5",
        "/raw/scan_0001/frame_2.h5",
    ]
    assert (site.dtn / "scan_0001" / "frame_1.h5").is_file()
    assert (site.dtn / "scan_0001" / "frame_2.h5").is_file()
    from engine.state import StateStore

    store = StateStore(site.state_path)
    try:
        rows = (
            store.connection()
            .execute(
                "SELECT a.kind, a.status, a.error_class, a.error FROM actions a "
                "WHERE a.kind = 'delete'"
            )
            .fetchall()
        )
        deletions = store.connection().execute("SELECT COUNT(*) FROM deletions").fetchone()[0]
    finally:
        store.close()
    assert rows, "no delete action"
    assert deletions == 0  # no receipt says anything went
    for row in rows:
        assert row["status"] != "succeeded", dict(row)
    failed = [r for r in rows if r["error_class"] is not None]
    assert failed, [dict(r) for r in rows]
    assert failed[-1]["error_class"] == "needs_human", dict(failed[-1])
    assert site.collections["dtn"] in failed[-1]["error"], failed[-1]["error"]
    code, doc = audit(run_cli, site)
    assert code == 1 and doc["outcome"] == "needs_person"


def two_hours_pass_for_the_fault(site: Site) -> None:
    """Move every recorded fault sighting two hours back (the state a pass two hours later
    finds), instead of letting real time pass."""
    from engine.state import StateStore, iso, parse_time

    store = StateStore(site.state_path)
    try:
        with store.transaction() as conn:
            rows = conn.execute(
                "SELECT submission_id, fault_since FROM task_watch WHERE fault_since IS NOT NULL"
            ).fetchall()
            for row in rows:
                since = parse_time(row["fault_since"])
                assert since is not None
                conn.execute(
                    "UPDATE task_watch SET fault_since = ? WHERE submission_id = ?",
                    (iso(since - timedelta(hours=2)), row["submission_id"]),
                )
    finally:
        store.close()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("realtime_slots = 3\n", "realtime_slots"),
        ("persistent_fault_minutes = 0\n", "persistent_fault_minutes"),
        ("stall_hours = -1\n", "stall_hours"),
    ],
)
def test_bad_slot_and_watch_settings_are_config_errors_naming_the_key(
    run_cli: RunCli, site: Site, text: str, key: str
) -> None:
    with_globus(site, "\n[globus]\n" + text)
    done = run_cli("--dry-run", config=site.config_path)
    assert done.returncode == 78, (done.returncode, done.stderr)
    assert key in done.stderr
    assert "Traceback" not in done.stderr


def test_a_delete_past_deadline_hours_removes_nothing_and_is_not_reported_done(
    run_cli: RunCli, site: Site
) -> None:
    """deadline_hours = 1: the delete task gets nowhere, and by the next pass (a new process)
    two hours have passed on Transfer's clock (the fake's own clock knob: no sleep, no
    dependence on how fast the machine is). Transfer ends it (EXPIRED) having removed nothing;
    the scan stays on the DTN, nothing says it was deleted, and the audit is not settled."""
    from tests.cli.globus_site import until_dtn_prune_planned

    until_dtn_prune_planned(run_cli, site)
    with_globus(site, "\n[globus]\ndeadline_hours = 1\n")
    done = run_cli("--approve-all", "--yes", config=site.config_path)
    assert done.returncode == 0, done.stderr
    site.fake.files_per_poll = 0  # the delete task gets nowhere
    reconcile(run_cli, site)
    (task,) = deletes(site.fake)
    given = datetime.fromisoformat(task.body["deadline"])
    submitted = datetime.fromisoformat(task.request_time)
    assert timedelta(minutes=59) < given - submitted < timedelta(minutes=61)
    assert task.status == "ACTIVE"
    site.fake.advance_clock(hours=2)  # the deadline is behind Transfer now
    reconcile(run_cli, site)
    reconcile(run_cli, site)
    assert task.status == "FAILED", task.status
    assert task.fatal_error["code"] == "EXPIRED", task.fatal_error
    assert (site.dtn / "scan_0001" / "frame_1.h5").is_file()
    assert (site.dtn / "scan_0001" / "frame_2.h5").is_file()
    from engine.state import StateStore

    store = StateStore(site.state_path)
    try:
        statuses = [
            r["status"]
            for r in store.connection().execute("SELECT status FROM actions WHERE kind='delete'")
        ]
        receipts = store.connection().execute("SELECT COUNT(*) FROM deletions").fetchone()[0]
        done_events = (
            store.connection()
            .execute("SELECT COUNT(*) FROM events WHERE kind IN ('delete.done', 'delete.partial')")
            .fetchone()[0]
        )
    finally:
        store.close()
    assert "succeeded" not in statuses, statuses
    assert receipts == 0 and done_events == 0
    code, doc = audit(run_cli, site)
    assert code != 0 and doc["outcome"] != "settled", doc

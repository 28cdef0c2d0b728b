"""A scan flagged export-controlled while its copy to an off-site endpoint is in flight.

The real CLI, the real globus-sdk and the fake Transfer API (tests/fakes/transfer_api.py: a task
does its items only when polled or when the test lets it; a cancel of a running task stops it
at once, a finished task cannot be cancelled, "TaskComplete", as Transfer answers). The copy
dtn → off (`offsite = true`) is submitted before the acquisition watcher's notify flags the
scan; the planner never plans a copy to a target with one in flight, so the export check must
reach the flight itself:

- still running: the next poll cancels it (event `copy.cancel_requested`); what it wrote before
  the cancel is not counted, and nothing is copied there again;
- finished before the poll: it is not counted either (event `copy.not_counted`); the bytes
  already off site are a known gap (docs/safety.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.model import Level
from engine.state import StateStore
from tests.cli.globus_beamline import GlobusSite, audit, reconcile
from tests.cli.test_prune_globus import MANIFEST, SCAN
from tests.conftest import RunCli
from tests.fakes.transfer_api import FakeTransferAPI

CONFIG = """\
[beamline]
name = "9.3.1"

[state]
path = "{state}"

[inventory]
endpoint = "dtn"
scan = "directory"
depth = 1
quiet_seconds = 0
checksum = "md5"

[endpoints.dtn]
kind = "globus"
collection = "{dtn}"
root = "/raw"
path = "{dtn_path}"

[endpoints.off]
kind = "globus"
collection = "{off}"
root = "/raw"
offsite = true

[[copy]]
from = "dtn"
to = "off"

[approval]
required_for = ["delete"]

[catalog]
kind = "none"
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GlobusSite]:
    with FakeTransferAPI() as fake:
        ids = {name: fake.add_collection(tmp_path / name) for name in ("dtn", "off")}
        roots = {name: tmp_path / name / "raw" for name in ids}
        for root in roots.values():
            root.mkdir(parents=True)
        state = tmp_path / "state" / "state.sqlite"
        state.parent.mkdir()
        config_path = tmp_path / "bl931.toml"
        config_path.write_text(CONFIG.format(state=state, dtn_path=roots["dtn"], **ids), "utf-8")
        for name, value in fake.environ.items():  # the child CLI talks to the fake
            monkeypatch.setenv(name, value)
        built = GlobusSite(fake, config_path, state, roots, ids)
        built.write_scan(MANIFEST)
        yield built


def copy_in_flight(run_cli: RunCli, site: GlobusSite) -> str:
    """A pass submits the copy dtn → off; Transfer has not started it: its task id."""
    reconcile(run_cli, site)
    (task,) = [t for t in site.fake.tasks.values() if t.kind == "TRANSFER"]
    assert task.status == "ACTIVE", task.status
    return task.task_id


def flag(run_cli: RunCli, site: GlobusSite) -> None:
    done = run_cli("--notify", SCAN, "--export-control", config=site.config_path)
    assert done.returncode == 0, done.stderr


def scan_events(site: GlobusSite) -> list[dict[str, Any]]:
    store = StateStore(site.state_path, readonly=True)
    try:
        return list(store.events(scan=SCAN))
    finally:
        store.close()


def counted_at_off(site: GlobusSite) -> bool:
    """Does the store hold checksum evidence of the scan at `off`, or a replica counted at
    checksum level there?"""
    store = StateStore(site.state_path, readonly=True)
    try:
        evidence = SCAN in store.load_evidence().get("off", {})
        row = store.load_replicas().get("off", {}).get(SCAN)
        return evidence or (row is not None and row.level >= Level.CHECKSUM)
    finally:
        store.close()


def settled_blocked(run_cli: RunCli, site: GlobusSite) -> None:
    """Later passes copy nothing more off site: the copy stays blocked `export_controlled`."""
    for _ in range(2):
        reconcile(run_cli, site)
    transfers = [t for t in site.fake.tasks.values() if t.kind == "TRANSFER"]
    assert len(transfers) == 1, "the copy off site was submitted again"
    doc = audit(run_cli, site)
    assert [a for a in doc["actions"] if a["kind"] == "copy"] == [], doc["actions"]
    codes = [b["reason_code"] for b in doc["blocked"] if b["endpoint"] == "off"]
    assert codes == ["export_controlled"], doc["blocked"]
    assert not counted_at_off(site)
    done = run_cli("--dry-run", config=site.config_path)
    assert done.returncode == 0, done.stdout  # a settled state (docs/audit.md)


def test_a_running_copy_off_site_is_cancelled_once_the_scan_is_flagged(
    site: GlobusSite, run_cli: RunCli
) -> None:
    task_id = copy_in_flight(run_cli, site)
    site.fake.step(task_id, files=1)  # Transfer copies the first file
    flag(run_cli, site)
    reconcile(run_cli, site)  # the owner's next poll cancels the task

    assert site.fake.calls["cancel_run"] == 1, "the running copy off site was not cancelled"
    task = site.fake.tasks[task_id]
    assert task.status == "FAILED", task.status
    copied = {p.relative_to(site.roots["off"]).as_posix() for p in site.roots["off"].rglob("*")}
    assert len([p for p in copied if p in MANIFEST]) == 1, copied  # no file after the cancel
    kinds = [str(e["kind"]) for e in scan_events(site)]
    assert "copy.cancel_requested" in kinds, kinds
    settled_blocked(run_cli, site)


def test_a_copy_off_site_that_finished_before_the_poll_is_not_counted(
    site: GlobusSite, run_cli: RunCli
) -> None:
    task_id = copy_in_flight(run_cli, site)
    site.fake.finish(task_id)  # Transfer finished it before anyone polled
    assert site.fake.tasks[task_id].status == "SUCCEEDED"
    flag(run_cli, site)
    reconcile(run_cli, site)

    assert not counted_at_off(site), "the copy off site of a flagged scan was counted"
    events = scan_events(site)
    (gap,) = [e for e in events if e["kind"] == "copy.not_counted"]
    assert "off" in str(gap["message"]) and "export-controlled" in str(gap["message"])
    settled_blocked(run_cli, site)

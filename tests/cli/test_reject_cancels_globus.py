"""A reject or hold recorded after a delete was submitted cancels the Globus task still running.

The real CLI, the real globus-sdk and the fake Transfer API (tests/fakes/transfer_api.py: a
task does its items only when polled, or when the test lets it; a cancel of a running task
stops it at once, and a finished task cannot be cancelled, as Transfer answers). Operator
`alice` approves the dtn prune, a pass submits it; operator `bob` rejects it (or a hold is
placed on the scan) while Transfer runs the task:

- the task has removed one file of two: the next pass cancels the task; the file removed
  before the cancel took effect gets a (partial) receipt from a fresh listing, the other file
  stays, and nothing deletes it later while the reject stands;
- the task had already succeeded: the receipt stands (it names alice's approval), and bob's
  reject is recorded as too late.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest

from engine.state import StateStore
from tests.cli.test_approvals_globus import as_operator, dtn_prune
from tests.cli.test_prune_globus import (  # noqa: F401 (`site` is a fixture)
    ACQUIRED,
    MANIFEST,
    SCAN,
    GlobusSite,
    audit,
    delete_tasks,
    reconcile,
    site,
    write_manifest,
)
from tests.conftest import RunCli

FIRST, SECOND = sorted(MANIFEST)  # the order the delete task removes them in


def events(site: GlobusSite, action_id: str) -> list[dict[str, object]]:  # noqa: F811
    store = StateStore(site.state_path, readonly=True)
    try:
        return list(store.events(action_id=action_id))
    finally:
        store.close()


def submitted_prune(
    run_cli: RunCli,
    site: GlobusSite,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, str]:
    """alice approves the dtn prune and a pass submits it: (action id, Transfer task id)."""
    write_manifest(site)
    prune = dtn_prune(run_cli, site)
    as_operator(monkeypatch, "alice")
    done = run_cli("--approve", prune["id"], config=site.config_path)
    assert done.returncode == 0, done.stderr
    reconcile(run_cli, site)
    (task,) = [t for t in site.fake.tasks.values() if t.kind == "DELETE"]
    assert task.status == "ACTIVE" and not task.deleted
    return prune["id"], task.task_id


def withdraw(
    how: str,
    run_cli: RunCli,
    site: GlobusSite,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    aid: str,
) -> None:
    as_operator(monkeypatch, "bob")
    if how == "reject":
        done = run_cli("--reject", aid, config=site.config_path)
        assert done.returncode == 0, done.stderr
        assert "cancels its running task" in done.stdout, done.stdout
    else:  # a hold, as the TUI places it (no owner runs: written to the store directly)
        store = StateStore(site.state_path)
        try:
            store.place_hold(SCAN, "reprocessing", "bob", datetime.now(UTC))
        finally:
            store.close()


@pytest.mark.parametrize("how", ["reject", "hold"])
def test_a_withdrawal_after_submission_cancels_the_running_delete(
    how: str,
    site: GlobusSite,  # noqa: F811
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aid, task_id = submitted_prune(run_cli, site, monkeypatch)
    site.fake.step(task_id, files=1)  # Transfer removes the first file
    assert not (site.roots["dtn"] / FIRST).exists()
    assert (site.roots["dtn"] / SECOND).exists()

    withdraw(how, run_cli, site, monkeypatch, aid)
    reconcile(run_cli, site)  # the owner's next poll cancels the task, then settles it

    assert site.fake.calls["cancel_run"] == 1, "the running task was not cancelled"
    task = site.fake.tasks[task_id]
    assert task.status == "FAILED" and task.fatal_error == {
        "code": "CANCELED",
        "description": "canceled",
    }
    assert (site.roots["dtn"] / SECOND).exists(), "the delete ran on after the withdrawal"
    # What went before the cancel took effect is receipted, from a fresh listing.
    done = run_cli("--receipt", SCAN, "--json", config=site.config_path)
    (receipt,) = json.loads(done.stdout)
    assert receipt["removed"] == [FIRST], receipt
    assert receipt["approval"]["by"] == "alice", receipt
    kinds = [str(e["kind"]) for e in events(site, aid)]
    assert "delete.cancel_requested" in kinds, kinds
    (asked,) = [e for e in events(site, aid) if e["kind"] == "delete.cancel_requested"]
    assert "bob" in str(asked["message"]), asked

    # The withdrawal stands: later passes delete nothing more, and no new task is submitted.
    for _ in range(2):
        reconcile(run_cli, site)
    assert (site.roots["dtn"] / SECOND).exists()
    assert len(delete_tasks(site.fake)) == 1
    doc = audit(run_cli, site)
    assert [a for a in doc["actions"] if a["kind"] == "delete"] == [], doc["actions"]
    assert [b for b in doc["blocked"] if b["endpoint"] == "dtn"], doc["blocked"]


def test_a_reject_after_the_task_succeeded_is_recorded_as_too_late(
    site: GlobusSite,  # noqa: F811
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aid, task_id = submitted_prune(run_cli, site, monkeypatch)
    site.fake.finish(task_id)  # Transfer finished the task before anyone polled it
    assert site.fake.tasks[task_id].status == "SUCCEEDED"

    withdraw("reject", run_cli, site, monkeypatch, aid)
    reconcile(run_cli, site)

    assert site.fake.tasks[task_id].status == "SUCCEEDED"
    done = run_cli("--receipt", SCAN, "--json", config=site.config_path)
    (receipt,) = json.loads(done.stdout)
    assert sorted(receipt["removed"]) == sorted(MANIFEST)
    assert (receipt["approval"]["decision"], receipt["approval"]["by"]) == ("approve", "alice")
    (late,) = [e for e in events(site, aid) if e["kind"] == "delete.withdrawn_too_late"]
    assert "bob" in str(late["message"]) and "receipt stands" in str(late["message"]), late


def test_a_scan_that_only_shared_the_cancelled_task_runs_again_on_its_approval(
    site: GlobusSite,  # noqa: F811
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two scans in one delete task; bob rejects one. The task is cancelled whole before it
    removed anything: the rejected scan stays; the other one's approval comes back (its
    submission removed nothing) and a later pass deletes it under alice's approval, without
    asking again."""
    other = "scan_0002"
    write_manifest(site)
    for relpath, data in MANIFEST.items():
        path = site.roots["dtn"] / relpath.replace(SCAN, other, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (ACQUIRED, ACQUIRED))
    prunes: dict[str, str] = {}
    for _ in range(6):
        prunes = {
            a["scan"]: a["id"] for a in audit(run_cli, site)["actions"] if a["kind"] == "delete"
        }
        if len(prunes) == 2:
            break
        reconcile(run_cli, site)
    assert set(prunes) == {SCAN, other}, prunes
    as_operator(monkeypatch, "alice")
    done = run_cli("--approve", *prunes.values(), config=site.config_path)
    assert done.returncode == 0, done.stderr
    reconcile(run_cli, site)
    (task,) = [t for t in site.fake.tasks.values() if t.kind == "DELETE"]
    assert len(task.pending) == 2 * len(MANIFEST) and not task.deleted

    withdraw("reject", run_cli, site, monkeypatch, prunes[SCAN])
    reconcile(run_cli, site)  # cancels the task; the other scan is planned again
    assert site.fake.tasks[task.task_id].status == "FAILED"
    for _ in range(2):
        reconcile(run_cli, site)

    assert all((site.roots["dtn"] / relpath).exists() for relpath in MANIFEST)
    assert not any((site.roots["dtn"] / other).rglob("*.h5")), "the other scan was not pruned"
    assert len(delete_tasks(site.fake)) == 2
    done = run_cli("--receipt", other, "--json", config=site.config_path)
    (receipt,) = json.loads(done.stdout)
    assert receipt["approval"]["by"] == "alice" and receipt["task_id"] != task.task_id
    assert run_cli("--receipt", SCAN, "--json", config=site.config_path).stdout.strip() in (
        "[]",
        "",
    )

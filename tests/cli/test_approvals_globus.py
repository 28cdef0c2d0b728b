"""A receipt names the approval in force when its delete was submitted, through Globus.

The real CLI, the real globus-sdk and the fake Transfer API: a Globus delete task runs across
passes, so an operator can decide while it is in flight. Operator `alice` approves the dtn
prune, the pass submits it, operator `bob` rejects it while Transfer runs the task; the next pass
records the delete. Its receipt must say alice approved it (bob's reject came after the
task had finished and is its own event), and bob's reject stands for any later delete of those
bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from engine.state import StateStore
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


def as_operator(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The child CLI's uid is named `name` (bl931 names operators from the kernel's uid, never
    from `$USER`; the account lookup is renamed by `tests/service/decision_inject`)."""
    monkeypatch.setenv("BL931_TEST_OPERATOR", name)
    hooks = str(Path(__file__).parents[1] / "service" / "decision_inject")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([hooks, os.environ.get("PYTHONPATH", "")]))


def dtn_prune(run_cli: RunCli, site: GlobusSite) -> dict[str, Any]:  # noqa: F811
    for _ in range(6):
        deletes = [a for a in audit(run_cli, site)["actions"] if a["kind"] == "delete"]
        if deletes:
            return deletes[0]
        reconcile(run_cli, site)
    raise AssertionError("the dtn prune was never planned")


def test_a_reject_after_submission_does_not_rewrite_the_receipt(
    site: GlobusSite,  # noqa: F811
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_manifest(site)
    prune = dtn_prune(run_cli, site)
    as_operator(monkeypatch, "alice")
    done = run_cli("--approve", prune["id"], config=site.config_path)
    assert done.returncode == 0, done.stderr

    reconcile(run_cli, site)  # submits the delete
    assert len(delete_tasks(site.fake)) == 1
    assert (site.roots["dtn"] / SCAN / "frame_1.h5").exists()
    # Transfer runs the task to its end before the next poll (bob's reject cannot cancel it:
    # tests/cli/test_reject_cancels_globus.py has the reject that comes in time).
    (task_id,) = [t.task_id for t in site.fake.tasks.values() if t.kind == "DELETE"]
    site.fake.finish(task_id)

    as_operator(monkeypatch, "bob")
    done = run_cli("--reject", prune["id"], config=site.config_path)
    assert done.returncode == 0, done.stderr
    assert "already submitted" in done.stdout, done.stdout

    reconcile(run_cli, site)  # polls the finished task and writes the receipt
    assert not (site.roots["dtn"] / SCAN / "frame_1.h5").exists()
    done = run_cli("--receipt", SCAN, "--json", config=site.config_path)
    (receipt,) = json.loads(done.stdout)
    approval = receipt["approval"]
    assert (approval["decision"], approval["by"]) == ("approve", "alice"), receipt
    text = run_cli("--receipt", SCAN, config=site.config_path).stdout
    assert "approval: alice" in text and "bob" not in text, text

    store = StateStore(site.state_path, readonly=True)
    try:
        kinds = [e["kind"] for e in store.events(action_id=prune["id"])]
        rejected = [
            e for e in store.events(action_id=prune["id"]) if e["kind"] == "action.rejected"
        ]
    finally:
        store.close()
    assert (
        kinds.index("delete.submitted")
        < kinds.index("action.rejected")
        < kinds.index("delete.done")
    ), kinds
    assert "by bob" in rejected[0]["message"]

    # bob's reject stands: the same bytes put back are not pruned again.
    write_manifest(site)
    for _ in range(2):
        reconcile(run_cli, site)
    assert all((site.roots["dtn"] / relpath).exists() for relpath in MANIFEST)
    doc = audit(run_cli, site)
    assert [b["reason_code"] for b in doc["blocked"] if b["endpoint"] == "dtn"] == ["rejected"]
    assert len(delete_tasks(site.fake)) == 1
    assert os.path.getmtime(site.roots["dtn"] / SCAN / "frame_1.h5") == ACQUIRED

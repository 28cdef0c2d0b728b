"""Adversary: bl931 never forgets a local catalog registration it made — driven only through the
real `bl931tui` CLI (`--reconcile --once`, `--dry-run --json`, `--approve-all`,
`--acknowledge`), the catalog file itself, and a SIGKILL-like cut at each step around the
catalog's write (`tests/adversary/catalog_kill/`).

Promise (docs/catalog.md, "A catalog that lost documents"; docs/safety.md, "Lost documents stop
deletes"): every document the catalog holds because bl931 asked for it — also one whose write
the process did not live to record, or whose write failed and was made later — is among the
registrations bl931 keeps. When such a document disappears, the next pass raises
`catalog_lost_documents` (exit 1), and no delete runs until it is back or an operator
acknowledges that loss. Documents others wrote for scans bl931 never asked about are merged,
never erased, and not tracked. Nothing is planned from a document held only in memory.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engine.workspace import LocalWorkspace, create_workspace
from tests.adversary.test_root_swaps import event_kinds
from tests.adversary.test_tape_swaps import census
from tests.adversary.versions_cli import audit, passes
from tests.cli.test_catalog_identity import catalogued, drop_document
from tests.conftest import RunCli

KILL = Path(__file__).parent / "catalog_kill"
AFTER_WRITE = Path(__file__).parent / "catalog_inject"
S0, S1, S2 = "2026/11/s0.h5", "2026/11/s1.h5", "2026/11/s2.h5"


def workspace(tmp_path: Path, *scans: str) -> LocalWorkspace:
    """The dtn copy may be pruned once cfs holds it and the scan is registered (the default
    `required_for_delete`); every prune waits for an operator's approval."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=1000)
    for scan in scans:
        ws.write_scan(scan, os.urandom(2048))
    return ws


def catalog_path(ws: LocalWorkspace) -> Path:
    return ws.root / "state" / "catalog.json"


def cut_pass(
    run_cli: RunCli, ws: LocalWorkspace, monkeypatch: pytest.MonkeyPatch, cut: str, **env: str
) -> Any:
    """One `--reconcile --once` with the cut `cut` injected."""
    inject = AFTER_WRITE if cut == "after_write" else KILL
    with monkeypatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(inject), os.environ.get("PYTHONPATH", "")]))
        if cut == "after_write":
            patch.setenv("BL931_CRASH_AFTER_CATALOG_WRITE", "1")
        else:
            patch.setenv("BL931_CATALOG_CUT", cut)
        for key, value in env.items():
            patch.setenv(key, value)
        return run_cli("--reconcile", "--once", config=ws.config_path)


def kept(ws: LocalWorkspace) -> set[str]:
    """The registrations the state store keeps (read straight from its table)."""
    with sqlite3.connect(f"file:{ws.state_path}?mode=ro", uri=True) as conn:
        return {r[0] for r in conn.execute("SELECT scan FROM catalog_registrations")}


def dtn_prunes(doc: dict[str, Any]) -> list[str]:
    return sorted(a["scan"] for a in doc["actions"] if a["kind"] == "delete")


def lost_alerts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in doc["alert_details"] if a["code"] == "catalog_lost_documents"]


def assert_loss_stops_deletes(run_cli: RunCli, ws: LocalWorkspace, lost: str) -> None:
    """The loss of `lost`'s document is raised (exit 1 for the pass and the audit), no delete is
    planned anywhere, and none runs even for an operator who approves everything."""
    dtn_before = census(ws.dtn)
    for _ in range(2):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode == 1, f"the loss of {lost} went unnoticed: {done.stderr}"
        code, doc = audit(run_cli, ws)
        assert code == 1, doc
        alerts = lost_alerts(doc)
        assert len(alerts) == 1 and lost in alerts[0]["message"], doc["alert_details"]
        assert alerts[0]["effect"] == "unknown_endpoint" and alerts[0]["endpoint"] == "catalog"
        assert dtn_prunes(doc) == [], f"a delete planned while {lost} is lost: {doc['actions']}"
        reasons = {(b["kind"], b["reason_code"]) for b in doc["blocked"]}
        assert ("delete", "catalog_unavailable") in reasons, doc["blocked"]
        done = run_cli("--approve-all", "--yes", config=ws.config_path)
        assert "Traceback" not in done.stderr, done.stderr
    assert census(ws.dtn) == dtn_before, f"dtn pruned while the catalog lost {lost}"
    assert lost not in catalogued(catalog_path(ws)), "the lost document was written again unasked"


def acknowledge_loss(run_cli: RunCli, ws: LocalWorkspace, lost: str) -> None:
    (alert,) = lost_alerts(audit(run_cli, ws)[1])
    assert lost in alert["message"]
    done = run_cli(
        "--acknowledge", alert["id"], "--why", "an old backup was put back", config=ws.config_path
    )
    assert done.returncode == 0, done.stderr


# ---- a kill at each step around the catalog's write -------------------------------------------


@pytest.mark.parametrize("cut", ["before_write", "after_write", "after_record"])
def test_a_kill_around_the_catalog_write_never_loses_the_registration(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: str
) -> None:
    ws = workspace(tmp_path, S0)
    path = catalog_path(ws)
    passes(run_cli, ws, 1)  # copied to cfs; the catalog is initialised, empty
    assert catalogued(path) == set()

    done = cut_pass(run_cli, ws, monkeypatch, cut)
    assert done.returncode == 137, done.stderr
    assert catalogued(path) == (set() if cut == "before_write" else {S0})
    assert (S0 in kept(ws)) == (cut == "after_record"), kept(ws)

    # Between the kill and the next pass: an audit plans nothing from a registration it cannot
    # see, and raises no false loss for a write that never happened.
    code, doc = audit(run_cli, ws)
    assert lost_alerts(doc) == [], doc["alert_details"]
    if cut == "before_write":
        assert dtn_prunes(doc) == [], "a prune planned for a scan the catalog never registered"

    # Restarted: the scan counts as registered (written again, adopted, or as recorded) and the
    # dtn prune is planned and approved.
    passes(run_cli, ws, 2)
    assert catalogued(path) == {S0}
    code, doc = audit(run_cli, ws)
    assert code == 2 and dtn_prunes(doc) == [S0] and doc["alert_details"] == [], doc
    assert kept(ws) == {S0}
    kinds = event_kinds(ws, S0)
    assert kinds.count("catalog.register") + kinds.count("catalog.adopted") <= 1, kinds
    done = run_cli("--approve-all", "--yes", config=ws.config_path)
    assert done.returncode == 0, done.stderr

    # The document is lost (an older backup put back, a hand edit): deletes stop.
    drop_document(path, S0)
    assert_loss_stops_deletes(run_cli, ws, S0)


# ---- acknowledging a loss covers the documents it named, nothing else --------------------------


def registered_three(run_cli: RunCli, ws: LocalWorkspace) -> bytes:
    passes(run_cli, ws, 3)
    path = catalog_path(ws)
    assert catalogued(path) == {S0, S1, S2}
    code, doc = audit(run_cli, ws)
    assert code == 2 and dtn_prunes(doc) == [S0, S1, S2], doc
    return path.read_bytes()


def test_an_acknowledgement_never_accepts_a_loss_it_did_not_name(
    run_cli: RunCli, tmp_path: Path
) -> None:
    ws = workspace(tmp_path, S0, S1, S2)
    registered_three(run_cli, ws)
    path = catalog_path(ws)
    drop_document(path, S0)
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 1
    acknowledge_loss(run_cli, ws, S0)
    # Before the pass that acts on the acknowledgement, a second document is lost.
    drop_document(path, S1)
    assert_loss_stops_deletes(run_cli, ws, S1)
    assert event_kinds(ws, S1).count("catalog.loss_accepted") == 0, event_kinds(ws, S1)
    assert event_kinds(ws, S0).count("catalog.loss_accepted") == 1, "the named loss was accepted"
    assert S0 not in kept(ws) and S1 in kept(ws)

    # Acknowledged in turn, that loss is accepted too; both scans are registered again.
    acknowledge_loss(run_cli, ws, S1)
    passes(run_cli, ws, 2)
    assert catalogued(path) == {S0, S1, S2}
    code, doc = audit(run_cli, ws)
    assert code == 2 and doc["alert_details"] == [] and dtn_prunes(doc) == [S0, S1, S2], doc


@pytest.mark.parametrize("back", ["before the next pass", "after the next pass"])
def test_a_document_back_after_its_loss_was_acknowledged_is_kept(
    run_cli: RunCli, tmp_path: Path, back: str
) -> None:
    ws = workspace(tmp_path, S0, S1, S2)
    good = registered_three(run_cli, ws)
    path = catalog_path(ws)
    drop_document(path, S0)
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 1
    acknowledge_loss(run_cli, ws, S0)
    if back == "after the next pass":
        passes(run_cli, ws, 1)
    path.write_bytes(good)  # the newer file turns up after all, and is put back
    passes(run_cli, ws, 2)
    code, doc = audit(run_cli, ws)
    assert doc["alert_details"] == [] and dtn_prunes(doc) == [S0, S1, S2], doc
    assert catalogued(path) == {S0, S1, S2}

    # bl931 asked for that document: losing it again is raised again.
    drop_document(path, S0)
    assert_loss_stops_deletes(run_cli, ws, S0)

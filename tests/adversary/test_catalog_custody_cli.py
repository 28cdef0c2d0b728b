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
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engine.workspace import LocalWorkspace, create_workspace
from tests.adversary.test_root_swaps import event_kinds
from tests.adversary.test_tape_swaps import census
from tests.adversary.versions_cli import audit, passes
from tests.cli.test_catalog_identity import catalogued, drop_document
from tests.cli.test_scicat_cli import SECRET, switch_to_scicat
from tests.cli.test_scicat_cli import cli as scicat_cli
from tests.conftest import RunCli
from tests.fakes.scicat_api import FakeScicat
from tests.service.helpers import ServiceProcess, wait_for

KILL = Path(__file__).parent / "catalog_kill"
AFTER_WRITE = Path(__file__).parent / "catalog_inject"
S0, S1, S2 = "2026/11/s0.h5", "2026/11/s1.h5", "2026/11/s2.h5"


def workspace(tmp_path: Path, *scans: str, retry_base_seconds: float = 30) -> LocalWorkspace:
    """The dtn copy may be pruned once cfs holds it and the scan is registered (the default
    `required_for_delete`); every prune waits for an operator's approval. A tiny
    `retry_base_seconds`: a failed registration is retried at the next pass."""
    ws = create_workspace(
        tmp_path / "ws",
        dtn_keep_days=0,
        cfs_keep_days=1000,
        retry_base_seconds=retry_base_seconds,
    )
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
    code, doc = audit(run_cli, ws)  # no prune relies on the catalog (S2's neither)
    assert code == 1 and dtn_prunes(doc) == [], doc
    assert [S1 in a["message"] for a in lost_alerts(doc)] == [True], doc["alert_details"]
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
    assert code == 2 and doc["alert_details"] == [] and dtn_prunes(doc) == [S0, S1, S2], doc
    assert catalogued(path) == {S0, S1, S2}

    # bl931 asked for that document: losing it again is raised again.
    drop_document(path, S0)
    assert_loss_stops_deletes(run_cli, ws, S0)


@pytest.mark.parametrize("back", ["before the next pass", "after the next pass"])
def test_a_tape_only_document_back_after_its_loss_was_acknowledged_is_kept(
    run_cli: RunCli, tmp_path: Path, back: str
) -> None:
    # Both retentions passed: once pruned from dtn and cfs, the scan is on tape only, where
    # nothing registers it again (registering needs a verified cfs copy).
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0)
    ws.write_scan(S0, os.urandom(2048))
    for _ in range(6):
        passes(run_cli, ws, 1)
        assert run_cli("--approve-all", "--yes", config=ws.config_path).returncode == 0
    assert census(ws.dtn) == {} and census(ws.cfs) == {}, "setup: not on tape only"
    path = catalog_path(ws)
    assert catalogued(path) == {S0} and kept(ws) == {S0}
    good = path.read_bytes()

    drop_document(path, S0)
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 1
    acknowledge_loss(run_cli, ws, S0)
    if back == "after the next pass":
        passes(run_cli, ws, 1)
    path.write_bytes(good)  # the document bl931 asked for is in the catalog again
    passes(run_cli, ws, 2)
    assert catalogued(path) == {S0}
    assert S0 in kept(ws), "a document bl931 asked for, back in the catalog, is not kept"

    drop_document(path, S0)
    for _ in range(2):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert done.returncode == 1, f"the second loss went unnoticed: {done.stderr}"
    code, doc = audit(run_cli, ws)
    assert code == 1 and [a["code"] for a in doc["alert_details"]] == ["catalog_lost_documents"]


# ---- other writers ----------------------------------------------------------------------------


def foreign_document(path: Path, like: str, scan: str, pid: str) -> dict[str, Any]:
    """A document another writer made for `scan`, shaped like bl931's own document of `like`."""
    doc = json.loads(path.read_text("utf-8"))
    (mine,) = [
        d for d in doc["datasets"].values() if d["scientificMetadata"]["scan_id"]["value"] == like
    ]
    theirs = json.loads(json.dumps(mine))
    theirs["pid"] = pid
    theirs["description"] = f"Beamline 9.3.1 scan {scan}"
    theirs["datasetName"] = scan
    theirs["scientificMetadata"]["scan_id"]["value"] = scan
    return theirs


def add_document(path: Path, document: dict[str, Any]) -> None:
    """Another writer (an operator's script, another tool) adds a document to the file."""
    doc = json.loads(path.read_text("utf-8"))
    key = str(max((int(k) for k in doc["datasets"]), default=0) + 1)
    doc["datasets"][key] = document
    path.write_text(json.dumps(doc), "utf-8")


def test_other_writers_documents_are_merged_never_erased_and_not_tracked(
    run_cli: RunCli, tmp_path: Path
) -> None:
    ws = workspace(tmp_path, S0)
    passes(run_cli, ws, 3)
    path = catalog_path(ws)
    theirs = "elsewhere/theirs.h5"
    add_document(path, foreign_document(path, S0, theirs, "other-tool/0001"))
    ws.write_scan(S1, os.urandom(2048))  # bl931 writes the file again for this one
    passes(run_cli, ws, 3)
    assert catalogued(path) == {S0, S1, theirs}, "another writer's document was erased"
    assert kept(ws) == {S0, S1}, "a document bl931 never asked for is tracked"
    assert "catalog.adopted" not in event_kinds(ws, theirs)

    drop_document(path, theirs)  # its writer takes it back: none of bl931's business
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 0, done.stderr
    code, doc = audit(run_cli, ws)
    assert code == 2 and doc["alert_details"] == [] and dtn_prunes(doc) == [S0, S1], doc


def test_another_writers_document_for_a_scan_bl931_asked_for_is_kept(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, S0)
    passes(run_cli, ws, 3)
    path = catalog_path(ws)
    ws.write_scan(S1, os.urandom(2048))
    passes(run_cli, ws, 1)  # S1 copied to cfs
    done = cut_pass(run_cli, ws, monkeypatch, "before_write")  # bl931 asked, and died
    assert done.returncode == 137, done.stderr
    assert catalogued(path) == {S0}
    # Meanwhile another writer (another bl931, a back-fill) registers that scan.
    add_document(path, foreign_document(path, S0, S1, "other-tool/0002"))
    passes(run_cli, ws, 2)
    assert kept(ws) == {S0, S1}
    assert catalogued(path) == {S0, S1}

    drop_document(path, S1)  # that writer removes it again
    assert_loss_stops_deletes(run_cli, ws, S1)


# ---- the catalog file vanishes while bl931 writes it ------------------------------------------


def test_a_registration_whose_write_failed_is_never_relied_on_nor_forgotten_once_made(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--once`: the process ends with the registration in memory (as a crash would)."""
    ws = workspace(tmp_path, S0, retry_base_seconds=0.001)
    path = catalog_path(ws)
    away = tmp_path / "catalog.away"
    passes(run_cli, ws, 1)
    done = cut_pass(run_cli, ws, monkeypatch, "vanish_at_write", BL931_CATALOG_AWAY=str(away))
    assert "Traceback" not in done.stderr, done.stderr
    # The catalog was read fine; its write failed after (a failed action, retried): the pass
    # reports no observation error, so `--once` may exit 0 (DESIGN: errors and alerts only).
    assert done.returncode in (0, 1) and "not written to the catalog" in done.stderr, done.stderr
    assert not path.exists() and away.exists()
    assert kept(ws) == set()

    code, doc = audit(run_cli, ws)  # the catalog is missing: unknown, never empty
    assert code == 1 and dtn_prunes(doc) == [], doc
    assert [e["class"] for e in doc["errors"] if e["endpoint"] == "catalog"] == ["needs_human"]

    os.replace(away, path)  # back, without the document the failed write held
    code, doc = audit(run_cli, ws)
    assert lost_alerts(doc) == [] and dtn_prunes(doc) == [], doc
    passes(run_cli, ws, 2)
    assert catalogued(path) == {S0} and kept(ws) == {S0}
    code, doc = audit(run_cli, ws)
    assert code == 2 and dtn_prunes(doc) == [S0], doc

    drop_document(path, S0)
    assert_loss_stops_deletes(run_cli, ws, S0)


def vanishing_service(ws: LocalWorkspace, tmp_path: Path, away: Path) -> ServiceProcess:
    """The service, its catalog file moved to `away` at its first catalog write (the file
    vanishing during a pass)."""
    env = {
        "PYTHONPATH": os.pathsep.join([str(KILL), os.environ.get("PYTHONPATH", "")]),
        "BL931_CATALOG_CUT": "vanish_at_write",
        "BL931_CATALOG_AWAY": str(away),
    }
    return ServiceProcess(
        ws.config_path, "--interval", "0.2", log_path=tmp_path / "service.log", env=env
    )


def back_then_stop(service: ServiceProcess, ws: LocalWorkspace, away: Path, path: Path) -> None:
    """The right catalog file put back: the registration the service held in memory is written
    there and kept; then the service stops cleanly."""
    os.replace(away, path)
    wait_for(lambda: S0 in kept(ws), timeout=90, what="the registration kept")
    assert catalogued(path) == {S0}
    service.signal(signal.SIGTERM)
    assert service.wait(60) == 0


def test_a_service_whose_catalog_vanished_mid_write_keeps_the_registration_made_later(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """The long-running service keeps the registration in memory and writes it once the file
    is back: the document it then holds is kept, and its loss stops deletes."""
    ws = workspace(tmp_path, S0, retry_base_seconds=0.001)
    path = catalog_path(ws)
    away = tmp_path / "catalog.away"
    passes(run_cli, ws, 1)
    service = vanishing_service(ws, tmp_path, away)
    try:
        wait_for(away.exists, timeout=60, what="the catalog file vanishing at the write")
        seen = service.passes()
        service.wait_log(r"pass done in", count=seen + 2)
        assert not path.exists() and kept(ws) == set()
        code, doc = audit(run_cli, ws)
        assert code == 1 and dtn_prunes(doc) == [], "a delete planned on a document in memory"

        back_then_stop(service, ws, away, path)
    finally:
        service.close()

    drop_document(path, S0)
    assert_loss_stops_deletes(run_cli, ws, S0)


# ---- the same promise with SciCat -------------------------------------------------------------


@pytest.mark.parametrize("cut", ["scicat_before_write", "scicat_after_write"])
def test_a_kill_around_a_scicat_registration_never_loses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: str
) -> None:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=1000)
    switch_to_scicat(ws.config_path)
    ws.write_scan(S0, os.urandom(2048))
    with FakeScicat() as fake:
        fake.users["ingestor"] = SECRET
        env = {
            "SCICAT_URL": fake.base_url,
            "SCICAT_USERNAME": "ingestor",
            "SCICAT_PASSWORD": SECRET,
        }
        assert scicat_cli(ws, env, "--reconcile", "--once").returncode == 0  # copied to cfs
        assert fake.datasets == {}
        inject = {
            "PYTHONPATH": os.pathsep.join([str(KILL), os.environ.get("PYTHONPATH", "")]),
            "BL931_CATALOG_CUT": cut,
        }
        done = scicat_cli(ws, {**env, **inject}, "--reconcile", "--once")
        assert done.returncode == 137, done.stderr
        assert len(fake.datasets) == (cut == "scicat_after_write"), fake.datasets
        assert kept(ws) == set()

        for _ in range(2):
            done = scicat_cli(ws, env, "--reconcile", "--once")
            assert done.returncode == 0, done.stderr
        assert len(fake.datasets) == 1 and kept(ws) == {S0}
        doc = json.loads(scicat_cli(ws, env, "--dry-run", "--json").stdout)
        assert dtn_prunes(doc) == [S0] and doc["alert_details"] == [], doc
        assert scicat_cli(ws, env, "--approve-all", "--yes").returncode == 0

        fake.datasets.clear()  # someone deleted the dataset in SciCat
        dtn_before = census(ws.dtn)
        for _ in range(2):
            done = scicat_cli(ws, env, "--reconcile", "--once")
            assert done.returncode == 1, f"the loss went unnoticed: {done.stderr}"
        audit_run = scicat_cli(ws, env, "--dry-run", "--json")
        doc = json.loads(audit_run.stdout)
        assert audit_run.returncode == 1
        assert [a["code"] for a in doc["alert_details"]] == ["catalog_lost_documents"], doc
        assert dtn_prunes(doc) == [] and census(ws.dtn) == dtn_before
        assert fake.datasets == {}, "the lost dataset was registered again unasked"


# ---- the long-running service's quiet passes ---------------------------------------------------


def standing_lost_alerts(ws: LocalWorkspace) -> list[str]:
    with sqlite3.connect(f"file:{ws.state_path}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT message FROM alerts WHERE code = 'catalog_lost_documents' "
            "AND cleared_at IS NULL"
        )
        return [r[0] for r in rows]


def test_a_settled_service_notices_a_lost_document_and_then_deletes_nothing(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """A settled service runs quiet passes (nothing re-read while nothing changed): a document
    dropped from the catalog file still ends them, raises the alert, and prunes approved after
    it never run."""
    ws = workspace(tmp_path, S0, S1)
    registered = {S0, S1}
    passes(run_cli, ws, 3)
    path = catalog_path(ws)
    assert catalogued(path) == registered
    code, doc = audit(run_cli, ws)
    prune_ids = [a["id"] for a in doc["actions"] if a["kind"] == "delete"]
    assert code == 2 and len(prune_ids) == 2, doc
    dtn_before = census(ws.dtn)
    service = ServiceProcess(ws.config_path, "--interval", "0.2", log_path=tmp_path / "svc.log")
    try:
        service.wait_log(r"pass done in", count=3)
        drop_document(path, S0)
        wait_for(
            lambda: any(S0 in m for m in standing_lost_alerts(ws)),
            timeout=60,
            what="the lost-documents alert",
        )
        # An operator tries to approve the prunes the last audit showed: they are no longer
        # planned (the catalog is unknown), so there is nothing to approve.
        done = run_cli("--approve", *prune_ids, config=ws.config_path)
        assert done.returncode == 64 and "not awaiting approval" in done.stderr, done.stderr
        assert "Traceback" not in run_cli("--approve-all", "--yes", config=ws.config_path).stderr
        seen = service.passes()
        service.wait_log(r"pass done in", count=seen + 3)
        assert census(ws.dtn) == dtn_before, "pruned while the catalog lost a document"
        assert catalogued(path) == {S1}, "the lost document was written again unasked"
        assert standing_lost_alerts(ws), "the alert cleared by itself"
        service.signal(signal.SIGTERM)
        assert service.wait(60) == 0
    finally:
        service.close()
    code, doc = audit(run_cli, ws)
    assert code == 1 and dtn_prunes(doc) == [], doc


def test_a_registration_held_in_memory_never_lands_in_another_catalog(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """The service's catalog vanished at the write of a registration; another catalog file (its
    own identity: another deployment's, a wrong volume) appears at the path. The registration
    held in memory is not written into it, nothing is planned from it, and once the right file
    is back the registration is written there and kept."""
    ws = workspace(tmp_path, S0, retry_base_seconds=0.001)
    path = catalog_path(ws)
    away = tmp_path / "catalog.away"
    passes(run_cli, ws, 1)
    service = vanishing_service(ws, tmp_path, away)
    try:
        wait_for(away.exists, timeout=60, what="the catalog file vanishing at the write")
        other = json.loads(away.read_text("utf-8"))
        (row,) = other["bl931_catalog"].values()
        row["id"] = "another-deployment"
        path.write_text(json.dumps(other), "utf-8")
        foreign = path.read_bytes()
        seen = service.passes()
        service.wait_log(r"pass done in", count=seen + 3)
        assert path.read_bytes() == foreign, "bl931 wrote into another catalog"
        assert kept(ws) == set()
        code, doc = audit(run_cli, ws)
        assert code == 1 and dtn_prunes(doc) == [], doc
        assert [e["class"] for e in doc["errors"] if e["endpoint"] == "catalog"] == ["needs_human"]

        back_then_stop(service, ws, away, path)
    finally:
        service.close()
    drop_document(path, S0)
    assert_loss_stops_deletes(run_cli, ws, S0)


def test_a_kill_in_the_pass_that_accepts_a_loss_neither_loses_nor_widens_it(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, S0, S1, S2)
    registered_three(run_cli, ws)
    path = catalog_path(ws)
    drop_document(path, S0)
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 1
    acknowledge_loss(run_cli, ws, S0)
    done = cut_pass(run_cli, ws, monkeypatch, "after_forget")
    assert done.returncode == 137, done.stderr
    assert kept(ws) == {S1, S2}
    drop_document(path, S1)  # lost after the acknowledgement, while the service was down
    assert_loss_stops_deletes(run_cli, ws, S1)

    drop_document(path, S2)  # lost before S1's loss is acknowledged: not covered by it
    acknowledge_loss(run_cli, ws, S1)
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 1, done.stderr
    (alert,) = lost_alerts(audit(run_cli, ws)[1])
    assert S2 in alert["message"] and S1 not in alert["message"], alert
    assert census(ws.dtn).keys() == {S0, S1, S2}


def test_an_acknowledgement_accepts_every_loss_it_named_not_only_the_five_shown(
    run_cli: RunCli, tmp_path: Path
) -> None:
    scans = [f"2026/11/m{i}.h5" for i in range(7)]
    ws = workspace(tmp_path, *scans)
    passes(run_cli, ws, 3)
    path = catalog_path(ws)
    assert catalogued(path) == set(scans)
    for scan in scans[:6]:
        drop_document(path, scan)
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 1
    (alert,) = lost_alerts(audit(run_cli, ws)[1])
    assert "6 document(s)" in alert["message"] and "and 1 more" in alert["message"], alert
    done = run_cli("--acknowledge", alert["id"], "--why", "all six gone", config=ws.config_path)
    assert done.returncode == 0, done.stderr
    passes(run_cli, ws, 2)
    for scan in scans[:6]:
        assert event_kinds(ws, scan).count("catalog.loss_accepted") == 1, scan
    assert catalogued(path) == set(scans), "the accepted scans were not registered again"
    code, doc = audit(run_cli, ws)
    assert code == 2 and doc["alert_details"] == [] and dtn_prunes(doc) == sorted(scans), doc


def test_an_acknowledgement_without_a_record_of_what_it_named_accepts_nothing(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """A store upgraded while an acknowledged alert stood has no list of the scans it named:
    nothing is forgotten, and the loss is raised again for a person to acknowledge."""
    ws = workspace(tmp_path, S0, S1, S2)
    registered_three(run_cli, ws)
    path = catalog_path(ws)
    drop_document(path, S0)
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 1
    acknowledge_loss(run_cli, ws, S0)
    with sqlite3.connect(ws.state_path) as conn:
        conn.execute("DELETE FROM catalog_lost_named")
    assert_loss_stops_deletes(run_cli, ws, S0)
    assert event_kinds(ws, S0).count("catalog.loss_accepted") == 0
    acknowledge_loss(run_cli, ws, S0)  # acknowledged again: now it is accepted
    passes(run_cli, ws, 2)
    assert event_kinds(ws, S0).count("catalog.loss_accepted") == 1
    assert catalogued(path) == {S0, S1, S2}


def test_a_document_lost_before_the_pass_that_would_adopt_it_is_never_relied_on(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented window: a registration written just before a kill is counted from the
    pass after the restart. Lost before that pass, it raises no alert — but nothing relies on
    it either: a prune an operator approved from an audit that saw the document never runs."""
    ws = workspace(tmp_path, S0)
    path = catalog_path(ws)
    passes(run_cli, ws, 1)
    done = cut_pass(run_cli, ws, monkeypatch, "after_write")
    assert done.returncode == 137, done.stderr
    code, doc = audit(run_cli, ws)
    assert code == 2 and dtn_prunes(doc) == [S0], doc  # the audit reads the durable document
    assert run_cli("--approve-all", "--yes", config=ws.config_path).returncode == 0
    dtn_before = census(ws.dtn)

    drop_document(path, S0)  # lost before any pass adopted it
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert census(ws.dtn) == dtn_before, "pruned on the strength of a lost document"
    assert "delete.submitted" not in event_kinds(ws, S0)
    passes(run_cli, ws, 1)
    assert catalogued(path) == {S0} and kept(ws) == {S0}, "not registered again"
    drop_document(path, S0)  # (the approved prune may have run meanwhile, on the new document)
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 1, done.stderr
    code, doc = audit(run_cli, ws)
    assert code == 1 and [S0 in a["message"] for a in lost_alerts(doc)] == [True], doc


def test_a_catalog_that_comes_back_as_an_older_backup_under_a_pending_write(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """The service's catalog vanished at the write of S1's registration, and what comes back is
    an older backup (the same catalog, before S0 was registered). The registration held in
    memory is merged into it, and kept; S0's document, missing from the backup, is raised as
    lost, and nothing is pruned."""
    ws = workspace(tmp_path, S0, retry_base_seconds=0.001)
    path = catalog_path(ws)
    away = tmp_path / "catalog.away"
    passes(run_cli, ws, 1)
    backup = path.read_bytes()  # the catalog before S0 was registered
    passes(run_cli, ws, 2)
    assert catalogued(path) == {S0} and kept(ws) == {S0}
    ws.write_scan(S1, os.urandom(2048))
    passes(run_cli, ws, 1)  # S1 copied to cfs; registered at the next pass
    assert kept(ws) == {S0}
    dtn_before = census(ws.dtn)
    service = vanishing_service(ws, tmp_path, away)
    try:
        wait_for(away.exists, timeout=60, what="the catalog file vanishing at the write")
        path.write_bytes(backup)  # an older backup is put back
        wait_for(
            lambda: any(S0 in m for m in standing_lost_alerts(ws)),
            timeout=60,
            what="the lost-documents alert for S0",
        )
        wait_for(lambda: S1 in kept(ws), timeout=60, what="S1's registration kept")
        seen = service.passes()
        service.wait_log(r"pass done in", count=seen + 2)
        assert catalogued(path) == {S1}, "the backup was not merged into, or S0 written again"
        (message,) = standing_lost_alerts(ws)
        assert S1 not in message, message
        service.signal(signal.SIGTERM)
        assert service.wait(60) == 0
    finally:
        service.close()
    assert census(ws.dtn) == dtn_before
    code, doc = audit(run_cli, ws)
    assert code == 1 and dtn_prunes(doc) == [], doc
    drop_document(path, S1)  # and S1's document, written from memory, is tracked like S0's
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 1, done.stderr
    (alert,) = lost_alerts(audit(run_cli, ws)[1])
    assert S0 in alert["message"] and S1 in alert["message"], alert

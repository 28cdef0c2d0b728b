"""Adversary: a registration the local catalog wrote just before bl931 was SIGKILLed (before the
state store recorded it) is still one bl931 keeps — driven only through the real `bl931tui` CLI.

Promise (docs/safety.md, "Lost documents stop deletes"; docs/catalog.md, "A catalog that lost
documents"): a scan bl931 asked the catalog to register, whose document the catalog holds, is in
the registrations bl931 keeps — also when the process died between the catalog's write and the
store's record of it. If that document then disappears from the catalog, the next pass raises
`catalog_lost_documents`, and no delete happens while it stands (not even one an operator
approved), nor is the document quietly written again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.workspace import create_workspace
from tests.adversary.test_root_swaps import event_kinds
from tests.adversary.test_tape_swaps import census
from tests.adversary.versions_cli import SCAN, audit, passes
from tests.cli.test_catalog_identity import catalogued, drop_document
from tests.conftest import RunCli

INJECT = Path(__file__).parent / "catalog_inject"


def test_a_registration_written_just_before_a_sigkill_is_kept_and_its_loss_stops_deletes(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The dtn copy may be pruned at once, once cfs holds it and the catalog has it (the default
    # `required_for_delete`); the prune waits for an operator's approval.
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=1000)
    ws.write_scan(SCAN, os.urandom(3000))
    catalog = ws.root / "state" / "catalog.json"
    passes(run_cli, ws, 1)  # copied to cfs; the catalog is initialised, empty
    assert catalogued(catalog) == set()

    # The pass that registers the scan dies right after the catalog file was written.
    with monkeypatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")]))
        patch.setenv("BL931_CRASH_AFTER_CATALOG_WRITE", "1")
        done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 137, done.stderr
    assert catalogued(catalog) == {SCAN}
    assert "catalog.register" not in event_kinds(ws, SCAN), "setup: the store recorded it"

    # Restarted: the next passes find the document (the scan counts as registered) and plan the
    # dtn prune, which an operator approves.
    passes(run_cli, ws, 2)
    code, doc = audit(run_cli, ws)
    prunes = [a for a in doc["actions"] if a["kind"] == "delete" and a["target"] == "dtn"]
    assert len(prunes) == 1 and code == 2, doc
    done = run_cli("--approve-all", "--yes", config=ws.config_path)
    assert done.returncode == 0, done.stderr

    # The document is lost (an older backup of the catalog put back, a hand edit).
    dtn_before = census(ws.dtn)
    assert SCAN in dtn_before
    drop_document(catalog, SCAN)
    for _ in range(2):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode == 1, f"the loss went unnoticed: {done.stderr}"
    code, doc = audit(run_cli, ws)
    assert code == 1
    assert [a["code"] for a in doc["alert_details"]] == ["catalog_lost_documents"], doc
    assert SCAN in doc["alert_details"][0]["message"]
    assert census(ws.dtn) == dtn_before, "dtn pruned while the catalog lost the scan"
    assert catalogued(catalog) == set(), "the lost document was written again unasked"
    assert "delete.submitted" not in event_kinds(ws, SCAN)
    assert json.loads(catalog.read_text("utf-8"))["datasets"] == {}

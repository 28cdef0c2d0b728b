"""A missing local catalog is unknown, never empty — through the real CLI.

Each test plays the adversary against `[catalog] kind = "local"`: the catalog's volume is
unmounted (its mount point left bare, or gone), the file is deleted, a service starts while it is
missing and sees it come back, another writer changes the file between bl931's read and its
write, or the file loses a document. bl931 must never start an empty catalog over a known one,
never overwrite records it did not read, never prune on the strength of a registration in the
wrong catalog, and must say so with a non-zero exit.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from engine.workspace import LocalWorkspace, create_workspace
from tests.conftest import CLI, RunCli
from tests.service.helpers import ServiceProcess, wait_for

INJECT = Path(__file__).parent / "catalog_inject"


@pytest.fixture
def ws(tmp_path: Path) -> LocalWorkspace:
    """DTN retention passed at once; CFS keeps its copies (its prune is not what is tested)."""
    return create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=1000)


def catalog_file(ws: LocalWorkspace) -> Path:
    return ws.root / "state" / "catalog.json"


def scans_at(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".bl931-")
    )


def catalogued(path: Path) -> set[str]:
    """The scan ids the catalog file holds documents for."""
    doc = json.loads(path.read_text("utf-8"))
    return {d["scientificMetadata"]["scan_id"]["value"] for d in doc["datasets"].values()}


def audit(run_cli: RunCli, ws: LocalWorkspace) -> tuple[int, dict]:  # type: ignore[type-arg]
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert done.returncode in (0, 1, 2), done.stderr
    return done.returncode, json.loads(done.stdout)


def settle(
    run_cli: RunCli, ws: LocalWorkspace, passes: int = 4, *, approve: bool = True
) -> list[int]:
    """Run passes (approving whatever awaits approval); returns each pass's exit code."""
    codes = []
    for _ in range(passes):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        codes.append(done.returncode)
        if approve:
            run_cli("--approve-all", "--yes", config=ws.config_path)
    return codes


def blocked(doc: dict, scan: str) -> set[tuple[str, str]]:  # type: ignore[type-arg]
    return {(b["kind"], b["reason_code"]) for b in doc["blocked"] if b["scan"] == scan}


def assert_catalog_unknown(doc: dict, scan: str) -> None:  # type: ignore[type-arg]
    """The audit reports the catalog as an error that needs a person, and waits for it."""
    errors = [e for e in doc["errors"] if e["endpoint"] == "catalog"]
    assert errors and errors[0]["class"] == "needs_human", doc["errors"]
    assert ("delete", "catalog_unavailable") in blocked(doc, scan), doc["blocked"]
    assert not any(a["kind"] == "delete" for a in doc["actions"]), doc["actions"]
    assert not any(a["kind"] in ("register", "update_catalog") for a in doc["actions"])


def catalog_on_a_volume(ws: LocalWorkspace) -> Path:
    """Move the catalog to its own 'volume' folder (before the first pass)."""
    volume = ws.root / "catalogvol"
    volume.mkdir()
    text = ws.config_path.read_text("utf-8")
    moved = text.replace('path = "state/catalog.json"', 'path = "catalogvol/catalog.json"')
    assert moved != text
    ws.config_path.write_text(moved, "utf-8")
    return volume


@pytest.mark.parametrize("mount_point", ["left bare", "gone"])
def test_an_unmounted_catalog_volume_is_unknown_never_empty(
    run_cli: RunCli, ws: LocalWorkspace, mount_point: str
) -> None:
    volume = catalog_on_a_volume(ws)
    for i in range(2):
        ws.write_scan(f"2026/old{i}.h5", os.urandom(256))
    settle(run_cli, ws, 4)
    assert scans_at(ws.dtn) == [] and catalogued(volume / "catalog.json") == {
        "2026/old0.h5",
        "2026/old1.h5",
    }

    # Unmount the catalog's volume: its mount point stays behind empty, or is gone.
    os.rename(volume, ws.root / "catalogvol-offline")
    if mount_point == "left bare":
        volume.mkdir()
    ws.write_scan("2026/new.h5", os.urandom(512))
    codes = settle(run_cli, ws, 4)

    assert codes == [1, 1, 1, 1], "a pass without its catalog must exit non-zero"
    assert not (volume / "catalog.json").exists(), "a fresh catalog was written on the bare mount"
    assert volume.is_dir() == (mount_point == "left bare"), "the mount point was created"
    assert scans_at(ws.dtn) == ["2026/new.h5"], "pruned on the strength of a registration nowhere"
    assert "2026/new.h5" in scans_at(ws.cfs), "copies do not need the catalog"
    code, doc = audit(run_cli, ws)
    assert code == 1
    assert_catalog_unknown(doc, "2026/new.h5")
    assert ("register", "catalog_unavailable") in blocked(doc, "2026/new.h5")
    assert not (volume / "catalog.json").exists()

    # Remount: the real catalog learns of the scan, and only then is it pruned.
    if volume.exists():
        volume.rmdir()
    os.rename(ws.root / "catalogvol-offline", volume)
    settle(run_cli, ws, 4)
    assert catalogued(volume / "catalog.json") == {"2026/old0.h5", "2026/old1.h5", "2026/new.h5"}
    assert scans_at(ws.dtn) == []
    code, doc = audit(run_cli, ws)
    assert code == 0 and doc["errors"] == [] and doc["alert_details"] == [], doc


def test_a_deleted_catalog_is_unknown_never_empty(run_cli: RunCli, ws: LocalWorkspace) -> None:
    for i in range(2):
        ws.write_scan(f"2026/old{i}.h5", os.urandom(256))
    settle(run_cli, ws, 4)
    path = catalog_file(ws)
    backup = ws.root / "catalog.backup.json"
    shutil.copy2(path, backup)

    path.unlink()
    ws.write_scan("2026/new.h5", os.urandom(512))
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 1
    assert "--init-catalog" in done.stderr, "the operator is not told how to resolve it"
    codes = settle(run_cli, ws, 3)
    assert codes == [1, 1, 1]
    assert not path.exists(), "an empty catalog was started over the deleted one"
    assert scans_at(ws.dtn) == ["2026/new.h5"]
    code, doc = audit(run_cli, ws)
    assert code == 1
    assert_catalog_unknown(doc, "2026/new.h5")

    # Restored from the backup: everything carries on.
    shutil.copy2(backup, path)
    settle(run_cli, ws, 3)
    assert catalogued(path) == {"2026/old0.h5", "2026/old1.h5", "2026/new.h5"}
    assert scans_at(ws.dtn) == []
    assert audit(run_cli, ws)[0] == 0


def test_a_service_started_while_the_catalog_is_missing_never_erases_it(
    run_cli: RunCli, tmp_path: Path
) -> None:
    # Both retentions passed: the first scans end up on tape only, so their documents are
    # records nothing could re-create (registering needs a verified CFS copy).
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0)
    for i in range(2):
        ws.write_scan(f"2026/old{i}.h5", os.urandom(256))
    settle(run_cli, ws, 6)
    assert scans_at(ws.dtn) == [] and scans_at(ws.cfs) == []
    path = catalog_file(ws)
    assert catalogued(path) == {"2026/old0.h5", "2026/old1.h5"}
    away = ws.root / "catalog.away"
    os.rename(path, away)

    service = ServiceProcess(ws.config_path, "--interval", "0.2", log_path=tmp_path / "service.log")
    try:
        service.wait_log(r"pass done in", count=2)
        assert not path.exists()
        os.rename(away, path)  # the file is back
        ws.write_scan("2026/new.h5", os.urandom(300))
        wait_for(
            lambda: path.exists() and "2026/new.h5" in catalogued(path),
            timeout=90,
            what="the new scan registered in the catalog",
        )
        assert catalogued(path) == {"2026/old0.h5", "2026/old1.h5", "2026/new.h5"}, (
            "records of scans that exist only on tape were erased"
        )
        service.signal(signal.SIGTERM)
        assert service.wait(60) == 0
    finally:
        service.close()


def test_a_second_writer_between_read_and_write_loses_nothing(
    run_cli: RunCli, ws: LocalWorkspace
) -> None:
    ws.write_scan("2026/mine.h5", os.urandom(256))
    env = {"PYTHONPATH": str(INJECT), "BL931_CATALOG_SECOND_WRITER": "1"}
    logs = ""
    for _ in range(3):
        done = subprocess.run(
            [*CLI, "--config", str(ws.config_path), "--reconcile", "--once"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr
        logs += done.stderr
    assert logs.count("second writer wrote") >= 1, "the race was never staged"
    held = catalogued(catalog_file(ws))
    assert "elsewhere/theirs.h5" in held, "the other writer's record was overwritten"
    assert "2026/mine.h5" in held
    assert audit(run_cli, ws)[1]["errors"] == []


def drop_document(path: Path, scan: str) -> None:
    """Remove one scan's document from the file, as a restore of an older backup would."""
    doc = json.loads(path.read_text("utf-8"))
    doc["datasets"] = {
        key: d
        for key, d in doc["datasets"].items()
        if d["scientificMetadata"]["scan_id"]["value"] != scan
    }
    path.write_text(json.dumps(doc), "utf-8")


def test_a_catalog_that_lost_a_document_raises_an_alert_and_blocks_deletes(
    run_cli: RunCli, ws: LocalWorkspace
) -> None:
    for i in range(3):
        ws.write_scan(f"2026/s{i}.h5", os.urandom(128))
    settle(run_cli, ws, 3, approve=False)  # on cfs and hpss, registered; dtn prunes wait
    path = catalog_file(ws)
    assert catalogued(path) == {"2026/s0.h5", "2026/s1.h5", "2026/s2.h5"}
    good = path.read_bytes()
    code, doc = audit(run_cli, ws)
    assert code == 2 and len([a for a in doc["actions"] if a["kind"] == "delete"]) == 3

    drop_document(path, "2026/s0.h5")
    code, doc = audit(run_cli, ws)
    assert code == 1
    (alert,) = doc["alert_details"]
    assert alert["code"] == "catalog_lost_documents" and alert["endpoint"] == "catalog"
    assert alert["effect"] == "unknown_endpoint"
    assert alert["cleared_by"] == "condition_or_acknowledgement"
    assert "2026/s0.h5" in alert["message"]
    assert not any(a["kind"] == "delete" for a in doc["actions"]), doc["actions"]
    for i in range(3):
        assert ("delete", "catalog_unavailable") in blocked(doc, f"2026/s{i}.h5")
    codes = settle(run_cli, ws, 2)
    assert codes == [1, 1] and len(scans_at(ws.dtn)) == 3, "pruned while the catalog lost records"

    # The documents come back (the newer file is restored): the alert clears by itself.
    path.write_bytes(good)
    code, doc = audit(run_cli, ws)
    assert doc["alert_details"] == [] and code == 2
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0

    # Lost again, and this time an operator accepts the loss: the scan is registered anew.
    drop_document(path, "2026/s0.h5")
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 1
    (alert,) = audit(run_cli, ws)[1]["alert_details"]
    done = run_cli(
        "--acknowledge", alert["id"], "--why", "restored an old backup; re-register",
        config=ws.config_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    settle(run_cli, ws, 3)
    assert catalogued(path) == {"2026/s0.h5", "2026/s1.h5", "2026/s2.h5"}
    assert scans_at(ws.dtn) == []
    code, doc = audit(run_cli, ws)
    assert code == 0 and doc["alert_details"] == [], doc


def test_init_catalog_over_known_registrations_raises_the_lost_documents_alert(
    run_cli: RunCli, ws: LocalWorkspace
) -> None:
    ws.write_scan("2026/a.h5", os.urandom(128))
    settle(run_cli, ws, 3, approve=False)
    path = catalog_file(ws)
    path.unlink()
    done = run_cli("--init-catalog", config=ws.config_path)
    assert done.returncode == 0, done.stderr
    assert path.is_file() and catalogued(path) == set()
    code, doc = audit(run_cli, ws)
    assert code == 1
    assert [a["code"] for a in doc["alert_details"]] == ["catalog_lost_documents"]
    assert not any(a["kind"] == "delete" for a in doc["actions"])


def test_an_upgraded_store_asks_for_init_catalog_and_never_writes_one(
    run_cli: RunCli, ws: LocalWorkspace
) -> None:
    ws.write_scan("2026/a.h5", os.urandom(128))
    settle(run_cli, ws, 3, approve=False)
    path = catalog_file(ws)
    # A deployment from before catalog identities: no identity recorded, none in the file.
    with sqlite3.connect(ws.state_path) as conn:
        conn.execute("DELETE FROM catalog_identity")
    doc = json.loads(path.read_text("utf-8"))
    legacy = {"datasets": doc["datasets"]}
    path.write_text(json.dumps(legacy), "utf-8")
    before = path.read_bytes()

    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 1 and "--init-catalog" in done.stderr, done.stderr
    assert path.read_bytes() == before, "the catalog was written without an operator's step"
    code, doc = audit(run_cli, ws)
    assert code == 1
    assert_catalog_unknown(doc, "2026/a.h5")

    done = run_cli("--init-catalog", config=ws.config_path)
    assert done.returncode == 0, done.stderr
    assert "adopted" in done.stdout
    assert catalogued(path) == {"2026/a.h5"}
    code, doc = audit(run_cli, ws)
    assert code == 2 and doc["errors"] == [] and doc["alert_details"] == [], doc

    # Another catalog file (another identity) at the path is refused, not merged or replaced.
    other = json.loads(path.read_text("utf-8"))
    other["bl931_catalog"] = {"1": {"id": "another-catalog", "generation": 7}}
    path.write_text(json.dumps(other), "utf-8")
    code, doc = audit(run_cli, ws)
    assert code == 1 and any("another-catalog" in e["message"] for e in doc["errors"])

"""The catalog of a scan archived in a bundle: its tape location is `<bundle>#<scan>` and its
dataset lifecycle says archived — in the local catalog and in SciCat (the fake backend,
tests/fakes/scicat_api.py).

SciCat's own archivers mark an archived dataset `archivable = false`, `retrievable = true`,
`archiveStatusMessage = "datasetOnArchiveDisk"` (scicat-backend-next, `LifecycleClass` in
src/datasets/schemas/lifecycle.schema.ts and the archive job's status words); bl931 leaves
`retrievable` false unless `[catalog] retrievable_from_tape` (it serves no retrieve jobs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from engine.workspace import LocalWorkspace, create_workspace
from tests.cli.test_scicat_cli import switch_to_scicat
from tests.fakes.scicat_api import FakeScicat

JAN = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SCANS = ["2026/03/ALS-7/scan_001.h5", "2026/03/ALS-7/scan_002.h5"]
BUNDLE = "/2026-1/bl9.3.1-2026-1-p001.tar"


def cli(ws: LocalWorkspace, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bl931tui", "--config", str(ws.config_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )


def bundled(
    tmp_path: Path, env: dict[str, str] | None = None, scicat: bool = False
) -> LocalWorkspace:
    ws = create_workspace(
        tmp_path / "ws", dtn_keep_days=10**4, cfs_keep_days=10**4, hpss_kind="tape"
    )
    if scicat:
        switch_to_scicat(ws.config_path)
    for n, scan in enumerate(SCANS):
        ws.write_scan(scan, f"scan {n} ".encode() * 400, mtime=JAN)
    for _ in range(4):  # dtn → cfs, cfs → hpss (one bundle), the catalog catches up
        done = cli(ws, env or {}, "--reconcile", "--once")
        assert done.returncode == 0, done.stderr[-3000:]
    return ws


def assert_archived(doc: dict, scan: str) -> None:
    where = {loc["endpoint"]: loc for loc in doc["scientificMetadata"]["locations"]}
    assert where["hpss"]["path"] == f"{BUNDLE}#{scan}" and where["hpss"]["tape"] is True, where
    life = doc["datasetlifecycle"]
    assert life["archivable"] is False, life
    assert life["archiveStatusMessage"] == "datasetOnArchiveDisk", life
    assert life["retrievable"] is False  # bl931 serves no retrieve jobs unless configured
    assert life["isOnCentralDisk"] is True


def test_the_local_catalog_records_bundle_member_and_archived(tmp_path: Path) -> None:
    ws = bundled(tmp_path)
    catalog = json.loads((ws.root / "state" / "catalog.json").read_text("utf-8"))
    docs = catalog["datasets"] if isinstance(catalog, dict) and "datasets" in catalog else catalog
    by_scan = {d["scientificMetadata"]["scan_id"]["value"]: d for d in _documents(docs)}
    for scan in SCANS:
        assert_archived(by_scan[scan], scan)


def test_scicat_records_bundle_member_and_archived(tmp_path: Path) -> None:
    with FakeScicat() as fake:
        fake.users["ingestor"] = "ingestor-password"
        env = {
            "SCICAT_URL": fake.base_url,
            "SCICAT_USERNAME": "ingestor",
            "SCICAT_PASSWORD": "ingestor-password",
        }
        bundled(tmp_path, env, scicat=True)
        assert len(fake.datasets) == 2
        by_scan = {d["scientificMetadata"]["scan_id"]["value"]: d for d in fake.datasets.values()}
        for scan in SCANS:
            assert_archived(by_scan[scan], scan)


def _documents(docs: object) -> list[dict]:
    if isinstance(docs, dict):
        return [d for d in docs.values() if isinstance(d, dict)]
    assert isinstance(docs, list)
    return docs

"""The real CLI with SciCat: a beamline that ran on the local catalog switches and catches up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.workspace import LocalWorkspace
from tests.fakes.scicat_api import FakeScicat

SECRET = "ingestor-password"


def cli(ws: LocalWorkspace, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bl931tui", "--config", str(ws.config_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )


def switch_to_scicat(config_path: Path) -> None:
    text = config_path.read_text("utf-8").replace(
        'kind = "local"\npath = "state/catalog.json"',
        'kind = "scicat"\npath = "state/catalog.json"\nprincipal_investigator = "Jane Doe"',
    )
    assert 'kind = "scicat"' in text
    config_path.write_text(text, "utf-8")


def test_backfill_then_reconcile_against_scicat(workspace: LocalWorkspace) -> None:
    ws = workspace
    for i in range(3):
        ws.write_scan(f"2026/11/ALS-7/s{i}.h5", os.urandom(200))
    for _ in range(2):
        assert cli(ws, {}, "--reconcile", "--once").returncode == 0
    with FakeScicat() as fake:
        fake.users["ingestor"] = SECRET
        switch_to_scicat(ws.config_path)
        env = {
            "SCICAT_URL": fake.base_url,
            "SCICAT_USERNAME": "ingestor",
            "SCICAT_PASSWORD": SECRET,
        }
        missing = cli(ws, {"SCICAT_URL": fake.base_url}, "--dry-run")
        assert missing.returncode == 78 and "SCICAT_USERNAME" in missing.stderr

        done = cli(ws, env, "--backfill-catalog")
        assert done.returncode == 0, done.stderr
        assert "3 registered" in done.stdout
        assert len(fake.datasets) == 3
        assert all(d["numberOfFiles"] == 1 and d["size"] == 200 for d in fake.datasets.values())
        again = cli(ws, env, "--backfill-catalog")
        assert "3 already present" in again.stdout and len(fake.datasets) == 3

        # The service now reads SciCat: the catalog is in step (hpss is recorded), so the only
        # work left is the gated dtn prune; nothing is registered twice.
        audit = cli(ws, env, "--dry-run", "--json")
        doc = json.loads(audit.stdout)
        assert doc["errors"] == [] and doc["summary"]["register"] == 0
        assert cli(ws, env, "--reconcile", "--once").returncode == 0
        assert len(fake.datasets) == 3
        for stream in (done.stderr, again.stderr, audit.stderr):
            assert SECRET not in stream

        fake.stop()  # SciCat goes down: copies continue, deletes that need the catalog wait
        ws.write_scan("2026/11/ALS-7/late.h5", b"late")
        down = cli(ws, env, "--dry-run", "--json")
        doc = json.loads(down.stdout)
        assert down.returncode == 1
        assert [e["endpoint"] for e in doc["errors"]] == ["catalog"]
        assert [a["kind"] for a in doc["actions"]] == ["copy"]
        assert {b["reason_code"] for b in doc["blocked"] if b["kind"] == "delete"} >= {
            "catalog_unavailable"
        }


def test_check_probes_scicat_read_only_with_its_exit_codes(workspace: LocalWorkspace) -> None:
    ws = workspace
    with FakeScicat() as fake:
        fake.users["ingestor"] = SECRET
        switch_to_scicat(ws.config_path)
        env = {
            "SCICAT_URL": fake.base_url,
            "SCICAT_USERNAME": "ingestor",
            "SCICAT_PASSWORD": SECRET,
        }
        missing = cli(ws, {"SCICAT_URL": fake.base_url}, "--check")
        assert missing.returncode == 78 and "SCICAT_USERNAME" in missing.stderr

        wrong = cli(ws, {**env, "SCICAT_PASSWORD": "not-it-123"}, "--check")
        assert wrong.returncode == 1
        assert "catalog login: FAILED" in wrong.stdout and "not-it-123" not in wrong.stdout

        ok = cli(ws, env, "--check")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "catalog login: ok" in ok.stdout and "catalog owner group: ok" in ok.stdout

        fake.groups["ingestor"] = {"als-other"}
        foreign = cli(ws, env, "--check")
        assert foreign.returncode == 1
        assert "catalog owner group: FAILED" in foreign.stdout and "owner_group" in foreign.stdout
        fake.groups["ingestor"] = {"als-9.3.1"}

        # The site's pids (server-made: <PID_PREFIX><uuid>) use another prefix: a new deployment
        # must not start with a prefix the backend's pid validation would refuse.
        site = "20.500.12269/0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"
        fake.datasets[site] = {"pid": site, "ownerGroup": "als-9.3.1", "isPublished": True}
        new = cli(ws, env, "--check")
        assert new.returncode == 1
        assert "catalog pid prefix: FAILED" in new.stdout and "PID_PREFIX" in new.stdout

        # Read-only: the only requests that are not GETs are the four logins.
        writes = [(r.method, r.path) for r in fake.requests if r.method != "GET"]
        assert writes == [("POST", "/api/v3/auth/login")] * 4
        assert fake.datasets.keys() == {site}


def test_a_whole_lifecycle_on_scicat_with_the_default_creation_location(
    workspace: LocalWorkspace,
) -> None:
    """Registered once, archived, pruned from the DTN and CFS (approved), recorded each step."""
    ws = workspace
    for i in range(2):
        ws.write_scan(f"2026/11/scan {i}.h5", os.urandom(300))
    with FakeScicat() as fake:
        fake.users["ingestor"] = SECRET
        switch_to_scicat(ws.config_path)
        assert "creation_location" not in ws.config_path.read_text("utf-8")  # the default
        env = {
            "SCICAT_URL": fake.base_url,
            "SCICAT_USERNAME": "ingestor",
            "SCICAT_PASSWORD": SECRET,
        }
        for _ in range(6):
            assert cli(ws, env, "--reconcile", "--once").returncode == 0
            approved = cli(ws, env, "--approve-all", "--yes")
            assert approved.returncode == 0, approved.stderr
        audit = cli(ws, env, "--dry-run", "--json")
        doc = json.loads(audit.stdout)
        assert audit.returncode == 0, audit.stdout
        assert doc["errors"] == [] and doc["actions"] == []
        assert len(fake.datasets) == 2  # never registered twice
        for dataset in fake.datasets.values():
            assert dataset["creationLocation"] == "ALS 9.3.1"
            assert [x["endpoint"] for x in dataset["scientificMetadata"]["locations"]] == ["hpss"]
            assert dataset["datasetlifecycle"]["isOnCentralDisk"] is False
            assert dataset["datasetlifecycle"]["archivable"] is False
        assert not list((ws.root / "dtn" / "2026" / "11").glob("*.h5"))

        # Converged: a further pass finds everything registered and writes nothing to SciCat.
        def writes() -> int:
            return sum(
                1 for r in fake.requests if r.method in ("POST", "PATCH") and "auth" not in r.path
            )

        before = writes()
        assert cli(ws, env, "--reconcile", "--once").returncode == 0
        assert writes() == before

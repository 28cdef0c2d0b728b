"""The local catalog: same documents as SciCat, atomic once-per-pass writes, loud on corruption."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tinydb import TinyDB

from engine.catalog.base import Catalog
from engine.catalog.dataset import dataset_pid
from engine.catalog.local import LocalCatalog
from engine.config import CatalogConfig
from engine.errors import CatalogUnavailable, TerminalError
from engine.model import ErrorClass
from tests.fakes.scans import cfs, hpss, make_scan

FIXED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "catalog.json"


@pytest.fixture
def local(catalog_path: Path, catalog_config: CatalogConfig) -> LocalCatalog:
    return LocalCatalog(catalog_path, catalog_config, clock=lambda: FIXED)


def test_implements_the_catalog_protocol(local: LocalCatalog) -> None:
    assert isinstance(local, Catalog)
    assert local.name == "local"


def test_register_builds_a_scicat_shaped_document(local: LocalCatalog) -> None:
    scan = make_scan("p1234/alice/scan_0001", files=3)
    pid = local.register(scan, [cfs(scan)])

    assert pid == dataset_pid(scan.id, prefix="bl931", beamline="9.3.1")
    assert pid.startswith("bl931/")
    doc = local.document(scan.id)
    assert doc is not None
    assert doc["sourceFolder"].endswith("/p1234/alice/scan_0001")
    assert doc["creationLocation"] == "ALS 9.3.1"
    assert doc["proposalId"] == "p1234"
    assert doc["principalInvestigator"] == "Jane PI"
    assert doc["accessGroups"] == ["als-9.3.1-staff"]
    assert doc["size"] == scan.size
    assert doc["numberOfFiles"] == 3
    assert doc["creationTime"] == "2026-11-01T08:30:00+00:00"
    assert [f["path"] for f in doc["files"]] == ["frame_000.h5", "frame_001.h5", "frame_002.h5"]
    assert {f["algorithm"] for f in doc["files"]} == {"md5"}
    assert doc["scientificMetadata"]["scan_id"] == {"value": scan.id}
    assert doc["scientificMetadata"]["path_fields"] == {
        "proposal": "p1234",
        "user": "alice",
        "scan": "scan_0001",
    }
    assert doc["datasetlifecycle"]["archivable"] is True
    assert (
        doc["datasetlifecycle"]["dateOfDiskPurging"] == "2028-10-31T08:30:00+00:00"
    )  # 730 days, 2028 is a leap year
    assert doc["createdAt"] == FIXED.isoformat()


def test_register_is_idempotent(local: LocalCatalog) -> None:
    scan = make_scan("p1/u/s1")
    first = local.register(scan, [cfs(scan)])
    second = local.register(scan, [cfs(scan)])
    assert first == second
    assert len(local) == 1


def test_observe_reports_registered_scans_and_their_locations(local: LocalCatalog) -> None:
    a, b = make_scan("p1/u/a"), make_scan("p1/u/b")
    local.register(a, [cfs(a)])
    local.register(b, [cfs(b)])
    local.update_locations(b, [cfs(b), hpss(b)])

    view = local.observe(["p1/u/a", "p1/u/b", "p1/u/never"])

    assert view.enabled and view.ok
    assert view.locations == {"p1/u/a": frozenset({"cfs"}), "p1/u/b": frozenset({"cfs", "hpss"})}
    assert not view.registered("p1/u/never")


def test_update_locations_records_archive_and_prune(local: LocalCatalog) -> None:
    scan = make_scan("p1/u/s")
    local.register(scan, [cfs(scan)])
    local.update_locations(scan, [hpss(scan)])  # archived, then pruned from CFS

    doc = local.document(scan.id)
    assert doc is not None
    lifecycle = doc["datasetlifecycle"]
    assert lifecycle["retrievable"] is False  # bl931 serves no retrieve jobs (unless configured)
    assert lifecycle["archivable"] is False
    assert lifecycle["archiveStatusMessage"] == "datasetOnArchiveDisk"
    assert lifecycle["isOnCentralDisk"] is False
    assert [x["endpoint"] for x in doc["scientificMetadata"]["locations"]] == ["hpss"]


def test_update_of_an_unregistered_scan_is_terminal(local: LocalCatalog) -> None:
    scan = make_scan("p1/u/s")
    with pytest.raises(TerminalError, match="not registered"):
        local.update_locations(scan, [cfs(scan)])


def test_nothing_is_written_before_flush_and_flush_is_tinydb_readable(
    local: LocalCatalog, catalog_path: Path, catalog_config: CatalogConfig
) -> None:
    scan = make_scan("p1/u/s")
    local.register(scan, [cfs(scan)])
    assert not catalog_path.exists()

    local.flush()

    assert catalog_path.is_file()
    leftovers = [p for p in catalog_path.parent.iterdir() if p != catalog_path]
    assert leftovers == []
    with TinyDB(catalog_path) as db:
        rows = db.table("datasets").all()
    assert [r["scientificMetadata"]["scan_id"]["value"] for r in rows] == [scan.id]

    reopened = LocalCatalog(catalog_path, catalog_config)
    assert reopened.observe([scan.id]).locations == {scan.id: frozenset({"cfs"})}
    assert reopened.document(scan.id) == local.document(scan.id)


def test_flush_without_changes_does_not_rewrite(local: LocalCatalog, catalog_path: Path) -> None:
    scan = make_scan("p1/u/s")
    local.register(scan, [cfs(scan)])
    local.flush()
    before = catalog_path.stat().st_ino
    local.register(scan, [cfs(scan)])  # adopted, unchanged
    local.flush()
    assert catalog_path.stat().st_ino == before


def test_a_failed_write_leaves_the_old_file_intact(
    local: LocalCatalog, catalog_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = make_scan("p1/u/a")
    local.register(a, [cfs(a)])
    local.flush()
    good = catalog_path.read_bytes()

    b = make_scan("p1/u/b")
    local.register(b, [cfs(b)])

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(CatalogUnavailable, match="cannot be written"):
        local.flush()
    monkeypatch.undo()

    assert catalog_path.read_bytes() == good
    assert [p.name for p in catalog_path.parent.iterdir()] == [catalog_path.name]
    local.flush()  # still dirty: the next pass writes it
    assert b.id in catalog_path.read_text()


@pytest.mark.parametrize(
    "content", [b"", b"{not json", b'{"datasets": {"1": {"pid": "x"}}}', b"[1, 2]"]
)
def test_a_corrupt_file_is_unavailable_never_silently_empty(
    catalog_path: Path, catalog_config: CatalogConfig, content: bytes
) -> None:
    catalog_path.parent.mkdir(parents=True)
    catalog_path.write_bytes(content)
    local = LocalCatalog(catalog_path, catalog_config)

    with pytest.raises(CatalogUnavailable) as caught:
        local.observe(["p1/u/s"])
    assert str(catalog_path) in str(caught.value)
    assert caught.value.error_class is ErrorClass.NEEDS_HUMAN

    scan = make_scan("p1/u/s")
    with pytest.raises(CatalogUnavailable):
        local.register(scan, [cfs(scan)])
    local.flush()
    assert catalog_path.read_bytes() == content


def test_documents_is_a_snapshot(local: LocalCatalog) -> None:
    a, b = make_scan("p1/u/a"), make_scan("p1/u/b")
    local.register(b, [cfs(b)])
    local.register(a, [cfs(a)])
    docs = local.documents()
    first = next(docs)
    c = make_scan("p1/u/c")
    local.register(c, [cfs(c)])
    assert [first["scientificMetadata"]["scan_id"]["value"]] + [
        d["scientificMetadata"]["scan_id"]["value"] for d in docs
    ] == ["p1/u/a", "p1/u/b"]


def test_a_single_file_scan_uses_its_folder_as_source_folder(local: LocalCatalog) -> None:
    scan = make_scan("p1/u/scan_0007.h5", directory=False)
    local.register(scan, [cfs(scan)])
    doc = local.document(scan.id)
    assert doc is not None
    assert doc["sourceFolder"].endswith("/p1/u")
    assert [f["path"] for f in doc["files"]] == ["scan_0007.h5"]


def test_file_keeps_json_types(local: LocalCatalog, catalog_path: Path) -> None:
    scan = make_scan("p1/u/s")
    local.register(scan, [cfs(scan)])
    local.flush()
    data = json.loads(catalog_path.read_text())
    (doc,) = data["datasets"].values()
    assert isinstance(doc["size"], int)

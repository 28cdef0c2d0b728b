"""Back-fill: a beamline that ran with the local catalog catches SciCat up, idempotently."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.catalog.backfill import MAX_CONSECUTIVE_TRANSIENT, backfill
from engine.catalog.local import LocalCatalog
from engine.catalog.scicat import ScicatCatalog
from engine.config import CatalogConfig
from engine.errors import CatalogUnavailable
from engine.model import ErrorClass
from tests.fakes.scans import cfs, hpss, make_scan
from tests.fakes.scicat_api import FakeScicat

Build = Callable[..., ScicatCatalog]


def filled_local(path: Path, config: CatalogConfig, count: int) -> LocalCatalog:
    """A local catalog of `count` scans; every 10th also archived to HPSS. Flushed and reopened."""
    local = LocalCatalog(path, config)
    for i in range(count):
        scan = make_scan(f"p{i % 7}/user/scan_{i:04d}", files=1 + i % 3)
        locations = [cfs(scan), hpss(scan)] if i % 10 == 0 else [cfs(scan)]
        local.register(scan, locations)
    local.flush()
    return LocalCatalog(path, config)


@pytest.fixture
def five_hundred_scans(tmp_path: Path, catalog_config: CatalogConfig) -> LocalCatalog:
    return filled_local(tmp_path / "catalog.json", catalog_config, 500)


def test_backfill_of_500_scans_registers_each_once_with_progress(
    fake_scicat: FakeScicat, scicat_with_password: Build, five_hundred_scans: LocalCatalog
) -> None:
    seen: list[tuple[int, int]] = []

    result = backfill(five_hundred_scans, scicat_with_password(), lambda d, t: seen.append((d, t)))

    assert (result.total, result.registered, result.adopted, result.failed) == (500, 500, 0, ())
    assert seen[0] == (0, 500) and seen[-1] == (500, 500)
    assert [d for d, _ in seen] == list(range(501))
    assert len(fake_scicat.datasets) == 500
    for doc in five_hundred_scans.documents():
        remote = fake_scicat.datasets[doc["pid"]]
        assert remote["size"] == doc["size"]  # not double-counted
        assert remote["numberOfFiles"] == doc["numberOfFiles"]
        assert len(fake_scicat.datablocks[doc["pid"]]) == 1
        assert remote["scientificMetadata"] == doc["scientificMetadata"]
        assert remote["datasetlifecycle"]["retrievable"] == doc["datasetlifecycle"]["retrievable"]

    posts = fake_scicat.count("POST", "/api/v3/Datasets")
    again = backfill(five_hundred_scans, scicat_with_password())
    assert (again.registered, again.adopted, again.updated) == (0, 500, 0)
    assert fake_scicat.count("POST", "/api/v3/Datasets") == posts  # nothing created twice
    assert len(fake_scicat.datasets) == 500


def test_backfill_resumes_an_interrupted_run_and_updates_stale_locations(
    tmp_path: Path,
    catalog_config: CatalogConfig,
    fake_scicat: FakeScicat,
    scicat_with_password: Build,
) -> None:
    local = filled_local(tmp_path / "c.json", catalog_config, 12)
    first = make_scan("p0/user/scan_0000", files=1)
    scicat_with_password().register(first, [cfs(first)])  # local says cfs + hpss
    second = make_scan("p1/user/scan_0001", files=2)
    fake_scicat.fail_next(1, status=503, match=r"POST .*/origdatablocks$")
    with pytest.raises(Exception, match="503"):
        scicat_with_password().register(second, [cfs(second)])  # crashed before its datablock

    result = backfill(local, scicat_with_password())

    # The scan created without its datablock is not "present": register completes it.
    assert (result.registered, result.adopted, result.updated) == (11, 1, 1)
    assert result.ok
    assert len(fake_scicat.datasets) == 12
    assert len(fake_scicat.datablocks) == 12
    assert all(len(blocks) == 1 for blocks in fake_scicat.datablocks.values())
    assert all(d["size"] > 0 for d in fake_scicat.datasets.values())
    (remote,) = [d for d in fake_scicat.datasets.values() if d["datasetName"] == "scan_0000"]
    assert {x["endpoint"] for x in remote["scientificMetadata"]["locations"]} == {"cfs", "hpss"}


def test_a_rejected_scan_is_reported_and_the_rest_continue(
    tmp_path: Path,
    catalog_config: CatalogConfig,
    fake_scicat: FakeScicat,
    scicat_with_password: Build,
) -> None:
    local = filled_local(tmp_path / "c.json", catalog_config, 5)
    message = '[{"property": "creationTime", "constraints": {"isDateString": "must be a date"}}]'
    fake_scicat.fail_next(
        1,
        status=400,
        match=r"^POST /api/v3/Datasets$",
        body={"statusCode": 400, "message": message, "error": "Bad Request"},
    )

    result = backfill(local, scicat_with_password())

    assert (result.registered, len(result.failed)) == (4, 1)
    (failure,) = result.failed
    assert failure.error_class is ErrorClass.TERMINAL
    assert "creationTime: must be a date" in failure.reason
    assert backfill(local, scicat_with_password()).registered == 1  # a later run finishes


def test_an_outage_mid_run_stops_early_and_is_retried_later(
    tmp_path: Path,
    catalog_config: CatalogConfig,
    fake_scicat: FakeScicat,
    scicat_with_password: Build,
) -> None:
    local = filled_local(tmp_path / "c.json", catalog_config, 20)
    fake_scicat.fail_next(100, status=503, match=r"^POST /api/v3/Datasets$")

    result = backfill(local, scicat_with_password())

    assert result.registered == 0
    assert len(result.failed) == 20
    assert {f.error_class for f in result.failed} == {ErrorClass.TRANSIENT}
    assert fake_scicat.count("POST", "/api/v3/Datasets") == MAX_CONSECUTIVE_TRANSIENT


def test_an_unreachable_target_fails_before_anything_is_attempted(
    tmp_path: Path,
    catalog_config: CatalogConfig,
    fake_scicat: FakeScicat,
    scicat_with_password: Build,
) -> None:
    local = filled_local(tmp_path / "c.json", catalog_config, 3)
    target = scicat_with_password()
    fake_scicat.stop()
    with pytest.raises(CatalogUnavailable):
        backfill(local, target)


def test_backfill_into_another_local_catalog_reproduces_the_documents(
    tmp_path: Path, catalog_config: CatalogConfig
) -> None:
    source = filled_local(tmp_path / "a.json", catalog_config, 30)
    target = LocalCatalog(tmp_path / "b.json", catalog_config)

    result = backfill(source, target)

    assert result.registered == 30
    assert (tmp_path / "b.json").is_file()  # flushed
    volatile = {"createdAt", "updatedAt"}
    for doc in source.documents():
        copy = target.document(doc["scientificMetadata"]["scan_id"]["value"])
        assert copy is not None
        assert {k: v for k, v in copy.items() if k not in volatile} == {
            k: v for k, v in doc.items() if k not in volatile
        }


def test_backfill_replays_the_stored_document(
    tmp_path: Path,
    catalog_config: CatalogConfig,
    fake_scicat: FakeScicat,
    scicat_with_password: Build,
) -> None:
    """What the local catalog recorded is what SciCat gets, not a rebuild from today's config."""
    path = tmp_path / "catalog.json"
    filled_local(path, catalog_config, 3)
    raw = json.loads(path.read_text("utf-8"))
    first, second = raw["datasets"]["1"], raw["datasets"]["2"]
    # Registered when CFS had another root, by a PI named from the path at the time, and with
    # the real date its CFS copy was pruned.
    first["sourceFolder"] = "/global/cfs/old-root/p0/user/scan_0000"
    first["principalInvestigator"] = "Ada Lovelace"
    first["datasetlifecycle"] |= {
        "isOnCentralDisk": False,
        "dateOfDiskPurging": "2027-01-02T03:04:05+00:00",
    }
    # An older bl931 put the contact e-mail where a person's name belongs: never replayed.
    second["principalInvestigator"] = second["contactEmail"]
    second["instrumentId"] = "ALS 9.3.1"  # and the instrument's name where its pid belongs
    path.write_text(json.dumps(raw), "utf-8")

    result = backfill(LocalCatalog(path, catalog_config), scicat_with_password())

    assert result.registered == 3 and result.ok
    remote = fake_scicat.datasets[first["pid"]]
    for key in ("sourceFolder", "creationTime", "principalInvestigator", "scientificMetadata"):
        assert remote[key] == first[key], key
    for key, value in first["datasetlifecycle"].items():
        assert remote["datasetlifecycle"][key] == value, key
    files = [f["path"] for f in fake_scicat.datablocks[first["pid"]][0]["dataFileList"]]
    assert files == [f["path"] for f in first["files"]]
    fixed = fake_scicat.datasets[second["pid"]]
    assert fixed["principalInvestigator"] == "Jane PI"
    assert "instrumentId" not in fixed

"""Pure document builders: pids, path templates, lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.catalog.base import Location
from engine.catalog.dataset import (
    compile_path_template,
    dataset_body,
    dataset_pid,
    lifecycle_body,
    local_document,
    locations_from_document,
    scan_from_document,
)
from engine.config import CatalogConfig
from engine.errors import ConfigError
from engine.model import Level
from tests.fakes.scans import cfs, hpss, make_scan


def test_pid_is_deterministic_prefixed_and_distinct_per_scan_and_beamline() -> None:
    pid = dataset_pid("p1/u/s", prefix="20.500.12269", beamline="9.3.1")
    assert pid == dataset_pid("p1/u/s", prefix="20.500.12269", beamline="9.3.1")
    assert pid.startswith("20.500.12269/")
    assert pid != dataset_pid("p1/u/t", prefix="20.500.12269", beamline="9.3.1")
    assert pid != dataset_pid("p1/u/s", prefix="20.500.12269", beamline="7.3.3")


def test_path_template_extracts_leading_components() -> None:
    template = compile_path_template("{proposal}/{user}/{scan}")
    assert template is not None
    assert template.extract("p1234/alice/scan_01") == {
        "proposal": "p1234",
        "user": "alice",
        "scan": "scan_01",
    }
    assert template.extract("p1234/alice/2026/scan_01.h5")["scan"] == "2026"
    assert template.extract("just_a_file.h5") == {}  # no match: no fields, no error


def test_path_template_with_literals() -> None:
    template = compile_path_template("proposals/ALS-{proposal}/{scan}")
    assert template is not None
    assert template.extract("proposals/ALS-0042/s1") == {"proposal": "0042", "scan": "s1"}
    assert template.extract("proposals/XYZ-0042/s1") == {}


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{proposal/{scan}", "malformed"),
        ("{proposal}}/x", "malformed"),
        ("{}/{scan}", "needs a name"),
        ("{0}/{scan}", "needs a name"),
        ("{a.b}/{scan}", "needs a name"),
        ("{scan:>10}", "format spec"),
        ("{scan}/{scan}", "twice"),
        ("no/fields", "names no"),
    ],
)
def test_malformed_path_templates_are_explained(template: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as caught:
        compile_path_template(template)
    assert "catalog.path_template" in str(caught.value)


def test_no_template_is_fine() -> None:
    assert compile_path_template(None) is None
    assert compile_path_template("") is None


def test_create_body_leaves_size_to_the_datablock(catalog_config: CatalogConfig) -> None:
    scan = make_scan("p1/u/s")
    body = dataset_body(scan, [cfs(scan)], catalog_config, beamline="9.3.1")
    assert "size" not in body and "numberOfFiles" not in body
    assert body["dataFormat"] == "NeXus/HDF5"


def test_source_folder_comes_from_the_source_endpoint(catalog_config: CatalogConfig) -> None:
    scan = make_scan("p1/u/s")
    dtn = Location("dtn", f"/data/dtn/{scan.id}", Level.CHECKSUM)
    body = dataset_body(scan, [dtn, cfs(scan)], catalog_config, beamline="9.3.1")
    assert body["sourceFolder"] == cfs(scan).path


def test_lifecycle_purges_at_the_central_disk_deadline(catalog_config: CatalogConfig) -> None:
    scan = make_scan("p1/u/s")
    soon = scan.acquired_at + timedelta(days=180)
    dtn = Location("dtn", "/d", Level.CHECKSUM, delete_after=soon)
    body = lifecycle_body([dtn, cfs(scan), hpss(scan)], catalog_config)
    # The DTN prune is not SciCat's "disk purging": the central disk (CFS) copy's date is.
    assert body["dateOfDiskPurging"] == cfs(scan).delete_after.isoformat()  # type: ignore[union-attr]
    assert body["archivable"] is False and body["isOnCentralDisk"] is True
    assert body["retrievable"] is False  # bl931 serves no SciCat retrieve jobs
    served = catalog_config.model_copy(update={"retrievable_from_tape": True})
    assert lifecycle_body([cfs(scan), hpss(scan)], served)["retrievable"] is True
    assert lifecycle_body([cfs(scan)], served)["retrievable"] is False

    pruned = lifecycle_body([hpss(scan)], catalog_config)
    assert pruned["isOnCentralDisk"] is False and "dateOfDiskPurging" not in pruned
    when = scan.acquired_at + timedelta(days=731)
    pruned = lifecycle_body([hpss(scan)], catalog_config, pruned_at=when)
    assert pruned["dateOfDiskPurging"] == when.isoformat()


@pytest.mark.parametrize("directory", [True, False])
def test_documents_round_trip_to_scans_and_locations(
    catalog_config: CatalogConfig, directory: bool
) -> None:
    scan = make_scan("p1/u/s.h5" if not directory else "p1/u/s", files=3, directory=directory)
    locations = [cfs(scan), hpss(scan)]
    doc = local_document(scan, locations, catalog_config, beamline="9.3.1")
    assert scan_from_document(doc) == scan
    assert locations_from_document(doc) == locations


def test_naive_acquisition_times_are_taken_as_utc(catalog_config: CatalogConfig) -> None:
    scan = make_scan("p1/u/s")
    naive = type(scan)(
        id=scan.id,
        files=scan.files,
        acquired_at=datetime(2026, 1, 2, 3, 4, 5),
        checksum_algorithm="md5",
        checksum=scan.checksum,
        is_directory=True,
    )
    body = dataset_body(naive, [cfs(naive)], catalog_config, beamline="9.3.1")
    assert body["creationTime"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).isoformat()

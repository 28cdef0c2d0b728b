"""The real pyscicat client against a fake SciCat backend on 127.0.0.1."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.catalog.base import Catalog
from engine.catalog.dataset import dataset_pid
from engine.catalog.factory import build_catalog
from engine.catalog.local import LocalCatalog
from engine.catalog.scicat import ScicatCatalog
from engine.config import CatalogConfig, parse_config
from engine.errors import (
    CatalogUnavailable,
    ConfigError,
    NeedsHumanError,
    TerminalError,
    TransientError,
)
from engine.model import ErrorClass
from engine.secrets import Secret
from tests.fakes.scans import cfs, hpss, make_scan
from tests.fakes.scicat_api import FakeScicat

Build = Callable[..., ScicatCatalog]
PASSWORD = "ingestor-password"


def logins(fake: FakeScicat) -> int:
    return fake.count("POST", "/api/v3/auth/login")


def only_dataset(fake: FakeScicat) -> dict:
    (dataset,) = fake.datasets.values()
    return dataset


def test_implements_the_catalog_protocol(scicat_with_password: Build) -> None:
    assert isinstance(scicat_with_password(), Catalog)


def test_nothing_is_contacted_before_first_use(
    fake_scicat: FakeScicat, scicat_with_password: Build
) -> None:
    scicat_with_password()
    assert fake_scicat.requests == []


def test_register_creates_dataset_and_datablock_without_double_counting(
    fake_scicat: FakeScicat, scicat_with_password: Build
) -> None:
    catalog = scicat_with_password()
    scan = make_scan("p1234/alice/scan_0001", files=3)

    pid = catalog.register(scan, [cfs(scan)])

    assert pid == dataset_pid(scan.id, prefix="bl931", beamline="9.3.1")
    dataset = fake_scicat.datasets[pid]
    assert dataset["type"] == "raw"
    assert dataset["creationLocation"] == "ALS 9.3.1"
    assert dataset["sourceFolder"].endswith("/raw/p1234/alice/scan_0001")
    assert dataset["proposalId"] == "p1234"
    assert dataset["creationTime"] == scan.acquired_at.isoformat()
    assert dataset["scientificMetadata"]["scan_id"] == {"value": scan.id}
    assert dataset["size"] == scan.size  # added once, by the datablock
    assert dataset["numberOfFiles"] == 3
    (block,) = fake_scicat.datablocks[pid]
    assert block["chkAlg"] == "md5"
    assert [f["path"] for f in block["dataFileList"]] == [
        "frame_000.h5",
        "frame_001.h5",
        "frame_002.h5",
    ]
    assert all(f["chk"] and f["time"] for f in block["dataFileList"])
    lifecycle = dataset["datasetlifecycle"]
    assert lifecycle["archivable"] is True
    assert lifecycle["dateOfDiskPurging"].startswith("2028-10-31")
    assert lifecycle["retrieveIntegrityCheck"] is False  # merged, defaults kept
    # The pid's "/" travels as %2F, and the token never rides in the URL.
    assert any("bl931%2F" in r.raw_path for r in fake_scicat.requests)
    assert all("access_token" not in r.query for r in fake_scicat.requests)
    assert logins(fake_scicat) == 1


def test_register_twice_adopts(fake_scicat: FakeScicat, scicat_with_password: Build) -> None:
    scan = make_scan("p1/u/s")
    first = scicat_with_password().register(scan, [cfs(scan)])
    second = scicat_with_password().register(scan, [cfs(scan)])  # a new process
    assert first == second
    assert len(fake_scicat.datasets) == 1
    assert len(fake_scicat.datablocks[first]) == 1
    assert only_dataset(fake_scicat)["size"] == scan.size


def test_crash_between_create_and_datablock_is_completed_not_duplicated(
    fake_scicat: FakeScicat, scicat_with_password: Build
) -> None:
    scan = make_scan("p1/u/s", files=4)
    fake_scicat.fail_next(1, status=503, match=r"POST .*/origdatablocks$")
    with pytest.raises(TransientError):
        scicat_with_password().register(scan, [cfs(scan)])
    assert only_dataset(fake_scicat)["size"] == 0  # created, no datablock yet
    assert not scicat_with_password().observe([scan.id]).registered(scan.id)  # so it is retried

    pid = scicat_with_password().register(scan, [cfs(scan)])

    assert len(fake_scicat.datasets) == 1
    assert len(fake_scicat.datablocks[pid]) == 1
    assert fake_scicat.datasets[pid]["size"] == scan.size
    assert fake_scicat.datasets[pid]["numberOfFiles"] == 4


def test_a_lost_create_response_then_409_is_adopted(
    fake_scicat: FakeScicat, scicat_with_password: Build
) -> None:
    scan = make_scan("p1/u/s")
    fake_scicat.lose_response(r"^POST /api/v3/Datasets$")
    with pytest.raises(TransientError, match="HTTP 502"):
        scicat_with_password().register(scan, [cfs(scan)])
    # The retry's look-ups miss it (a lagging read replica), so the create answers 409.
    fake_scicat.fail_next(1, status=404, match=r"^GET /api/v3/Datasets/bl931/", body={})
    fake_scicat.fail_next(1, status=200, match=r"^GET /api/v3/Datasets$", body=[])

    pid = scicat_with_password().register(scan, [cfs(scan)])

    assert fake_scicat.count("POST", "/api/v3/Datasets") == 2
    assert [
        r.status for r in fake_scicat.requests if r.method == "POST" and r.path.endswith("Datasets")
    ] == [502, 409]
    assert len(fake_scicat.datasets) == 1
    assert len(fake_scicat.datablocks[pid]) == 1
    assert fake_scicat.datasets[pid]["size"] == scan.size


@pytest.mark.parametrize("expired_status", [401, 403], ids=["v5.2-session-expired", "v5.1-403"])
def test_token_expiry_mid_pass_logs_in_again_once(
    fake_scicat: FakeScicat, scicat_with_password: Build, expired_status: int
) -> None:
    fake_scicat.expired_status = expired_status
    catalog = scicat_with_password()
    a, b = make_scan("p1/u/a"), make_scan("p1/u/b")
    catalog.register(a, [cfs(a)])
    fake_scicat.expire_tokens()

    catalog.register(b, [cfs(b)])
    view = catalog.observe([a.id, b.id])

    assert logins(fake_scicat) == 2
    assert view.locations == {a.id: frozenset({"cfs"}), b.id: frozenset({"cfs"})}


def test_a_configured_token_is_used_and_replaced_by_login_when_it_expires(
    fake_scicat: FakeScicat, scicat_with_password: Build
) -> None:
    token = fake_scicat.issue_token()
    catalog = scicat_with_password(token=token)
    scan = make_scan("p1/u/a")
    catalog.observe([scan.id])
    assert logins(fake_scicat) == 0
    fake_scicat.expire_tokens()
    catalog.register(scan, [cfs(scan)])
    assert logins(fake_scicat) == 1


def test_an_expired_token_without_credentials_needs_a_human(
    fake_scicat: FakeScicat, catalog_config: CatalogConfig
) -> None:
    token = fake_scicat.issue_token()
    catalog = ScicatCatalog(
        catalog_config,
        url=fake_scicat.base_url,
        token=Secret(token),
        username=None,
        password=None,
        beamline="9.3.1",
    )
    fake_scicat.expire_tokens()
    scan = make_scan("p1/u/a")
    with pytest.raises(NeedsHumanError) as caught:
        catalog.register(scan, [cfs(scan)])
    assert "SESSION_EXPIRED" in str(caught.value)
    assert "SCICAT_TOKEN" in str(caught.value)
    assert token not in str(caught.value)


def test_a_refusal_with_a_valid_session_is_a_permission_error_without_relogin(
    fake_scicat: FakeScicat, scicat_with_password: Build
) -> None:
    catalog = scicat_with_password()
    fake_scicat.fail_next(
        2,
        status=403,
        match=r"^POST /api/v3/Datasets$",
        body={"statusCode": 403, "message": "Forbidden resource"},
    )
    scan = make_scan("p1/u/a")
    with pytest.raises(NeedsHumanError, match="CREATE_DATASET_WITH_PID_GROUPS"):
        catalog.register(scan, [cfs(scan)])
    assert logins(fake_scicat) == 1  # whoami says the session is fine: no pointless re-login
    assert fake_scicat.datasets == {}


def test_a_refusal_of_the_session_itself_logs_in_again_once(
    fake_scicat: FakeScicat, scicat_with_password: Build
) -> None:
    catalog = scicat_with_password()
    assert catalog.account() is not None  # the session's account, known before the refusal
    fake_scicat.fail_next(1, status=403, match=r"^POST /api/v3/Datasets$")
    fake_scicat.fail_next(1, status=401, match=r"^GET .*/auth/whoami$")
    scan = make_scan("p1/u/a")
    assert catalog.register(scan, [cfs(scan)]) in fake_scicat.datasets
    assert logins(fake_scicat) == 2


def test_a_wrong_password_needs_a_human(
    fake_scicat: FakeScicat, catalog_config: CatalogConfig
) -> None:
    catalog = ScicatCatalog(
        catalog_config,
        url=fake_scicat.base_url,
        token=None,
        username=Secret("ingestor"),
        password=Secret("wrong-password-123"),
        beamline="9.3.1",
    )
    with pytest.raises(CatalogUnavailable) as caught:
        catalog.observe(["p1/u/a"])
    assert caught.value.error_class is ErrorClass.NEEDS_HUMAN
    assert "wrong-password-123" not in str(caught.value)


def test_observe_queries_once_per_page(
    fake_scicat: FakeScicat, scicat_with_password: Build
) -> None:
    catalog = scicat_with_password(page_size=10)
    scans = [make_scan(f"p1/u/s{i:02d}", files=1) for i in range(25)]
    for scan in scans:
        catalog.register(scan, [cfs(scan)])
    catalog.update_locations(scans[3], [cfs(scans[3]), hpss(scans[3])])
    fake_scicat.datasets["other/1"] = {"pid": "other/1", "creationLocation": "/ALS/9.3.1"}
    before = fake_scicat.count("GET", "/api/v3/Datasets")

    view = scicat_with_password(page_size=10).observe([s.id for s in scans[:20]] + ["p1/u/nope"])

    assert fake_scicat.count("GET", "/api/v3/Datasets") - before == 3  # 26 datasets, pages of 10
    assert view.enabled and view.ok
    assert set(view.locations) == {s.id for s in scans[:20]}
    assert view.locations[scans[3].id] == frozenset({"cfs", "hpss"})


def test_update_locations_patches_partially_and_merges_lifecycle(
    fake_scicat: FakeScicat, scicat_with_password: Build
) -> None:
    catalog = scicat_with_password()
    scan = make_scan("p1/u/s")
    pid = catalog.register(scan, [cfs(scan)])
    fake_scicat.datasets[pid]["datasetlifecycle"]["exportedTo"] = "elsewhere"
    fake_scicat.datasets[pid]["scientificMetadata"]["curator_note"] = {"value": "keep me"}

    catalog.update_locations(scan, [cfs(scan), hpss(scan)])
    catalog.update_locations(scan, [hpss(scan)])  # CFS pruned

    dataset = fake_scicat.datasets[pid]
    assert [x["endpoint"] for x in dataset["scientificMetadata"]["locations"]] == ["hpss"]
    assert dataset["scientificMetadata"]["curator_note"] == {"value": "keep me"}
    lifecycle = dataset["datasetlifecycle"]
    assert lifecycle["retrievable"] is False  # no retrieve jobs served unless configured
    assert lifecycle["archivable"] is False
    assert lifecycle["isOnCentralDisk"] is False
    assert lifecycle["exportedTo"] == "elsewhere"
    assert dataset["size"] == scan.size


def test_update_of_an_unregistered_scan_is_terminal(scicat_with_password: Build) -> None:
    scan = make_scan("p1/u/s")
    with pytest.raises(TerminalError, match="not registered"):
        scicat_with_password().update_locations(scan, [cfs(scan)])


def test_validation_errors_are_listed_field_by_field(
    fake_scicat: FakeScicat, scicat_with_password: Build
) -> None:
    catalog = scicat_with_password()
    scan = make_scan("p1/u/s")
    pid = catalog.register(scan, [cfs(scan)])
    with pytest.raises(TerminalError) as caught:
        catalog.call(
            "patch",
            f"Datasets/{pid.replace('/', '%2F')}",
            {"pid": "x", "type": "raw", "bogus": 1},
            operation="patch",
        )
    text = str(caught.value)
    assert "HTTP 400" in text
    assert "  pid: property pid should not exist" in text
    assert "  type: property type should not exist" in text
    assert "  bogus: property bogus should not exist" in text


def test_a_rejected_create_names_the_field(
    fake_scicat: FakeScicat, scicat_with_password: Build, catalog_config: CatalogConfig
) -> None:
    catalog = ScicatCatalog(
        catalog_config.model_copy(update={"owner": ""}),
        url=fake_scicat.base_url,
        token=None,
        username=Secret("ingestor"),
        password=Secret(PASSWORD),
        beamline="9.3.1",
    )
    scan = make_scan("p1/u/s")
    with pytest.raises(TerminalError, match=r"owner: owner should not be null or undefined"):
        catalog.register(scan, [cfs(scan)])


def test_scicat_stopped_is_unavailable_and_transient(
    fake_scicat: FakeScicat, scicat_with_password: Build
) -> None:
    catalog = scicat_with_password()
    catalog.observe([])
    fake_scicat.stop()
    with pytest.raises(CatalogUnavailable) as caught:
        catalog.observe(["p1/u/a"])
    assert caught.value.error_class is ErrorClass.TRANSIENT
    assert "cannot reach" in str(caught.value)
    scan = make_scan("p1/u/a")
    with pytest.raises(TransientError):
        catalog.register(scan, [cfs(scan)])


@pytest.mark.parametrize(
    ("status", "html"),
    [(503, False), (502, True), (200, True)],
    ids=["503", "html-502", "html-200-proxy-page"],
)
def test_server_errors_and_proxy_pages_are_transient(
    fake_scicat: FakeScicat, scicat_with_password: Build, status: int, html: bool
) -> None:
    catalog = scicat_with_password()
    catalog.observe([])
    fake_scicat.fail_next(1, status=status, html=html)
    with pytest.raises(CatalogUnavailable) as caught:
        catalog.observe(["p1/u/a"])
    assert caught.value.error_class is ErrorClass.TRANSIENT
    assert catalog.observe(["p1/u/a"]).ok  # recovers on the next call


def test_secrets_never_reach_logs_or_errors(
    fake_scicat: FakeScicat, catalog_config: CatalogConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = fake_scicat.issue_token()
    catalog = ScicatCatalog(
        catalog_config,
        url=fake_scicat.base_url,
        token=Secret(token),
        username=Secret("ingestor"),
        password=Secret(PASSWORD),
        beamline="9.3.1",
    )
    messages: list[str] = []
    scan = make_scan("p1/u/a")
    catalog.register(scan, [cfs(scan)])
    fake_scicat.expire_tokens()
    catalog.update_locations(scan, [cfs(scan), hpss(scan)])  # re-login
    # The list, whoami and the new login are all refused (quoting the token).
    fake_scicat.fail_next(3, status=403, body={"statusCode": 403, "message": f"bad {token}"})
    with pytest.raises(CatalogUnavailable) as refused:
        catalog.observe([scan.id])
    assert refused.value.error_class is ErrorClass.NEEDS_HUMAN
    messages.append(str(refused.value))
    fake_scicat.stop()
    with pytest.raises(CatalogUnavailable) as down:
        catalog.observe([scan.id])
    messages.append(str(down.value))
    messages.append(repr(catalog.__dict__))

    leaked = [s for s in (token, PASSWORD) if s in caplog.text or any(s in m for m in messages)]
    assert leaked == []
    assert "logging in again" in caplog.text


# ---- configuration ------------------------------------------------------------------------


def test_from_environment_names_missing_variables(catalog_config: CatalogConfig) -> None:
    with pytest.raises(ConfigError, match="SCICAT_URL"):
        ScicatCatalog.from_environment(catalog_config, {})
    with pytest.raises(ConfigError, match=r"SCICAT_TOKEN.*SCICAT_PASSWORD"):
        ScicatCatalog.from_environment(
            catalog_config, {"SCICAT_URL": "http://x", "SCICAT_USERNAME": "u"}
        )


def test_from_environment_reads_the_owner_only_secrets_file(
    tmp_path: Path, fake_scicat: FakeScicat, catalog_config: CatalogConfig
) -> None:
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(f'SCICAT_USERNAME = "ingestor"\nSCICAT_PASSWORD = "{PASSWORD}"\n')
    os.chmod(secrets_file, 0o600)
    config = catalog_config.model_copy(update={"secrets_file": secrets_file})
    host = fake_scicat.base_url.removesuffix("/api/v3")

    catalog = ScicatCatalog.from_environment(config, {"SCICAT_URL": host + "/"})

    assert catalog.url == fake_scicat.base_url
    scan = make_scan("p1/u/a")
    assert catalog.register(scan, [cfs(scan)]) in fake_scicat.datasets
    assert PASSWORD not in repr(catalog.__dict__)


def _config(catalog: dict) -> object:
    return parse_config(
        {
            "endpoints": {
                "dtn": {"kind": "local", "path": "/data/dtn"},
                "cfs": {"kind": "local", "path": "/data/cfs"},
            },
            "copy": [{"from": "dtn", "to": "cfs"}],
            "catalog": catalog,
        }
    )


def test_factory_builds_each_kind(tmp_path: Path) -> None:
    assert build_catalog(_config({"kind": "none"})) is None  # type: ignore[arg-type]

    local = build_catalog(_config({"kind": "local", "path": str(tmp_path / "c.json")}))  # type: ignore[arg-type]
    assert isinstance(local, LocalCatalog)
    assert local.config.source_endpoint == "cfs"  # defaults to the first copy target

    env = {"SCICAT_URL": "http://scicat.invalid/api/v3", "SCICAT_TOKEN": "t0ken-abc"}
    remote = build_catalog(_config({"kind": "scicat", "principal_investigator": "A B"}), env)  # type: ignore[arg-type]
    assert isinstance(remote, ScicatCatalog)
    with pytest.raises(ConfigError, match="SCICAT_URL"):
        build_catalog(_config({"kind": "scicat"}), {})  # type: ignore[arg-type]


def test_a_malformed_path_template_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"catalog.path_template.*malformed"):
        build_catalog(
            _config({"kind": "local", "path": str(tmp_path / "c"), "path_template": "{proposal/x"})  # type: ignore[arg-type]
        )

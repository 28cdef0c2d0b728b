"""Scenarios from a real SciCat backend (Feb 2026 snapshot after v4.27.0), through pyscicat.

Each reproduces an observed backend behaviour in the fake (see `tests.fakes.scicat_api`) and pins
what bl931 must do about it: converge despite `WherePipe`'s date conversion, keep its session
alive, never take an unexpectedly short listing for "nothing registered", and name the backend
setting behind each permission refusal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from engine.catalog.dataset import dataset_pid
from engine.catalog.pid_book import MemoryPidBook
from engine.catalog.scicat import ScicatCatalog
from engine.clock import FakeClock
from engine.config import CatalogConfig
from engine.errors import CatalogUnavailable, ConfigError, NeedsHumanError
from engine.model import ErrorClass
from engine.secrets import Secret
from tests.fakes.scans import cfs, hpss, make_scan
from tests.fakes.scicat_api import FakeScicat
from tests.fakes.v8_date import js_date_accepts

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
Build = Callable[..., ScicatCatalog]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeScicat]:
    with FakeScicat(clock=clock, token_ttl_seconds=600) as server:
        yield server


@pytest.fixture
def build(fake: FakeScicat, catalog_config: CatalogConfig, clock: FakeClock) -> Build:
    def make(
        *,
        book: MemoryPidBook | None = None,
        token: str | None = None,
        login: bool = True,
        **config: Any,
    ) -> ScicatCatalog:
        return ScicatCatalog(
            catalog_config.model_copy(update={"kind": "scicat", **config}),
            url=fake.base_url,
            token=Secret(token) if token else None,
            username=Secret("ingestor") if login else None,
            password=Secret(fake.users["ingestor"]) if login else None,
            beamline="9.3.1",
            timeout_seconds=5,
            clock=clock,
            pid_book=book if book is not None else MemoryPidBook(),
        )

    return make


def logins(fake: FakeScicat) -> int:
    return fake.count("POST", "/api/v3/auth/login")


def where_clauses(fake: FakeScicat) -> list[Any]:
    out = []
    for request in fake.requests:
        if request.method == "GET" and "filter" in request.query:
            out.append(json.loads(request.query["filter"][0]).get("where", {}))
    return out


def date_like_object_values(where: Any) -> list[str]:
    """Leaf strings WherePipe would convert (values of object keys; list members are safe)."""
    found: list[str] = []
    if isinstance(where, dict):
        for value in where.values():
            if isinstance(value, str) and js_date_accepts(value):
                found.append(value)
            elif isinstance(value, str):
                found.append(f"(unsafe by luck) {value}")
            else:
                found += date_like_object_values(value)
    elif isinstance(where, list):
        for item in where:
            if isinstance(item, dict | list):
                found += date_like_object_values(item)
    return found


# ---- 1. WherePipe ------------------------------------------------------------------------


@pytest.mark.parametrize("location", ["/ALS/9.3.1", "ALS 9.3.1"])
def test_a_date_like_creation_location_converges(
    fake: FakeScicat, build: Build, location: str
) -> None:
    assert js_date_accepts(location)
    scans = [make_scan(f"p1/u/s{i}") for i in range(3)]
    first = build(creation_location=location)
    for scan in scans:
        first.register(scan, [cfs(scan)])
    posts = fake.count("POST", "/api/v3/Datasets")

    # A new process with no memory of the pids (nothing recorded yet) still finds them all.
    later = build(creation_location=location)
    view = later.observe([s.id for s in scans])
    for scan in scans:
        later.register(scan, [cfs(scan)])

    assert set(view.locations) == {s.id for s in scans}
    assert fake.count("POST", "/api/v3/Datasets") == posts == 3
    assert all(d["creationLocation"] == location for d in fake.datasets.values())


def test_no_where_value_is_a_bare_string(fake: FakeScicat, build: Build) -> None:
    catalog = build(creation_location="/ALS/9.3.1")
    scan = make_scan("p1/u/scan 1")
    catalog.register(scan, [cfs(scan)])
    catalog.observe([scan.id, "p1/u/other"])
    build().update_locations(scan, [cfs(scan), hpss(scan)])
    build().register(make_scan("p1/u/new"), [cfs(make_scan("p1/u/new"))])

    clauses = where_clauses(fake)
    assert clauses
    assert [v for w in clauses for v in date_like_object_values(w)] == []


def test_where_dates_switched_off_is_v4_26_and_converges_too(
    fake: FakeScicat, build: Build
) -> None:
    fake.where_dates = False
    scan = make_scan("p1/u/s")
    build().register(scan, [cfs(scan)])
    assert build().observe([scan.id]).registered(scan.id)


# ---- 2. the session ------------------------------------------------------------------------


@pytest.mark.parametrize("expired_status", [403, 401], ids=["anonymous-v4", "session-expired-v5"])
@pytest.mark.parametrize("expiry_in_answer", [True, False], ids=["login-answer", "jwt-exp"])
def test_the_session_is_refreshed_before_it_expires(
    fake: FakeScicat,
    build: Build,
    clock: FakeClock,
    expired_status: int,
    expiry_in_answer: bool,
) -> None:
    fake.expired_status = expired_status
    fake.login_expiry_fields = expiry_in_answer
    catalog = build()
    scans = [make_scan(f"p1/u/s{i}") for i in range(3)]
    for scan in scans:
        catalog.register(scan, [cfs(scan)])
    seen = len(fake.requests)

    clock.advance(590)  # ten seconds before the 600 s token runs out
    view = catalog.observe([s.id for s in scans])
    clock.advance(700)
    catalog.update_locations(scans[0], [cfs(scans[0]), hpss(scans[0])])

    assert set(view.locations) == {s.id for s in scans}
    assert logins(fake) == 3
    later = fake.requests[seen:]
    # Never a request on a stale token: no anonymous answer, no 401.
    assert [r.status for r in later if r.status in (401, 403)] == []


def test_an_unexpectedly_empty_listing_is_unknown_not_nothing(
    fake: FakeScicat, build: Build
) -> None:
    """A static token the backend treats as anonymous lists `200 []`: that proves nothing."""
    fake.expired_status = 403
    book = MemoryPidBook()
    writer = build(book=book)
    scans = [make_scan(f"p1/u/s{i}") for i in range(3)]
    for scan in scans:
        writer.register(scan, [cfs(scan)])
    token = fake.issue_token()
    reader = build(book=book, token=token, login=False)
    fake.expire_tokens()

    with pytest.raises(CatalogUnavailable) as caught:
        reader.observe([s.id for s in scans])

    assert caught.value.error_class is ErrorClass.NEEDS_HUMAN
    assert "SCICAT_TOKEN" in str(caught.value)


def test_a_listing_smaller_than_recorded_is_checked_by_pid(fake: FakeScicat, build: Build) -> None:
    book = MemoryPidBook()
    catalog = build(book=book)
    a, b, c = (make_scan(f"p1/u/{n}") for n in "abc")
    for scan in (a, b, c):
        catalog.register(scan, [cfs(scan)])
    del fake.datasets[book.get(a.id)]  # a curator deleted it: 404 by pid is proof

    view = build(book=book).observe([a.id, b.id, c.id])
    assert set(view.locations) == {b.id, c.id}

    fake.datasets[book.get(b.id)]["ownerGroup"] = "someone-else"  # moved away: not ours now
    with pytest.raises(CatalogUnavailable) as caught:
        build(book=book).observe([a.id, b.id, c.id])
    assert caught.value.error_class is ErrorClass.NEEDS_HUMAN
    assert "belongs to another group" in str(caught.value)
    assert book.get(b.id) in str(caught.value)


# ---- 4. a pid owned by another group -------------------------------------------------------


def test_a_403_on_our_pid_is_another_groups_dataset(fake: FakeScicat, build: Build) -> None:
    scan = make_scan("p1/u/s")
    pid = dataset_pid(scan.id, prefix="bl931", beamline="9.3.1")
    fake.datasets[pid] = {"pid": pid, "ownerGroup": "als-7.0.1", "creationLocation": "x"}
    catalog = build()
    catalog.observe([])  # logged in: the session is known to be fresh

    with pytest.raises(NeedsHumanError) as caught:
        catalog.register(scan, [cfs(scan)])

    text = str(caught.value)
    assert "belongs to another group or account" in text and pid in text
    assert logins(fake) == 1  # not retried as an authentication failure
    assert fake.count("POST", "/api/v3/Datasets") == 0


# ---- 3/4. permissions name the backend setting ---------------------------------------------


def test_create_without_the_pid_permission_names_the_backend_groups(
    fake: FakeScicat, build: Build
) -> None:
    fake.create_with_pid_groups = set()
    scan = make_scan("p1/u/s")
    with pytest.raises(NeedsHumanError) as caught:
        build().register(scan, [cfs(scan)])
    text = str(caught.value)
    assert "CREATE_DATASET_WITH_PID_GROUPS" in text and "als-9.3.1" in text
    assert logins(fake) == 1


def test_a_privileged_account_may_create_with_pid(fake: FakeScicat, build: Build) -> None:
    fake.create_with_pid_groups = set()
    fake.privileged_groups = {"als-9.3.1"}
    scan = make_scan("p1/u/s")
    assert build().register(scan, [cfs(scan)]) in fake.datasets


def test_a_pid_against_the_site_pattern_names_pid_prefix(fake: FakeScicat, build: Build) -> None:
    fake.pid_pattern = r"^20\.500\.12269/[0-9a-f-]{36}$"
    scan = make_scan("p1/u/s")
    with pytest.raises(NeedsHumanError) as caught:
        build().register(scan, [cfs(scan)])
    text = str(caught.value)
    assert "pid_prefix" in text and "DATASET_CREATION_VALIDATION_REGEX" in text
    assert fake.datasets == {}

    pid = build(pid_prefix="20.500.12269").register(scan, [cfs(scan)])
    assert pid.startswith("20.500.12269/")


def test_an_owner_group_the_account_is_not_in_is_named(fake: FakeScicat, build: Build) -> None:
    fake.privileged_groups = {"als-9.3.1"}  # may create for any group, but then not read it
    scan = make_scan("p1/u/s")
    with pytest.raises(NeedsHumanError) as caught:
        build(owner_group="als-other").register(scan, [cfs(scan)])
    text = str(caught.value)
    assert "owner_group" in text and "als-other" in text


# ---- 5. records a facility can use ---------------------------------------------------------


def test_pids_are_stable_when_the_prefix_and_location_change(
    fake: FakeScicat, build: Build
) -> None:
    book = MemoryPidBook()
    old = make_scan("p1/u/old")
    old_pid = build(book=book).register(old, [cfs(old)])

    moved = build(book=book, pid_prefix="20.500.12269", creation_location="ALS 9.3.1")
    new = make_scan("p1/u/new")
    view = moved.observe([old.id])
    new_pid = moved.register(new, [cfs(new)])
    moved.update_locations(old, [cfs(old), hpss(old)])

    assert view.registered(old.id)
    assert book.get(old.id) == old_pid and old_pid.startswith("bl931/")
    assert new_pid.startswith("20.500.12269/") and book.get(new.id) == new_pid
    assert len(fake.datasets) == 2
    assert [x["endpoint"] for x in fake.datasets[old_pid]["scientificMetadata"]["locations"]] == [
        "cfs",
        "hpss",
    ]


def test_instrument_pid_and_a_person_as_principal_investigator(
    fake: FakeScicat, build: Build
) -> None:
    scan = make_scan("p1/u/s")
    pid = build().register(scan, [cfs(scan)])
    assert "instrumentId" not in fake.datasets[pid]
    assert fake.datasets[pid]["principalInvestigator"] == "Jane PI"
    assert fake.datasets[pid]["scientificMetadata"]["instrument_name"] == {"value": "ALS 9.3.1"}

    other = make_scan("p1/u/t")
    pid = build(instrument_pid="20.500.12269/0f5c-instrument").register(other, [cfs(other)])
    assert fake.datasets[pid]["instrumentId"] == "20.500.12269/0f5c-instrument"


def test_no_principal_investigator_is_a_config_error(
    fake: FakeScicat, catalog_config: CatalogConfig
) -> None:
    config = catalog_config.model_copy(
        update={"kind": "scicat", "principal_investigator": "", "path_template": None}
    )
    env = {"SCICAT_URL": fake.base_url, "SCICAT_TOKEN": "t0ken"}
    with pytest.raises(ConfigError, match="principal_investigator"):
        ScicatCatalog.from_environment(config, env)
    # A path field {pi} names the person per scan instead.
    with_pi = config.model_copy(update={"path_template": "{pi}/{scan}"})
    assert ScicatCatalog.from_environment(with_pi, env) is not None


# ---- 6. the lifecycle ---------------------------------------------------------------------


def test_the_create_carries_the_lifecycle_and_an_adopt_merges_it(
    fake: FakeScicat, build: Build
) -> None:
    scan = make_scan("p1/u/s")
    pid = build(retrievable_from_tape=True).register(scan, [cfs(scan), hpss(scan)])
    lifecycle = fake.datasets[pid]["datasetlifecycle"]
    assert lifecycle["archivable"] is False and lifecycle["retrievable"] is True
    assert fake.count("PATCH", r".*/datasetlifecycle") == 0  # no second request to crash before

    # A dataset an older bl931 created but whose lifecycle PATCH never came: adopt merges it.
    old = make_scan("p1/u/old")
    build().register(old, [cfs(old)])
    old_pid = dataset_pid(old.id, prefix="bl931", beamline="9.3.1")
    fake.datasets[old_pid]["datasetlifecycle"] = {"archivable": True}
    build().register(old, [cfs(old), hpss(old)])
    assert fake.datasets[old_pid]["datasetlifecycle"]["archivable"] is False
    assert fake.datasets[old_pid]["datasetlifecycle"]["isOnCentralDisk"] is True


def test_the_central_disk_prune_records_its_real_date(
    fake: FakeScicat, build: Build, clock: FakeClock
) -> None:
    scan = make_scan("p1/u/s")
    catalog = build()
    pid = catalog.register(scan, [cfs(scan), hpss(scan)])
    planned = fake.datasets[pid]["datasetlifecycle"]["dateOfDiskPurging"]
    assert planned == cfs(scan).delete_after.isoformat()  # type: ignore[union-attr]

    clock.advance(3600)
    catalog.update_locations(scan, [hpss(scan)])  # pruned from CFS now
    lifecycle = fake.datasets[pid]["datasetlifecycle"]
    assert lifecycle["isOnCentralDisk"] is False
    assert lifecycle["dateOfDiskPurging"] == clock.now().isoformat()

    clock.advance(3600)
    catalog.update_locations(scan, [hpss(scan)])  # a later update keeps the real date
    assert fake.datasets[pid]["datasetlifecycle"]["dateOfDiskPurging"] != clock.now().isoformat()


def test_a_backend_without_whoami_still_registers_and_observes(
    fake: FakeScicat, build: Build
) -> None:
    fake.fail_next(1000, status=404, match=r"^GET /api/v3/auth/whoami$")
    scan = make_scan("p1/u/s")
    catalog = build()
    pid = catalog.register(scan, [cfs(scan)])
    assert catalog.observe([scan.id]).registered(scan.id)
    fake.datasets[pid]["ownerGroup"] = "someone-else"
    with pytest.raises(CatalogUnavailable, match="belongs to another group"):
        catalog.observe([scan.id])

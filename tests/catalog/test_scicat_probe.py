"""The read-only probe behind `--check` and the service's start-up log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from engine.catalog.pid_book import MemoryPidBook, PidSettings
from engine.catalog.scicat import ScicatCatalog
from engine.catalog.scicat_probe import Verdict, probe_scicat
from tests.fakes.scans import cfs, make_scan
from tests.fakes.scicat_api import FakeScicat

SITE = "20.500.12269/0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"


def verdicts(catalog: ScicatCatalog) -> dict[str, Verdict]:
    return {r.check: r.verdict for r in probe_scicat(catalog)}


def test_an_existing_deployment_with_another_prefix_is_warned_not_failed(
    fake_scicat: FakeScicat, scicat_with_password: Callable[..., ScicatCatalog]
) -> None:
    fake_scicat.datasets[SITE] = {"pid": SITE, "ownerGroup": "x", "isPublished": True}
    catalog = scicat_with_password()
    assert verdicts(catalog)["pid prefix"] is Verdict.FAILED  # nothing registered yet

    scan = make_scan("p1/u/s")
    catalog.register(scan, [cfs(scan)])
    assert verdicts(catalog) == {
        "login": Verdict.OK,
        "owner group": Verdict.OK,
        "own pid": Verdict.OK,
        "pid prefix": Verdict.WARNING,
    }


def test_changed_settings_are_reported(
    fake_scicat: FakeScicat, scicat_with_password: Callable[..., ScicatCatalog]
) -> None:
    catalog = scicat_with_password()
    book = MemoryPidBook()
    book.record("a", "bl931/x", PidSettings("bl931", "9.3.1", "/ALS/9.3.1"), datetime.now(UTC))
    catalog.pid_book = book
    (drift,) = [r for r in probe_scicat(catalog) if r.check == "settings"]
    assert drift.verdict is Verdict.WARNING
    assert "creation_location '/ALS/9.3.1' → 'ALS 9.3.1'" in drift.message


def test_another_groups_pid_fails_the_probe(
    fake_scicat: FakeScicat, scicat_with_password: Callable[..., ScicatCatalog]
) -> None:
    catalog = scicat_with_password()
    book = MemoryPidBook()
    book.record("a", "bl931/x", PidSettings("bl931", "9.3.1", "ALS 9.3.1"), datetime.now(UTC))
    catalog.pid_book = book
    fake_scicat.datasets["bl931/x"] = {"pid": "bl931/x", "ownerGroup": "someone-else"}
    (own,) = [r for r in probe_scicat(catalog) if r.check == "own pid"]
    assert own.verdict is Verdict.FAILED and "belongs to another group" in own.message

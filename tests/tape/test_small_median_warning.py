"""`kind = "globus"` with `tape = true` keeps working, but the first pass that sees the
inventory warns when the median scan is under 1 GB, pointing at `kind = "tape"` (NERSC asks that
files under ~100 GB be bundled with htar: docs.nersc.gov, "HPSS best practices")."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.storage import tape_plan
from tests.cli.globus_beamline import globus_site, reconcile

WARNING = 'use kind = "tape"'


def test_a_pass_over_small_scans_warns_once_pointing_at_kind_tape(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    with globus_site(tmp_path, monkeypatch, cfs_keep_days=10**4) as site:
        done = run_cli("--reconcile", "--once", config=site.config_path)
        assert WARNING not in done.stderr, "warned before any scan was seen"
        site.write_scan({"scan_a/frame.h5": b"a" * 4000, "scan_b/frame.h5": b"b" * 9000})
        done = run_cli("--reconcile", "--once", config=site.config_path)
        assert done.returncode in (0, 1), done.stderr
        warned = [line for line in done.stderr.splitlines() if WARNING in line]
        assert len(warned) == 1, done.stderr[-3000:]
        assert "hpss" in warned[0] and "under 1 GB" in warned[0] and "docs/hpss.md" in warned[0]
        reconcile(run_cli, site)  # the service keeps working with the per-file endpoint


def _seen(*sizes: int) -> SimpleNamespace:
    return SimpleNamespace(scans={f"s{n}": SimpleNamespace(size=s) for n, s in enumerate(sizes)})


def _config(kind: str, tape: bool) -> SimpleNamespace:
    return SimpleNamespace(endpoints={"hpss": SimpleNamespace(kind=kind, tape=tape)})


@pytest.mark.parametrize(
    ("kind", "tape", "sizes", "warns"),
    [
        ("globus", True, (10, 2 * 10**9, 999_999_999), True),  # median just under 1 GB
        ("globus", True, (10, 10**9, 3 * 10**9), False),  # median exactly 1 GB
        ("globus", False, (10, 20), False),  # not tape
        ("local", True, (10, 20), False),  # a local tape folder is not Globus-to-HPSS
        ("tape", False, (10, 20), False),  # already bundled
    ],
)
def test_the_warning_threshold_is_the_median_scan_and_one_gb(
    kind: str, tape: bool, sizes: tuple[int, ...], warns: bool, caplog: pytest.LogCaptureFixture
) -> None:
    tape_plan._warned.clear()
    with caplog.at_level(logging.WARNING, logger=tape_plan.log.name):
        tape_plan.warn_small_scans(_config(kind, tape), _seen(*sizes))  # type: ignore[arg-type]
        tape_plan.warn_small_scans(_config(kind, tape), _seen(*sizes))  # type: ignore[arg-type]
    assert sum(WARNING in r.getMessage() for r in caplog.records) == (1 if warns else 0)
    tape_plan._warned.clear()

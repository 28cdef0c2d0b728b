"""`bl931tui --flight-check` through the real CLI, on the demo's local world and on Globus.

Green: every disk leg copied, verified and cleaned, the tape leg only listed. Red (a target
unmounted, a target that cannot be written, a Globus task that fails): exit 1, a standing
`flight_check_failed` alert in the store (what the TUI shows), in the audit, and an event; and
in every case no canary is left anywhere, and none ever appears as a scan, in the catalog or in
a receipt. No assertion depends on how long anything took: latencies are checked for shape.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engine.flight_check import CANARY_DIR
from engine.workspace import LocalWorkspace
from tests.cli.globus_beamline import globus_site
from tests.conftest import RunCli


def flight(run_cli: RunCli, config: Path) -> tuple[int, dict[str, Any], str]:
    done = run_cli("--flight-check", "--json", config=config)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout), done.stderr


def canaries(*roots: Path) -> list[Path]:
    """Canary files (an emptied canary folder may stay on a Globus collection: Transfer cannot
    remove a folder only if it is empty; no listing reports it)."""
    return [
        p
        for root in roots
        for p in root.rglob("*")
        if "flight-check" in p.as_posix() and not p.is_dir()
    ]


def standing_flight_alerts(state: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(state) as db:
        return db.execute(
            "SELECT code, endpoint FROM alerts WHERE code = 'flight_check_failed' "
            "AND cleared_at IS NULL"
        ).fetchall()


def assert_never_a_scan(run_cli: RunCli, ws: LocalWorkspace) -> None:
    """After passes, no canary is a scan (store, audit), a catalog entry or a receipt."""
    for _ in range(2):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert done.returncode in (0, 1), done.stderr
    audit = json.loads(run_cli("--dry-run", "--json", config=ws.config_path).stdout)
    assert "flight-check" not in json.dumps(audit)
    with sqlite3.connect(ws.state_path) as db:
        scans = [row[0] for row in db.execute("SELECT id FROM scans")]
        deleted = [row[0] for row in db.execute("SELECT scan FROM deletions")]
    assert scans and not [s for s in scans if "flight-check" in s]
    assert not [s for s in deleted if "flight-check" in s]
    catalog = ws.root / "state" / "catalog.json"
    assert catalog.is_file() and "flight-check" not in catalog.read_text()
    receipts = run_cli("--receipt", "--json", config=ws.config_path)
    assert "flight-check" not in receipts.stdout


def test_green_on_the_demo_world(run_cli: RunCli, workspace: LocalWorkspace) -> None:
    ws = workspace
    ws.write_scan("2026/11/S0001.h5", b"tender" * 100)
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    code, report, stderr = flight(run_cli, ws.config_path)
    assert code == 0, stderr
    assert report["ok"] is True and report["canary"].startswith(f"{CANARY_DIR}/")
    legs = {(leg["source"], leg["target"]): leg for leg in report["legs"]}
    assert set(legs) == {("dtn", "cfs"), ("cfs", "hpss")}
    assert legs["dtn", "cfs"]["check"] == "copy" and legs["dtn", "cfs"]["verified_by"] == "rehash"
    # hpss is tape: reachability only, nothing written there.
    assert legs["cfs", "hpss"]["check"] == "reachability"
    for leg in legs.values():
        assert leg["ok"] is True and leg["error"] is None
        assert isinstance(leg["latency_seconds"], float) and leg["latency_seconds"] >= 0
    assert canaries(ws.dtn, ws.cfs, ws.hpss) == []
    assert "recorded in the state store" in stderr
    with sqlite3.connect(ws.state_path) as db:
        assert db.execute("SELECT ok FROM flight_checks").fetchall() == [(1,)]
        kinds = [r[0] for r in db.execute("SELECT kind FROM events WHERE kind LIKE 'flight%'")]
    assert kinds == ["flight_check.passed"]
    assert standing_flight_alerts(ws.state_path) == []
    assert_never_a_scan(run_cli, ws)


def test_markdown_report_names_every_leg(run_cli: RunCli, workspace: LocalWorkspace) -> None:
    """Before any pass: the check runs and prints, but creates no state store (the service's
    first pass must find a new store to write the endpoints' identity markers itself)."""
    done = run_cli("--flight-check", config=workspace.config_path)
    assert done.returncode == 0, done.stderr
    assert not workspace.state_path.exists() and "not recorded" in done.stderr
    assert "Flight check passed" in done.stdout
    assert "| dtn → cfs | copy | yes |" in done.stdout
    assert "| cfs → hpss | reachability | yes |" in done.stdout


def test_red_when_the_target_is_unmounted_then_green_clears_the_alert(
    run_cli: RunCli, workspace: LocalWorkspace
) -> None:
    ws = workspace
    ws.write_scan("2026/11/S0001.h5", b"tender" * 100)
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    ws.cfs.rename(ws.root / "cfs-unmounted")
    code, report, stderr = flight(run_cli, ws.config_path)
    assert code == 1 and report["ok"] is False
    leg = next(leg for leg in report["legs"] if leg["target"] == "cfs")
    assert leg["ok"] is False and "cfs" in leg["error"]
    assert "FAILED" in stderr
    assert standing_flight_alerts(ws.state_path) == [("flight_check_failed", "cfs")]
    assert canaries(ws.dtn, ws.root / "cfs-unmounted", ws.hpss) == []
    # The alert stands in the audit (exit 1: it needs a person) across a pass.
    ws.root.joinpath("cfs-unmounted").rename(ws.cfs)
    run_cli("--reconcile", "--once", config=ws.config_path)
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    codes = [a["code"] for a in json.loads(done.stdout)["alert_details"]]
    assert "flight_check_failed" in codes and done.returncode == 1
    # A green check clears it.
    code, report, _ = flight(run_cli, ws.config_path)
    assert code == 0 and report["ok"] is True
    assert standing_flight_alerts(ws.state_path) == []
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert "flight_check_failed" not in done.stdout


def test_red_when_the_target_cannot_be_written(run_cli: RunCli, workspace: LocalWorkspace) -> None:
    """The canary's folder on cfs is a file: nothing can be written there (as a read-only
    filesystem refuses; a chmod does not stop root, who runs the test container)."""
    ws = workspace
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    (ws.cfs / CANARY_DIR).write_text("in the way")
    code, report, _ = flight(run_cli, ws.config_path)
    assert code == 1
    assert [leg["ok"] for leg in report["legs"] if leg["target"] == "cfs"] == [False]
    assert standing_flight_alerts(ws.state_path) == [("flight_check_failed", "cfs")]
    assert canaries(ws.dtn, ws.hpss) == []
    assert (ws.cfs / CANARY_DIR).read_text() == "in the way"  # not ours: left alone


def test_canaries_are_cleaned_when_a_later_leg_fails(
    run_cli: RunCli, workspace: LocalWorkspace
) -> None:
    """hpss as a disk (not tape) that is unmounted: the canary reached cfs, then the next leg
    failed; the cfs and dtn copies are removed all the same."""
    ws = workspace
    text = ws.config_path.read_text().replace('path = "hpss"\ntape = true', 'path = "hpss"')
    ws.config_path.write_text(text)
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    ws.hpss.rename(ws.root / "hpss-unmounted")
    code, report, _ = flight(run_cli, ws.config_path)
    assert code == 1
    by_target = {leg["target"]: leg for leg in report["legs"]}
    assert by_target["cfs"]["ok"] is True and by_target["hpss"]["ok"] is False
    assert by_target["hpss"]["check"] == "copy"
    assert canaries(ws.dtn, ws.cfs, ws.root / "hpss-unmounted") == []
    assert standing_flight_alerts(ws.state_path) == [("flight_check_failed", "hpss")]


def test_a_canary_left_by_a_crash_is_never_a_scan(
    run_cli: RunCli, workspace: LocalWorkspace
) -> None:
    """A flight check killed before its cleanup leaves canaries on dtn and cfs: passes never
    take them for scans, never copy, register or prune them."""
    ws = workspace
    ws.write_scan("2026/11/S0001.h5", b"tender" * 100)
    for root in (ws.dtn, ws.cfs):
        ws.write_scan(f"{CANARY_DIR}/canary-crashed.bin", b"canary", endpoint=root.name)
    assert_never_a_scan(run_cli, ws)
    assert (ws.dtn / CANARY_DIR / "canary-crashed.bin").is_file()
    assert not (ws.hpss / CANARY_DIR).exists()


def test_red_on_a_failed_globus_task(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real globus-sdk against the fake Transfer API: the copy task to cfs fails
    (`fail_next_task`), so the leg fails, the alert stands and the canaries are gone."""
    with globus_site(tmp_path, monkeypatch) as site:
        site.write_scan({"S0001/a.h5": b"spectrum"})
        run_cli("--reconcile", "--once", config=site.config_path)
        code, report, stderr = flight(run_cli, site.config_path)
        assert code == 0, stderr  # green first: the chain works on Globus
        cfs_leg = next(leg for leg in report["legs"] if leg["target"] == "cfs")
        assert cfs_leg["verified_by"] == "transfer checksum"
        site.fake.fail_next_task(kind="TRANSFER")
        code, report, _ = flight(run_cli, site.config_path)
        assert code == 1
        cfs_leg = next(leg for leg in report["legs"] if leg["target"] == "cfs")
        assert cfs_leg["ok"] is False and cfs_leg["error"]
        assert standing_flight_alerts(site.state_path) == [("flight_check_failed", "cfs")]
        assert canaries(*site.roots.values()) == []

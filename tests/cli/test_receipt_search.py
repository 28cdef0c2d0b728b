"""`--receipt` takes a scan, a folder or proposal (`ALS-1234/`) and a date range, and lists.

Before: only an exact scan id was accepted (`--receipt ALS-1234/` said "No deletion receipts"),
`--since`/`--until` were unknown arguments (exit 64), and there was no way to list what was
deleted last month.

The receipts are made by the real service; their times are then set to fixed days in the store
(the service stamps them with the wall clock, and no test may depend on the date).
"""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import UTC, datetime

import pytest

from engine.workspace import LocalWorkspace, scan_path, synthetic_scan_bytes

WHEN = datetime(2026, 1, 5, tzinfo=UTC)
SCANS = {
    scan_path(1, WHEN, "ALS-1234"): "2026-01-10T08:00:00+00:00",
    scan_path(2, WHEN, "ALS-1234"): "2026-02-03T23:30:00+00:00",
    scan_path(3, WHEN, "ALS-9999"): "2026-03-01T00:00:00+00:00",
}


@pytest.fixture
def pruned(run_cli, workspace: LocalWorkspace) -> LocalWorkspace:  # type: ignore[no-untyped-def]
    rng = random.Random(3)
    for scan in SCANS:
        workspace.write_scan(scan, synthetic_scan_bytes(rng, 1_500), mtime=WHEN)
    for _ in range(3):
        assert run_cli("--reconcile", "--once", config=workspace.config_path).returncode == 0
    assert run_cli("--approve-all", "--yes", config=workspace.config_path).returncode == 0
    assert run_cli("--reconcile", "--once", config=workspace.config_path).returncode == 0
    with sqlite3.connect(workspace.state_path) as conn:
        rows = conn.execute("SELECT rowid, scan, receipt FROM deletions").fetchall()
        assert sorted(scan for _, scan, _ in rows) == sorted(SCANS)
        for rowid, scan, receipt in rows:
            doc = json.loads(receipt)
            if "deleted_at" in doc:
                doc["deleted_at"] = SCANS[scan]
            conn.execute(
                "UPDATE deletions SET deleted_at = ?, receipt = ? WHERE rowid = ?",
                (SCANS[scan], json.dumps(doc), rowid),
            )
    return workspace


def listed(run_cli, ws: LocalWorkspace, *args: str) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    done = run_cli("--receipt", *args, "--json", config=ws.config_path)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, [r["scan"] for r in json.loads(done.stdout)]


def test_a_proposal_folder_lists_the_receipts_under_it_at_any_depth(run_cli, pruned) -> None:  # type: ignore[no-untyped-def]
    code, scans = listed(run_cli, pruned, "ALS-1234/")
    assert code == 0
    assert scans == [scan_path(1, WHEN, "ALS-1234"), scan_path(2, WHEN, "ALS-1234")]
    code, scans = listed(run_cli, pruned, "2026/01/")
    assert code == 0 and len(scans) == 3
    # a folder matches whole path components only
    code, scans = listed(run_cli, pruned, "ALS-123/")
    assert code == 1 and scans == []


def test_a_date_range_lists_what_was_deleted_then(run_cli, pruned) -> None:  # type: ignore[no-untyped-def]
    code, scans = listed(run_cli, pruned, "ALS-1234/", "--since", "2026-02-01")
    assert (code, scans) == (0, [scan_path(2, WHEN, "ALS-1234")])
    # --until takes a plain date as the whole of that day
    code, scans = listed(run_cli, pruned, "--since", "2026-01-01", "--until", "2026-02-03")
    assert code == 0
    assert scans == [scan_path(1, WHEN, "ALS-1234"), scan_path(2, WHEN, "ALS-1234")]
    code, scans = listed(run_cli, pruned, "--until", "2026-01-09")
    assert (code, scans) == (1, [])


def test_the_human_listing_names_each_receipt_and_counts_them(run_cli, pruned) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("--receipt", "ALS-1234/", config=pruned.config_path)
    assert done.returncode == 0, done.stderr
    first = scan_path(1, WHEN, "ALS-1234")
    assert f"Deleted {first} from dtn at 2026-01-10T08:00:00+00:00 (receipt " in done.stdout
    assert done.stdout.rstrip().endswith("2 receipts, 2 scans under 'ALS-1234/'.")


def test_no_match_says_what_was_searched_and_exits_1(run_cli, pruned) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("--receipt", "ALS-0000/", "--since", "2026-01-01", config=pruned.config_path)
    assert done.returncode == 1
    assert (
        done.stdout
        == "No deletion receipts for scans under 'ALS-0000/' deleted since 2026-01-01.\n"
    )
    scan = run_cli("--receipt", "2026/01/nope.h5", config=pruned.config_path)
    assert scan.returncode == 1
    assert scan.stdout == "No deletion receipts for '2026/01/nope.h5'.\n"


def test_range_flags_are_checked(run_cli, pruned) -> None:  # type: ignore[no-untyped-def]
    wrong = run_cli(
        "--receipt", "--since", "2026-03-01", "--until", "2026-02-01", config=pruned.config_path
    )
    assert wrong.returncode == 64
    assert "--since 2026-03-01 is after --until 2026-02-01" in wrong.stderr
    alone = run_cli("--dry-run", "--since", "2026-03-01", config=pruned.config_path)
    assert alone.returncode == 64
    assert "--since and --until go with --receipt" in alone.stderr
    bad = run_cli("--receipt", "--since", "last week", config=pruned.config_path)
    assert bad.returncode == 64
    assert "--since 'last week' is not a date (2027-12-01" in bad.stderr

"""Adversary: the flight check's promises, through the real `bl931tui --flight-check`.

Promises (docs/operations.md "Flight check"): a canary goes through the disk legs with the real
movers and is verified by checksum; every canary copy is removed, also when a leg fails; tape
legs are only checked for reachability, never written; a failure exits 1 and raises an alert
that blocks nothing; a canary is never a scan, a catalog entry, a receipt or a delete, even one
left by a killed check; the check never writes engine state while another process owns the
store. And the check is meant to *prove the copy chain*: a chain the reconciler itself refuses
(an unmounted or aliased endpoint) must not be reported green.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.workspace import LocalWorkspace, create_workspace

CLI = [sys.executable, "-m", "bl931tui"]
INJECT = Path(__file__).parent / "ops_inject"
CANARY_DIR = ".bl931-flight-check"
SCAN = "2026/11/ALS-1/scan_0001.h5"


def cli(
    ws: LocalWorkspace, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [*CLI, "--config", str(ws.config_path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full,
        stdin=subprocess.DEVNULL,
    )


def injected(fault: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(INJECT), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "BL931_FC_FAULT": fault}


def flight(ws: LocalWorkspace, env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    done = cli(ws, "--flight-check", "--json", env=env)
    report = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, report, done.stderr


def canaries(*roots: Path) -> list[Path]:
    return sorted(p for root in roots if root.exists() for p in root.rglob(f"{CANARY_DIR}/*"))


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".bl931-endpoint.json"
    }


def first_pass(ws: LocalWorkspace) -> None:
    done = cli(ws, "--reconcile", "--once")
    assert ws.state_path.exists(), done.stderr


def dry_run(ws: LocalWorkspace) -> dict:
    done = cli(ws, "--dry-run", "--json")
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout)


def flight_alerts(plan: dict) -> list[dict]:
    return [a for a in plan.get("alert_details", []) if a.get("code") == "flight_check_failed"]


def try_mount(*args: str) -> bool:
    return (
        subprocess.run(["mount", *args], capture_output=True, stdin=subprocess.DEVNULL).returncode
        == 0
    )


@pytest.fixture
def ws(tmp_path: Path) -> LocalWorkspace:
    w = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0)
    w.write_scan(SCAN, b"a user's scan")
    return w


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """Bind mounts made by a test, undone afterwards (innermost first)."""
    made: list[Path] = []
    yield made
    for point in reversed(made):
        subprocess.run(["umount", str(point)], capture_output=True, stdin=subprocess.DEVNULL)


def bind(mounts: list[Path], source: Path, point: Path, *, read_only: bool = False) -> None:
    if not try_mount("--bind", str(source), str(point)):
        pytest.skip("bind mounts are not permitted here")
    mounts.append(point)
    if read_only:
        assert try_mount("-o", "remount,bind,ro", str(point))


# --------------------------------------------------------------------------- what holds


def test_a_healthy_chain_is_green_and_leaves_nothing(ws: LocalWorkspace) -> None:
    first_pass(ws)
    hpss_before = tree(ws.hpss)
    rc, report, err = flight(ws)
    assert rc == 0, err
    assert [(leg["source"], leg["target"], leg["check"], leg["ok"]) for leg in report["legs"]] == [
        ("dtn", "cfs", "copy", True),
        ("cfs", "hpss", "reachability", True),
    ]
    assert report["legs"][0]["verified_by"] == "rehash"
    assert all(leg["latency_seconds"] is not None for leg in report["legs"])
    assert canaries(ws.dtn, ws.cfs, ws.hpss) == []
    # The tape leg was only listed: nothing written there, not even the canary folder.
    assert tree(ws.hpss) == hpss_before
    assert not (ws.hpss / CANARY_DIR).exists()
    assert "recorded in the state store" in err


def test_silent_corruption_on_the_target_is_caught_and_cleaned(ws: LocalWorkspace) -> None:
    first_pass(ws)
    rc, report, err = flight(ws, injected("corrupt"))
    assert rc == 1, err
    leg = report["legs"][0]
    assert (leg["target"], leg["ok"]) == ("cfs", False)
    assert "checksum" in leg["error"], leg
    assert canaries(ws.dtn, ws.cfs, ws.hpss) == []
    alerts = flight_alerts(dry_run(ws))
    assert alerts and "dtn → cfs" in alerts[0]["message"], alerts


def test_a_missing_tape_root_fails_reachability_and_is_not_created(ws: LocalWorkspace) -> None:
    first_pass(ws)
    ws.hpss.rename(ws.root / "hpss.away")
    rc, report, err = flight(ws)
    assert rc == 1, err
    legs = {(leg["target"], leg["check"]): leg for leg in report["legs"]}
    assert legs[("cfs", "copy")]["ok"] is True
    assert legs[("hpss", "reachability")]["ok"] is False
    assert not ws.hpss.exists(), "the tape check created the tape root"
    assert canaries(ws.dtn, ws.cfs) == []


@pytest.mark.parametrize("unit", ["file", "directory"])
def test_a_canary_left_by_a_killed_check_never_becomes_a_scan(tmp_path: Path, unit: str) -> None:
    """A check killed after its copy landed leaves canaries on dtn and cfs. With the inventory's
    exclude emptied (dot-names included) and deletes approved, a full lifecycle must neither
    plan, copy, catalog, receipt nor delete them; the user's scan goes through as usual."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0, scan_unit=unit)
    text = ws.config_path.read_text("utf-8")
    ws.config_path.write_text(text.replace('watch = "off"', 'watch = "off"\nexclude = []'))
    scan = SCAN if unit == "file" else "ALS-1"
    ws.write_scan(SCAN if unit == "file" else "ALS-1/scan_0001.h5", b"a user's scan")
    first_pass(ws)
    rc, _, _ = flight(ws, injected("crash"))
    assert rc == 137
    left = canaries(ws.dtn, ws.cfs)
    assert {p.relative_to(ws.root).parts[0] for p in left} == {"dtn", "cfs"}, left
    before = {p: p.read_bytes() for p in left}

    for _ in range(3):
        cli(ws, "--reconcile", "--once")
        cli(ws, "--approve-all", "--yes")
    cli(ws, "--reconcile", "--once")

    # The user's scan went the whole way (so deletes did run) ...
    receipts = cli(ws, "--receipt", "--json")
    assert scan in receipts.stdout, receipts.stdout + receipts.stderr
    assert not (ws.dtn / (SCAN if unit == "file" else "ALS-1")).exists()
    # ... and the canaries were never a scan anywhere.
    assert "flight-check" not in receipts.stdout
    assert "flight-check" not in dry_run(ws).__repr__()
    catalog = (ws.root / "state" / "catalog.json").read_text("utf-8")
    assert scan in catalog and "flight-check" not in catalog
    with sqlite3.connect(ws.state_path) as db:
        for table in ("scans", "replicas", "actions", "deletions", "catalog_entries", "evidence"):
            rows = db.execute(f"SELECT * FROM {table}").fetchall()
            assert "flight-check" not in repr(rows), table
    assert not (ws.hpss / CANARY_DIR).exists()
    # Nothing deleted, moved or rewrote the stale canaries either.
    assert {p: p.read_bytes() for p in left if p.exists()} == before


def test_user_files_named_like_canaries_are_scans_and_untouched(ws: LocalWorkspace) -> None:
    names = [
        "flight-check/canary-20261128T000000-0123456789ab.bin",
        "bl931-flight-check/canary-20261128T000000-0123456789ab.bin",
        "2026/11/ALS-1/canary-20261128T000000-0123456789ab.bin",
    ]
    for name in names:
        ws.write_scan(name, b"user bytes " + name.encode())
    first_pass(ws)
    rc, _, err = flight(ws)
    assert rc == 0, err
    for name in names:
        assert (ws.dtn / name).read_bytes() == b"user bytes " + name.encode()
        assert (ws.cfs / name).read_bytes() == b"user bytes " + name.encode(), name


def test_a_read_only_target_fails_cleans_and_blocks_nothing(
    ws: LocalWorkspace, mounts: list[Path]
) -> None:
    first_pass(ws)
    bind(mounts, ws.cfs, ws.cfs, read_only=True)
    rc, report, err = flight(ws)
    assert rc == 1, err
    assert report["legs"][0]["ok"] is False and "Read-only" in report["legs"][0]["error"]
    assert canaries(ws.dtn, ws.cfs) == []
    subprocess.run(["umount", str(ws.cfs)], check=True, stdin=subprocess.DEVNULL)
    mounts.clear()
    # The standing alert is `notify`: the approved delete of the dtn copy still runs.
    assert flight_alerts(dry_run(ws))
    for _ in range(2):
        cli(ws, "--approve-all", "--yes")
        cli(ws, "--reconcile", "--once")
    assert not (ws.dtn / SCAN).exists()
    assert SCAN in cli(ws, "--receipt", "--json").stdout
    # A green check clears the alert.
    rc, _, err = flight(ws)
    assert rc == 0, err
    assert flight_alerts(dry_run(ws)) == []


def test_no_store_write_while_another_process_owns_it(ws: LocalWorkspace) -> None:
    """A `--reconcile --once`-like owner holds the lock: the check prints its report, writes
    nothing while the lock is held, and records it once the lock is free."""
    first_pass(ws)
    holder_code = (
        "import sqlite3, sys\n"
        "from engine.lock import OwnerLock\n"
        f"lock = OwnerLock(__import__('pathlib').Path({str(ws.state_path)!r})).acquire()\n"
        "count = lambda: sqlite3.connect(sys.argv[1]).execute("
        "'SELECT (SELECT count(*) FROM flight_checks), (SELECT count(*) FROM events)')"
        ".fetchone()\n"
        "print('locked', count(), flush=True)\n"
        "sys.stdin.readline()\n"
        "print('before release', count(), flush=True)\n"
        "lock.release()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", holder_code, str(ws.state_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        locked = holder.stdout.readline()
        assert locked.startswith("locked"), locked
        check = subprocess.Popen(
            [*CLI, "--config", str(ws.config_path), "--flight-check", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        assert check.stdout is not None
        lines = []
        while (line := check.stdout.readline()) != "}\n":
            assert line, "the check ended before printing its report"
            lines.append(line)
        report = json.loads("".join(lines) + "}")
        assert report["ok"] is True
        assert check.poll() is None, "the check did not wait for the lock"
        holder.stdin.write("go\n")
        holder.stdin.flush()
        released = holder.stdout.readline()
        assert released.split(" ", 2)[2] == locked.split(" ", 1)[1], (locked, released)
        holder.wait(timeout=30)
        _, err = check.communicate(timeout=90)
        assert check.returncode == 0, err
        assert "recorded in the state store" in err
    finally:
        for proc in (holder,):
            if proc.poll() is None:
                proc.kill()
    with sqlite3.connect(ws.state_path) as db:
        assert db.execute("SELECT count(*) FROM flight_checks").fetchone()[0] == 1


def test_a_running_service_records_the_check(ws: LocalWorkspace) -> None:
    first_pass(ws)
    service = subprocess.Popen(
        [*CLI, "--config", str(ws.config_path), "--reconcile", "--interval", "3600"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        sock = Path(f"{ws.state_path}.sock")
        for _ in range(600):
            if sock.exists() or service.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"])
        assert sock.exists(), "the service never opened its socket"
        rc, _report, err = flight(ws)
        assert rc == 0, err
        assert "recorded by the running service" in err
    finally:
        service.terminate()
        service.wait(timeout=60)
    with sqlite3.connect(ws.state_path) as db:
        assert db.execute("SELECT count(*) FROM flight_checks").fetchone()[0] == 1


# --------------------------------------------------------------------------- what broke (now fixed)


def test_an_unmounted_target_is_not_green(ws: LocalWorkspace) -> None:
    first_pass(ws)
    ws.cfs.rename(ws.root / "cfs.real")
    ws.cfs.mkdir()  # the bare mount point
    plan = dry_run(ws)
    assert any("cfs" in str(e) and "marker" in str(e) for e in plan["errors"]), plan["errors"]
    rc, report, _ = flight(ws)
    assert rc == 1, report
    leg = report["legs"][0]
    assert (leg["target"], leg["ok"]) == ("cfs", False) and "marker" in leg["error"], leg
    # Nothing was written onto the bare mount point, and the failure is an alert.
    assert list(ws.cfs.iterdir()) == []
    assert canaries(ws.dtn, ws.cfs, ws.root / "cfs.real") == []
    alerts = flight_alerts(dry_run(ws))
    assert alerts and "dtn → cfs" in alerts[0]["message"], alerts


def test_an_unmounted_inventory_endpoint_is_not_green(ws: LocalWorkspace) -> None:
    first_pass(ws)
    ws.dtn.rename(ws.root / "dtn.real")
    ws.dtn.mkdir()
    rc, report, _ = flight(ws)
    assert rc == 1, report
    assert "dtn" in report["setup_error"] and "marker" in report["setup_error"], report
    assert list(ws.dtn.iterdir()) == []
    assert canaries(ws.dtn, ws.cfs, ws.root / "dtn.real") == []
    assert flight_alerts(dry_run(ws))


def test_an_aliased_target_is_not_green(ws: LocalWorkspace, mounts: list[Path]) -> None:
    first_pass(ws)
    bind(mounts, ws.dtn, ws.cfs)
    plan = dry_run(ws)
    assert any("same storage" in str(e) for e in plan["errors"]), plan["errors"]
    rc, report, _ = flight(ws)
    assert rc == 1, report
    assert "same storage" in report["setup_error"], report
    assert canaries(ws.dtn, ws.cfs) == []

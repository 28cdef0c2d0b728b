"""The tape endpoint through the real CLI with the local runner (htar/hsi shims over a folder).

Each test is an adversary's scenario: bundles must be whole, verified and never trusted when
broken; no CFS prune may rely on a bundle that is not verified.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from engine.workspace import LocalWorkspace, create_workspace

JAN = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def tape_ws(tmp_path: Path, **kw: object) -> LocalWorkspace:
    return create_workspace(
        tmp_path / "ws",
        dtn_keep_days=10**4,
        cfs_keep_days=0,
        hpss_kind="tape",
        **kw,  # type: ignore[arg-type]
    )


def audit(run_cli, ws: LocalWorkspace, *extra: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    done = run_cli("--dry-run", "--json", *extra, config=ws.config_path)
    assert done.returncode in (0, 1, 2), done.stderr
    return done.returncode, json.loads(done.stdout)


def once(run_cli, ws: LocalWorkspace, ok: bool = True, env: dict | None = None) -> str:  # type: ignore[no-untyped-def]
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    if ok:
        assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def bundles(ws: LocalWorkspace) -> list[tuple]:
    with sqlite3.connect(ws.state_path) as conn:
        return conn.execute(
            "SELECT bundle, state, job_name, job_id FROM tape_bundles ORDER BY bundle"
        ).fetchall()


def tars(ws: LocalWorkspace) -> list[str]:
    return sorted(str(p.relative_to(ws.hpss)) for p in ws.hpss.rglob("*.tar"))


def write(ws: LocalWorkspace, n: int, data: bytes = b"", when: datetime = JAN) -> str:
    path = f"2026/03/ALS-7/scan_{n:03d}.h5"
    ws.write_scan(path, data or f"scan {n} ".encode() * 300, mtime=when)
    return path


def test_a_cycle_of_scans_becomes_one_bundle(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = tape_ws(tmp_path)
    scans = [write(ws, n) for n in range(5)]
    once(run_cli, ws)  # dtn → cfs
    once(run_cli, ws)  # cfs → hpss: one bundle
    assert tars(ws) == ["2026-1/bl9.3.1-2026-1-p001.tar"]
    assert [b[1] for b in bundles(ws)] == ["verified"]
    _, doc = audit(run_cli, ws)
    copies = [a for a in doc["actions"] if a["kind"] == "copy"]
    assert copies == [], copies
    assert all("hpss" in a["reason"] for a in doc["actions"] if a["kind"] == "update_catalog")
    once(run_cli, ws)  # the catalog records bundle path + member
    catalog = (ws.root / "state" / "catalog.json").read_text("utf-8")
    assert "bl9.3.1-2026-1-p001.tar#2026/03/ALS-7/scan_000.h5" in catalog
    manifest = json.loads(
        (ws.hpss / "2026-1" / "bl9.3.1-2026-1-p001.tar.manifest.json").read_text()
    )
    assert sorted(manifest["scans"]) == sorted(scans)


def test_scans_wait_for_their_bundle_with_the_close_date(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = tape_ws(tmp_path, close_after_days=14)
    write(ws, 1)
    once(run_cli, ws)
    once(run_cli, ws)  # begins waiting
    assert tars(ws) == []
    code, doc = audit(run_cli, ws)
    (wait,) = [b for b in doc["blocked"] if b["reason_code"] == "waiting_for_bundle"]
    assert wait["endpoint"] == "hpss" and "expected to close 20" in wait["reason"]
    assert code == 2  # work pending: it comes by itself
    later = (
        datetime.now(UTC).replace(microsecond=0).isoformat()
    )  # as-of must be after the wait start
    from datetime import timedelta

    as_of = (datetime.fromisoformat(later) + timedelta(days=15)).isoformat()
    code, doc = audit(run_cli, ws, "--as-of", as_of)
    assert [a["target"] for a in doc["actions"] if a["kind"] == "copy"] == ["hpss"]


def test_a_scan_added_late_to_a_closed_cycle_goes_into_the_next_part(
    run_cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ws = tape_ws(tmp_path)
    write(ws, 1)
    write(ws, 2)
    once(run_cli, ws)
    once(run_cli, ws)
    late = write(ws, 3)  # same cycle (acquired in March), arrives after its bundle was made
    once(run_cli, ws)
    once(run_cli, ws)
    assert tars(ws) == ["2026-1/bl9.3.1-2026-1-p001.tar", "2026-1/bl9.3.1-2026-1-p002.tar"]
    index = json.loads((ws.hpss / "2026-1" / "bl9.3.1-2026-1-p002.tar.idx").read_text())
    assert [m["path"] for m in index["members"]] == [late]
    assert [b[1] for b in bundles(ws)] == ["verified", "verified"]


def test_a_restore_returns_the_acquired_bytes(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = tape_ws(tmp_path)
    data = os.urandom(50_000)
    scan = write(ws, 1, data)
    once(run_cli, ws)
    once(run_cli, ws)
    (ws.cfs / scan).unlink()  # lost on CFS (or pruned)
    done = run_cli("--restore", scan, "--to", "cfs", config=ws.config_path)
    assert done.returncode == 0, done.stderr
    once(run_cli, ws, ok=False)
    _, doc = audit(run_cli, ws)
    recalls = [a for a in doc["actions"] if a["kind"] == "copy" and a["source"] == "hpss"]
    assert len(recalls) == 1 and recalls[0]["requires_approval"], doc["actions"]
    assert not (ws.cfs / scan).exists(), "a recall ran without approval"
    assert run_cli("--approve", recalls[0]["id"], config=ws.config_path).returncode == 0
    once(run_cli, ws, ok=False)
    assert hashlib.md5((ws.cfs / scan).read_bytes()).hexdigest() == hashlib.md5(data).hexdigest()
    assert not list(ws.cfs.rglob(".bl931-staging/*/*")), "staging left behind"


def _prune_ws(tmp_path: Path) -> LocalWorkspace:
    return create_workspace(
        tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0, hpss_kind="tape", approval=()
    )


def _acknowledge_all(run_cli, ws: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    _, doc = audit(run_cli, ws)
    for alert in doc.get("alert_details", []):
        done = run_cli(
            "--acknowledge", alert["id"], "--why", "bundle lost; re-bundle", config=ws.config_path
        )
        assert done.returncode == 0, done.stderr


def _broken_then_rebundled(run_cli, ws: LocalWorkspace, scan: str) -> None:  # type: ignore[no-untyped-def]
    """Passes (a person acknowledging any alert) until the scan is in a new verified part; the
    CFS copy must stay until then, and the prune follow."""
    for _ in range(5):
        once(run_cli, ws, ok=False)
        rebundled = any("p002" in b[0] and b[1] == "verified" for b in bundles(ws))
        assert rebundled or (ws.cfs / scan).exists(), "CFS pruned relying on a broken bundle"
        _acknowledge_all(run_cli, ws)
    assert [b[1] for b in bundles(ws)] == ["broken", "verified"], bundles(ws)
    assert not (ws.cfs / scan).exists(), "the prune did not follow the verified re-bundle"


def test_a_truncated_bundle_is_rebundled_before_any_cfs_prune(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = _prune_ws(tmp_path)
    scan = write(ws, 1)
    once(run_cli, ws)  # dtn → cfs
    once(run_cli, ws)  # cfs → hpss (bundle p001)
    tar = ws.hpss / "2026-1" / "bl9.3.1-2026-1-p001.tar"
    os.truncate(tar, tar.stat().st_size // 2)
    _broken_then_rebundled(run_cli, ws, scan)


def test_a_corrupted_index_is_caught_by_the_last_look(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = _prune_ws(tmp_path)
    scan = write(ws, 1)
    once(run_cli, ws)
    once(run_cli, ws)
    idx = ws.hpss / "2026-1" / "bl9.3.1-2026-1-p001.tar.idx"
    index = json.loads(idx.read_text())
    index["members"][0]["size"] += 1
    idx.write_text(json.dumps(index))
    _broken_then_rebundled(run_cli, ws, scan)


def test_a_rotted_cfs_file_is_never_archived_as_verified(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = _prune_ws(tmp_path)
    scan = write(ws, 1)
    good = write(ws, 2)
    once(run_cli, ws)  # dtn → cfs, both verified
    target = ws.cfs / scan
    st = target.stat()
    body = bytearray(target.read_bytes())
    body[10] ^= 0xFF
    target.write_bytes(bytes(body))
    os.utime(target, (st.st_atime, st.st_mtime))  # listing unchanged: only the bytes rotted
    once(run_cli, ws, ok=False)
    with sqlite3.connect(ws.state_path) as conn:
        held = {r[0] for r in conn.execute("SELECT scan FROM tape_members")}
    assert scan not in held
    _, doc = audit(run_cli, ws)
    assert any(b["scan"] == scan and b["reason_code"] == "needs_attention" for b in doc["blocked"])
    once(run_cli, ws, ok=False)
    with sqlite3.connect(ws.state_path) as conn:
        held = {r[0] for r in conn.execute("SELECT scan FROM tape_members")}
    assert good in held and scan not in held
    assert (ws.dtn / scan).exists() or (ws.cfs / scan).exists()


def test_a_crash_after_submit_finds_the_job_instead_of_resubmitting(
    run_cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    ws = tape_ws(tmp_path)
    write(ws, 1)
    once(run_cli, ws)
    env = dict(os.environ, BL931_CRASH_AFTER_TAPE_SUBMIT="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parent / "inject"), env.get("PYTHONPATH", "")]
    )
    died = subprocess.run(
        [
            sys.executable,
            "-m",
            "bl931tui",
            "--config",
            str(ws.config_path),
            "--reconcile",
            "--once",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert died.returncode == 137, died.stderr[-2000:]
    (row,) = bundles(ws)
    assert row[2] and row[3] is None  # job name persisted, job id not
    once(run_cli, ws)
    jobs = list((ws.root / "state" / "tape-jobs" / "hpss").glob("local-*.json"))
    assert len(jobs) == 1, "the job was submitted again"
    (row,) = bundles(ws)
    assert row[1] == "verified" and row[3] == "local-1"


def test_a_nonzero_htar_exit_archives_nothing(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = _prune_ws(tmp_path)
    tools = ws.root / "tools"
    tools.mkdir()
    shims = Path(__file__).parents[2] / "engine" / "storage" / "hpss_shims"
    (tools / "hsi").symlink_to(shims / "hsi")
    (tools / "htar").write_text(
        f'#!/bin/bash\n"{shims / "htar"}" "$@"\necho "HTAR: ERROR: tape error" >&2\nexit 1\n'
    )
    (tools / "htar").chmod(0o755)
    text = ws.config_path.read_text().replace('kind = "tape"', f'kind = "tape"\ntools = "{tools}"')
    ws.config_path.write_text(text)
    scan = write(ws, 1)
    once(run_cli, ws)
    once(run_cli, ws, ok=False)
    once(run_cli, ws, ok=False)
    assert [b[1] for b in bundles(ws)] == ["failed"]
    assert (ws.cfs / scan).exists(), "CFS pruned although htar failed"


def test_a_path_htar_cannot_store_goes_through_cput(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = tape_ws(tmp_path)
    long_name = "2026/03/ALS-7/" + "x" * 120 + ".h5"
    ws.write_scan(long_name, b"long" * 1000, mtime=JAN)
    short = write(ws, 1)
    once(run_cli, ws)
    once(run_cli, ws)
    with sqlite3.connect(ws.state_path) as conn:
        held = {
            r[0]: json.loads(r[1]) for r in conn.execute("SELECT scan, evidence FROM tape_members")
        }
    assert set(held) == {long_name, short}
    assert held[long_name]["cput"] and held[long_name]["files"][0]["via"] == "cput"
    stored = ws.hpss / held[long_name]["cput"][0].lstrip("/")
    assert stored.read_bytes() == b"long" * 1000
    _, doc = audit(run_cli, ws)
    assert not [a for a in doc["actions"] if a["kind"] == "copy"]

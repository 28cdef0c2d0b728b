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
        tmp_path / "ws", dtn_keep_days=10**4, cfs_keep_days=0, hpss_kind="tape", **kw  # type: ignore[arg-type]
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
    code, doc = audit(run_cli, ws)
    copies = [a for a in doc["actions"] if a["kind"] == "copy"]
    assert copies == [], copies
    assert all("hpss" in a["reason"] for a in doc["actions"] if a["kind"] == "update_catalog")
    once(run_cli, ws)  # the catalog records bundle path + member
    catalog = (ws.root / "state" / "catalog.json").read_text("utf-8")
    assert "bl9.3.1-2026-1-p001.tar#2026/03/ALS-7/scan_000.h5" in catalog
    manifest = json.loads((ws.hpss / "2026-1" / "bl9.3.1-2026-1-p001.tar.manifest.json").read_text())
    assert sorted(manifest["scans"]) == sorted(scans)

"""A local beamline whose CFS is off-site, for the flow and notify tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine.workspace import LocalWorkspace, create_workspace


def offsite_workspace(
    root: Path, *, quiet_seconds: float = 3600, export_control: str = ""
) -> LocalWorkspace:
    """dtn → cfs (off-site) → hpss; scans are complete only after an hour unless notified."""
    ws = create_workspace(root, quiet_seconds=quiet_seconds, dtn_keep_days=0, cfs_keep_days=0)
    text = ws.config_path.read_text("utf-8")
    text = text.replace(
        '[endpoints.cfs]\nkind = "local"\n', '[endpoints.cfs]\nkind = "local"\noffsite = true\n'
    )
    ws.config_path.write_text(text + export_control, "utf-8")
    return ws


def hints(ws: LocalWorkspace) -> dict[str, tuple[int, str]]:
    """scan → (export_controlled, via) as the store holds them."""
    with sqlite3.connect(ws.state_path) as conn:
        rows = conn.execute("SELECT scan, export_controlled, via FROM scan_hints").fetchall()
    return {scan: (flag, via) for scan, flag, via in rows}


def blocked(ws: LocalWorkspace) -> set[tuple[str, str, str]]:
    with sqlite3.connect(ws.state_path) as conn:
        rows = conn.execute("SELECT scan, endpoint, reason_code FROM blocked").fetchall()
    return {tuple(r) for r in rows}


def scans(ws: LocalWorkspace) -> set[str]:
    with sqlite3.connect(ws.state_path) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM scans")}

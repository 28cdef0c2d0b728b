"""Shared helpers for the adversarial notify / export-control tests (`test_notify_*.py`,
`test_export_*.py`): a local beamline with an off-site endpoint, driven only through the real
`bl931tui` CLI, and a census of the bytes each endpoint folder holds, so a test asks "did these
bytes ever reach the off-site folder?" without trusting the engine's bookkeeping.

Layout (all local folders): `dtn` (inventory), `cfs` (on site), `off` (`offsite = true`),
optionally `tape` (kind = "tape", on site). Which copy legs and retention rules exist is up to
each test.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import RunCli


@dataclass
class World:
    root: Path
    config_path: Path

    def folder(self, name: str) -> Path:
        return self.root / name

    @property
    def state_path(self) -> Path:
        return self.root / "state" / "state.sqlite"

    def write(self, rel: str, data: bytes, endpoint: str = "dtn") -> Path:
        target = self.folder(endpoint) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return target


def make_world(
    root: Path,
    *,
    copies: tuple[tuple[str, str], ...] = (("dtn", "cfs"), ("cfs", "off")),
    retention: str = "",
    approval: tuple[str, ...] = ("delete",),
    export_control: str | None = None,
    scan_unit: str = "file",
    depth: int = 1,
    tape: bool = False,
    catalog: bool = True,
) -> World:
    """Write `bl931.toml` for a dtn/cfs/off(/tape) beamline below `root`."""
    names = ["dtn", "cfs", "off", "state"] + (["tape"] if tape else [])
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    legs = "".join(f'[[copy]]\nfrom = "{a}"\nto = "{b}"\n\n' for a, b in copies)
    tape_section = (
        '[endpoints.tape]\nkind = "tape"\nrunner = "local"\npath = "tape"\n'
        'bundle_by = "cycle"\nclose_after_days = 0\n\n'
        if tape
        else ""
    )
    approvals = "[" + ", ".join(f'"{k}"' for k in approval) + "]"
    text = f"""[beamline]
name = "9.3.1"

[state]
path = "state/state.sqlite"

[inventory]
endpoint = "dtn"
scan = "{scan_unit}"
depth = {depth}
quiet_seconds = 0
checksum = "md5"
watch = "off"

[endpoints.dtn]
kind = "local"
path = "dtn"

[endpoints.cfs]
kind = "local"
path = "cfs"

[endpoints.off]
kind = "local"
path = "off"
offsite = true

{tape_section}{legs}{retention}
[approval]
required_for = {approvals}

[safety]
max_missing_fraction = 0.5
max_deletes_per_pass = 1000

[retry]
base_seconds = 30
max_seconds = 60
"""
    if catalog:
        text += '\n[catalog]\nkind = "local"\npath = "state/catalog.json"\n'
    if export_control is not None:
        text += "\n[export_control]\n" + export_control + "\n"
    config_path = root / "bl931.toml"
    config_path.write_text(text, "utf-8")
    return World(root, config_path)


def passes(run_cli: RunCli, w: World, n: int = 1) -> None:
    for _ in range(n):
        done = run_cli("--reconcile", "--once", config=w.config_path)
        assert done.returncode in (0, 1), done.stderr
        assert "Traceback" not in done.stderr, done.stderr


def audit(run_cli: RunCli, w: World) -> tuple[int, dict[str, Any]]:
    done = run_cli("--dry-run", "--json", config=w.config_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 1, 2), done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, doc


def notify(run_cli: RunCli, w: World, path: str, *flags: str) -> Any:
    done = run_cli("--notify", path, *flags, config=w.config_path)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def approve_all(run_cli: RunCli, w: World) -> None:
    done = run_cli("--approve-all", "--yes", config=w.config_path)
    assert "Traceback" not in done.stderr, done.stderr


def holds_bytes(w: World, endpoint: str, data: bytes) -> list[str]:
    """Every file below the endpoint folder (any name, tape bundles' members excluded) holding
    exactly `data`; for `off` that is the leak detector."""
    root = w.folder(endpoint)
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.read_bytes() == data
    )


def blocked(doc: dict[str, Any], scan: str, target: str | None = None) -> list[str]:
    """The reason codes of the audit's blocked entries for `scan` (at `target`, if given)."""
    return [
        b["reason_code"]
        for b in doc.get("blocked", [])
        if b.get("scan") == scan and (target is None or b.get("endpoint") == target)
    ]


def planned(doc: dict[str, Any], scan: str) -> list[dict[str, Any]]:
    return [a for a in doc.get("actions", []) if a.get("scan") == scan]


def hint_rows(w: World) -> list[tuple[Any, ...]]:
    if not w.state_path.exists():
        return []
    conn = sqlite3.connect(f"file:{w.state_path}?mode=ro", uri=True)
    try:
        return list(
            conn.execute("SELECT scan, export_controlled, via FROM scan_hints ORDER BY scan")
        )
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()

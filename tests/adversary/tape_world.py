"""Shared helpers for the adversarial tape tests (`test_tape_*.py`): a local beamline
dtn -> cfs -> hpss where `hpss` is a `kind = "tape"` endpoint on the local runner (the htar/hsi
shims over the folder `hpss/`), driven only through the real `bl931tui` CLI. The census helpers
open the bundles with `tarfile` themselves, so a test asks "are these bytes still in a bundle?"
without trusting the engine's bookkeeping.
"""

from __future__ import annotations

import json
import sqlite3
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import RunCli


@dataclass
class TapeWorld:
    root: Path
    config_path: Path

    def folder(self, name: str) -> Path:
        return self.root / name

    @property
    def state_path(self) -> Path:
        return self.root / "state" / "state.sqlite"

    @property
    def jobs(self) -> Path:
        return self.root / "state" / "tape-jobs" / "hpss"

    def write(self, rel: str, data: bytes, endpoint: str = "dtn") -> Path:
        target = self.folder(endpoint) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return target

    def bundles(self) -> list[Path]:
        return sorted(self.folder("hpss").rglob("*.tar"))


def make_tape_world(
    root: Path,
    *,
    cfs_retention: bool = True,
    close_after_days: float = 0,
    bundle_max_bytes: int | None = None,
    bundle_by: str = "cycle",
    extra_tape: str = "",
    scan_unit: str = "file",
    depth: int = 1,
) -> TapeWorld:
    for name in ("dtn", "cfs", "hpss", "state"):
        (root / name).mkdir(parents=True, exist_ok=True)
    retention = (
        '[retention.cfs]\nkeep_days = 0\ndelete_requires = ["hpss"]\nverify = "checksum"\n'
        if cfs_retention
        else ""
    )
    max_bytes = f"bundle_max_bytes = {bundle_max_bytes}\n" if bundle_max_bytes else ""
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

[endpoints.hpss]
kind = "tape"
runner = "local"
path = "hpss"
bundle_by = "{bundle_by}"
close_after_days = {close_after_days}
{max_bytes}{extra_tape}
[[copy]]
from = "dtn"
to = "cfs"

[[copy]]
from = "cfs"
to = "hpss"

{retention}
[approval]
required_for = ["delete"]

[safety]
max_missing_fraction = 0.5
max_deletes_per_pass = 1000

[retry]
base_seconds = 30
max_seconds = 60

[catalog]
kind = "local"
path = "state/catalog.json"
"""
    config_path = root / "bl931.toml"
    config_path.write_text(text, "utf-8")
    return TapeWorld(root, config_path)


def run_ok(run_cli: RunCli, w: TapeWorld, *args: str) -> Any:
    done = run_cli(*args, config=w.config_path)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def passes(run_cli: RunCli, w: TapeWorld, n: int = 1) -> None:
    for _ in range(n):
        done = run_ok(run_cli, w, "--reconcile", "--once")
        assert done.returncode in (0, 1), done.stderr


def audit(run_cli: RunCli, w: TapeWorld, *extra: str) -> tuple[int, dict[str, Any]]:
    done = run_ok(run_cli, w, "--dry-run", "--json", *extra)
    assert done.returncode in (0, 1, 2), done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, doc


def approve_all(run_cli: RunCli, w: TapeWorld) -> None:
    run_ok(run_cli, w, "--approve-all", "--yes")


def churn(run_cli: RunCli, w: TapeWorld, rounds: int = 3) -> None:
    """An operator who approves whatever is asked, pass after pass (the worst case)."""
    for _ in range(rounds):
        passes(run_cli, w)
        approve_all(run_cli, w)
    passes(run_cli, w)


def bundled_bytes(w: TapeWorld) -> dict[str, list[bytes]]:
    """member name -> the bytes of it in every readable bundle on the tape folder, plus files sent
    with `hsi cput` (under `*.files/`)."""
    out: dict[str, list[bytes]] = {}
    for tar in w.bundles():
        try:
            with tarfile.open(tar) as t:
                for info in t:
                    stream = t.extractfile(info)
                    if stream is not None:
                        out.setdefault(info.name, []).append(stream.read())
        except (tarfile.TarError, OSError, EOFError):
            continue
    for folder in w.folder("hpss").rglob("*.files"):
        for p in folder.rglob("*"):
            if p.is_file() and p.suffix not in (".md5", ".part"):
                out.setdefault(p.relative_to(folder).as_posix(), []).append(p.read_bytes())
    return out


def on_disk(w: TapeWorld, endpoint: str, rel: str) -> bytes | None:
    p = w.folder(endpoint) / rel
    return p.read_bytes() if p.is_file() else None


def safe_somewhere(w: TapeWorld, rel: str, data: bytes) -> bool:
    """These bytes exist intact on dtn, cfs, or in a bundle member."""
    if on_disk(w, "dtn", rel) == data or on_disk(w, "cfs", rel) == data:
        return True
    return data in bundled_bytes(w).get(rel, [])


def blocked(doc: dict[str, Any], scan: str) -> list[dict[str, Any]]:
    return [b for b in doc.get("blocked", []) if b.get("scan") == scan]


def planned(doc: dict[str, Any], scan: str, kind: str | None = None) -> list[dict[str, Any]]:
    return [
        a
        for a in doc.get("actions", [])
        if a.get("scan") == scan and (kind is None or a.get("kind") == kind)
    ]


def sql(w: TapeWorld, query: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(w.state_path)
    try:
        rows = list(conn.execute(query, args))
        conn.commit()
        return rows
    finally:
        conn.close()


def job_records(w: TapeWorld) -> list[dict[str, Any]]:
    return [json.loads(p.read_text("utf-8")) for p in sorted(w.jobs.glob("local-*.json"))]


def acknowledge_alerts(run_cli: RunCli, w: TapeWorld, code: str) -> int:
    """An operator acknowledging every standing alert with this code; how many."""
    _, doc = audit(run_cli, w)
    n = 0
    for alert in doc.get("alert_details") or []:
        if alert.get("code") == code:
            run_ok(run_cli, w, "--acknowledge", alert["id"], "--why", "adversary test")
            n += 1
    return n


def restore(run_cli: RunCli, w: TapeWorld, scan: str, to: str) -> Any:
    """Request a restore, let a pass plan it, approve it, let a pass run it."""
    done = run_ok(run_cli, w, "--restore", scan, "--to", to)
    passes(run_cli, w)
    approve_all(run_cli, w)
    passes(run_cli, w)
    return done

"""Adversary: directory scans that change after they were archived — a file added, a file
removed, a file renamed — with an operator who approves whatever is asked and retention that
prunes the DTN and CFS as soon as it may. Promise: every version that was ever verified keeps an
intact copy (all its files, same bytes) somewhere until an approved, receipted replace or delete
says otherwise; tape is never written over.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.workspace import LocalWorkspace, create_workspace
from tests.adversary.versions_cli import approve_everything, file_contents, passes
from tests.conftest import RunCli

SCAN = "2026/scan0"


def holds_version(
    ws: LocalWorkspace, version: dict[str, bytes], *, exact: bool = False
) -> list[str]:
    """Endpoints holding every file of `version` (names relative to the scan folder) intact,
    at the scan's folder or at a versioned folder beside it (`exact`: and no other file)."""
    found = []
    for name, root in (("dtn", ws.dtn), ("cfs", ws.cfs), ("hpss", ws.hpss)):
        parent = root / SCAN
        candidates = [parent, *sorted(parent.parent.glob(parent.name + ".v*"))]
        for folder in candidates:
            if (
                folder.is_dir()
                and all(
                    (folder / rel).is_file() and (folder / rel).read_bytes() == data
                    for rel, data in version.items()
                )
                and (not exact or set(file_contents(folder)) == set(version))
            ):
                found.append(f"{name}:{folder.relative_to(root).as_posix()}")
    return found


def write(ws: LocalWorkspace, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        ws.write_scan(f"{SCAN}/{rel}", data)


def add_file(ws: LocalWorkspace, v1: dict[str, bytes]) -> dict[str, bytes]:
    ws.write_scan(f"{SCAN}/f2.h5", b"added later " * 30)
    return {**v1, "f2.h5": b"added later " * 30}


def remove_file(ws: LocalWorkspace, v1: dict[str, bytes]) -> dict[str, bytes]:
    (ws.dtn / SCAN / "f1.h5").unlink()
    return {"f0.h5": v1["f0.h5"]}


def rename_file(ws: LocalWorkspace, v1: dict[str, bytes]) -> dict[str, bytes]:
    os.replace(ws.dtn / SCAN / "f1.h5", ws.dtn / SCAN / "f1_renamed.h5")
    return {"f0.h5": v1["f0.h5"], "f1_renamed.h5": v1["f1.h5"]}


def rewrite_one(ws: LocalWorkspace, v1: dict[str, bytes]) -> dict[str, bytes]:
    ws.write_scan(f"{SCAN}/f1.h5", b"rewritten " * 25)
    return {"f0.h5": v1["f0.h5"], "f1.h5": b"rewritten " * 25}


@pytest.mark.parametrize("change", [add_file, remove_file, rename_file, rewrite_one])
@pytest.mark.parametrize("cfs_keep_days", [0, 1000])
def test_a_changed_directory_scan_never_loses_a_version(
    run_cli: RunCli,
    tmp_path: Path,
    change: Callable[[LocalWorkspace, dict[str, bytes]], dict[str, bytes]],
    cfs_keep_days: int,
) -> None:
    ws = create_workspace(
        tmp_path / "ws",
        dtn_keep_days=0,
        cfs_keep_days=cfs_keep_days,
        scan_unit="directory",
        depth=2,
    )
    v1 = {"f0.h5": os.urandom(700), "f1.h5": os.urandom(900)}
    write(ws, v1)
    passes(run_cli, ws, 3)
    assert {n for n, _ in [h.split(":") for h in holds_version(ws, v1)]} == {"dtn", "cfs", "hpss"}
    tape_before = file_contents(ws.hpss)

    v2 = change(ws, v1)
    for _ in range(6):
        approve_everything(run_cli, ws, 1)
        tape = file_contents(ws.hpss)
        for rel, data in tape_before.items():
            assert tape.get(rel) == data, f"tape object {rel} was written over or removed"
        tape_before = tape
        assert holds_version(ws, v1), "every intact copy of v1 was lost"
        assert holds_version(ws, v2), "every intact copy of v2 was lost"
    # v2 reached tape (beside v1, never over it).
    on_tape = holds_version(ws, v2, exact=True)
    assert any(h.startswith(f"hpss:{SCAN}.v2-") for h in on_tape), on_tape
    assert f"hpss:{SCAN}" in holds_version(ws, v1, exact=True)

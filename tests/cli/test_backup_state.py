"""`--backup-state`: a consistent copy of the state store, taken while a writer is busy, that
restores the history an operator relies on (receipts, approvals, evidence)."""

from __future__ import annotations

import shutil
import sqlite3
import stat
from pathlib import Path

from engine.workspace import create_workspace
from tests.cli.test_versions import audit, passes


def test_a_backup_taken_during_a_write_restores_every_receipt(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=1000)
    ws.write_scan("a.h5", b"measured once" * 100)
    passes(run_cli, ws, 3)
    assert run_cli("--approve-all", "--yes", config=ws.config_path).returncode == 0
    passes(run_cli, ws, 1)
    assert not (ws.dtn / "a.h5").exists()
    before = run_cli("--receipt", "a.h5", "--json", config=ws.config_path).stdout
    _, plan_before = audit(run_cli, ws)

    # Another writer is in the middle of a transaction (the service, mid-pass).
    state = ws.config().state.path
    writer = sqlite3.connect(state, isolation_level=None, timeout=1)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute(
        "INSERT INTO events(at, level, kind, message) VALUES ('2001-01-01', 'info', 'x', 'uncommitted')"
    )
    dest = tmp_path / "backup.sqlite"
    done = run_cli("--backup-state", str(dest), config=ws.config_path)
    writer.execute("ROLLBACK")
    writer.close()
    assert done.returncode == 0, done.stderr
    assert "1 deletion receipts" in done.stdout and "integrity ok" in done.stdout
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    copy = sqlite3.connect(dest)
    assert copy.execute("SELECT count(*) FROM events WHERE message = 'uncommitted'").fetchone() == (
        0,
    )
    # Its own change epoch: a TUI watching the store reads a restored copy whole.
    epoch = "SELECT epoch FROM change_epoch"
    original = sqlite3.connect(state)
    assert copy.execute(epoch).fetchone() != original.execute(epoch).fetchone()
    original.close()
    copy.close()

    # The store is lost: without the backup, the history is gone and the pruned scan unknown.
    for leftover in state.parent.glob(state.name + "*"):
        leftover.unlink()
    lost = run_cli("--receipt", "a.h5", config=ws.config_path)
    assert lost.returncode == 1 and "No deletion receipts" in lost.stdout

    # Restored (service stopped): every receipt and the same plan are back.
    shutil.copy2(dest, state)
    assert run_cli("--receipt", "a.h5", "--json", config=ws.config_path).stdout == before
    _, plan_after = audit(run_cli, ws)
    assert plan_after["plan_digest"] == plan_before["plan_digest"]


def test_a_backup_never_overwrites_and_needs_a_store(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = create_workspace(tmp_path / "ws")
    missing = run_cli("--backup-state", str(tmp_path / "b.sqlite"), config=ws.config_path)
    assert missing.returncode == 64 and "no state store" in missing.stderr
    passes(run_cli, ws, 1)
    taken = tmp_path / "taken.sqlite"
    taken.write_bytes(b"an older backup")
    again = run_cli("--backup-state", str(taken), config=ws.config_path)
    assert again.returncode == 64 and "exists already" in again.stderr
    assert taken.read_bytes() == b"an older backup"
    assert not list(tmp_path.glob(".*partial"))

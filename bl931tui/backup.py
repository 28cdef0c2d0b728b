"""`bl931tui --backup-state DEST`: a consistent copy of the state store, safe while it runs.

The state store is SQLite in WAL mode: copying the file with `cp` while the service writes can
give a torn copy (the file and its `-wal` journal taken at different moments). SQLite's online
backup API copies a consistent snapshot page by page from a read-only connection, without
stopping the service and without blocking it for more than a page step. The copy is checked
(`PRAGMA integrity_check`) before it is reported good, written under a temporary name and
renamed into place, so a failed or interrupted backup never leaves a file that looks like one.
It is created owner-only (0600): it holds the same records as the store.

Restoring is the reverse with the service stopped: see docs/operations.md.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from engine.config import Config
from engine.errors import UsageError
from engine.store.changes import new_epoch

PAGES_PER_STEP = 1024  # ~4 MiB per step: the service's writers wait at most one step


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    tables = {
        "scans": "SELECT count(*) FROM scans",
        "receipts": "SELECT count(*) FROM deletions",
        "events": "SELECT count(*) FROM events",
    }
    return {name: int(conn.execute(sql).fetchone()[0]) for name, sql in tables.items()}


def backup_state(config: Config, dest: Path) -> int:
    source = config.state.path
    if not source.exists():
        raise UsageError(f"there is no state store at {source} to back up")
    dest = dest.expanduser().resolve()
    if dest.exists():
        raise UsageError(f"{dest} exists already; name a new file (a backup never overwrites)")
    if dest == source.resolve():
        raise UsageError("the backup must be another file than the state store itself")
    if not dest.parent.is_dir():
        raise UsageError(f"{dest.parent} is not a folder")
    tmp = dest.with_name(f".{dest.name}.partial")
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        out = sqlite3.connect(tmp)
        try:
            src.backup(out, pages=PAGES_PER_STEP)
            # Its own change epoch: a TUI that watched the original reads a restored copy
            # whole rather than trusting the marks it saw (engine/store/changes.py).
            new_epoch(out)
            out.commit()
            check = out.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise UsageError(f"the copy failed its integrity check ({check}); nothing kept")
            schema = int(out.execute("PRAGMA user_version").fetchone()[0])
            counts = _counts(out)
        finally:
            out.close()
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    finally:
        src.close()
    print(
        f"backed up {source} to {dest} (schema {schema}; {counts['scans']} scans, "
        f"{counts['receipts']} deletion receipts, {counts['events']} events; integrity ok)"
    )
    return 0

"""The store's shape after the split by aggregate: the TUI runs no SQL of its own on the store
(it reads through `engine.store.views`), the old import path still names the same objects, the
schema is one tuple in one place, and the status enums are stored as the same strings."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import engine.state
import engine.store
import engine.store.migrations
from engine.model import ActionKind
from engine.store import OPEN_TASK_STATES, ActionStatus, StateStore, TaskRow, TaskRowStatus

ROOT = Path(__file__).resolve().parents[1]
# The backup copies the whole file through SQLite's backup API and counts rows in both copies:
# a file operation, not a read model.
SQL_ALLOWED = {"bl931tui/backup.py"}


def _sql_calls(root: Path) -> list[str]:
    found = []
    for path in sorted((root / "bl931tui").rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name in SQL_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"execute", "executemany", "executescript", "connection"}
            ):
                found.append(f"{name}:{node.lineno} .{node.func.attr}()")
    return found


def test_the_tui_runs_no_sql_of_its_own_on_the_store() -> None:
    assert _sql_calls(ROOT) == []


def test_the_sql_check_sees_a_query(tmp_path: Path) -> None:
    """Not vacuous: a screen that ran its own SELECT would be named."""
    (tmp_path / "bl931tui").mkdir()
    (tmp_path / "bl931tui" / "screen.py").write_text(
        "def rows(store):\n    return store.connection().execute('SELECT 1')\n"
    )
    assert len(_sql_calls(tmp_path)) == 2


def test_the_old_import_path_names_the_same_objects() -> None:
    assert engine.state.StateStore is engine.store.StateStore
    assert engine.state.MIGRATIONS is engine.store.migrations.MIGRATIONS
    assert len(engine.store.migrations.MIGRATIONS) == engine.state.SCHEMA_VERSION
    assert engine.state.PLANNED == "planned" and engine.state.SUBMITTED == "submitted"


def test_migrations_are_one_tuple_in_one_module() -> None:
    """Branches that add a migration append to one tuple: no other module defines one."""
    defining = [
        path.relative_to(ROOT).as_posix()
        for path in sorted((ROOT / "engine").rglob("*.py"))
        if "MIGRATIONS: tuple" in path.read_text("utf-8")
        or "\nMIGRATIONS = " in path.read_text("utf-8")
    ]
    assert defining == ["engine/store/migrations.py"]


def test_statuses_are_stored_as_their_strings(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    now = datetime(2026, 3, 1, tzinfo=UTC)

    class Planned:
        id, kind, scan, source, target, bytes = "a1", ActionKind.COPY, "s.h5", "dtn", "cfs", 1
        requires_approval, reason = False, "copy"

    store.save_plan([Planned()], now)
    task = TaskRow(
        "sub-1", None, "local", "copy", "dtn", "cfs", "l", TaskRowStatus.PREPARING, ("a1",)
    )
    store.create_task(task, {"a1": "s.h5"}, now)
    store.update_task("sub-1", now, status=TaskRowStatus.ACTIVE)
    raw = store.connection().execute("SELECT status, typeof(status) FROM tasks").fetchone()
    assert tuple(raw) == ("active", "text")
    action = store.connection().execute("SELECT status FROM actions WHERE id = 'a1'").fetchone()
    assert action[0] == "submitted" == ActionStatus.SUBMITTED
    assert [t.submission_id for t in store.tasks(OPEN_TASK_STATES)] == ["sub-1"]
    store.close()

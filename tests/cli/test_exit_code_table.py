"""The exit-code table in docs/audit.md names every code the CLI can return, and is right.

Two halves: every exit code found in the front end's source (constants, `return N`,
`SystemExit`, argparse's own exits) is a row of the table; and the rows' cases, run through
the real CLI, exit as the table says. Before: exit codes were spread over three documents,
and the lock-held, no-receipt, `--check` and `--approve-all` cases were in none.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from engine.lock import OwnerLock
from engine.workspace import LocalWorkspace, scan_path
from tests.conftest import RunCli

ROOT = Path(__file__).parents[2]
HEADING = "## Exit codes of every command"


def table() -> list[tuple[int, str, str]]:
    """(exit, command, when) for each row of the table under HEADING."""
    text = (ROOT / "docs" / "audit.md").read_text("utf-8")
    assert HEADING in text, f"docs/audit.md has no {HEADING!r} section"
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            rows.append((int(cells[0]), cells[1], cells[2]))
    assert rows, "the exit-code table has no rows"
    return rows


def codes_in_source() -> set[int]:
    """Every exit code the front end can produce, read from its source."""
    found = {0, 64}  # argparse: --help / --version exit 0; `_Parser.error` exits 64
    constants: dict[str, int] = {}
    for path in sorted((ROOT / "bl931tui").rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                names = [t for t in node.targets if isinstance(t, ast.Name | ast.Tuple)]
                for target in names:
                    pairs = (
                        zip(target.elts, node.value.elts, strict=False)
                        if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                        else [(target, node.value)]
                    )
                    for name, value in pairs:
                        if (
                            isinstance(name, ast.Name)
                            and name.id.startswith("EXIT_")
                            and isinstance(value, ast.Constant)
                        ):
                            constants[name.id] = int(value.value)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "SystemExit":
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, int):
                    found.add(arg.value)
                elif isinstance(arg, ast.Constant | ast.JoinedStr):
                    found.add(1)  # SystemExit("message") prints it and exits 1
    for path in sorted((ROOT / "bl931tui").rglob("*.py")):
        for match in re.finditer(r"return (\d+)\b", path.read_text("utf-8")):
            found.add(int(match.group(1)))
    return found | set(constants.values())


def test_every_code_the_cli_can_return_is_in_the_table() -> None:
    documented = {code for code, _, _ in table()}
    assert codes_in_source() <= documented, codes_in_source() - documented


@pytest.mark.parametrize(
    "case",
    [
        "settled",
        "work pending",
        "needs a person",
        "lock held",
        "no receipt",
        "check ok",
        "check failed",
        "usage",
        "config",
    ],
)
def test_each_case_exits_as_the_table_says(  # type: ignore[no-untyped-def]
    case: str, run_cli: RunCli, workspace: LocalWorkspace
) -> None:
    rows = {when.split(":")[0].strip("* "): code for code, _, when in table()}
    assert case in rows, f"no row whose case is {case!r}: {sorted(rows)}"
    config = workspace.config_path
    if case == "settled":
        done = run_cli("--dry-run", config=config)
    elif case == "work pending":
        workspace.write_scan(scan_path(1, None), b"x" * 100)
        done = run_cli("--dry-run", config=config)
    elif case == "needs a person":
        (workspace.root / "hpss").rmdir()
        done = run_cli("--dry-run", config=config)
    elif case == "lock held":
        assert run_cli("--reconcile", "--once", config=config).returncode == 0
        with OwnerLock(workspace.state_path):
            done = run_cli("--reconcile", "--once", config=config)
        assert "another bl931 reconciler owns" in done.stderr
    elif case == "no receipt":
        done = run_cli("--receipt", "2026/01/none.h5", config=config)
    elif case == "check ok":
        done = run_cli("--check", config=config)
    elif case == "check failed":
        (workspace.root / "hpss").rmdir()
        done = run_cli("--check", config=config)
    elif case == "usage":
        done = run_cli("--once", config=config)
    else:
        done = run_cli("--check", config=workspace.root / "missing.toml")
    assert done.returncode == rows[case], (case, done.stdout, done.stderr)

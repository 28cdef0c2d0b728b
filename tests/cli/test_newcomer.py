"""What a newcomer meets first: version, no config, the shipped files, a plain date for --as-of.

Each of these was wrong or missing before: `--version` was an unknown argument, the no-config
message did not say where an example is, `--as-of 2027-12-01` was refused with a hint that was
itself invalid (`2027-12-01+00:00`), and the example config and systemd unit were only in the
source tree.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from engine.workspace import create_workspace

ROOT = Path(__file__).parents[2]


def test_version_is_printed(run_cli) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("bl931 0.") or done.stdout.startswith("bl931 1.")


def test_without_a_config_it_says_where_it_looked_and_what_to_do(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("--dry-run")
    assert done.returncode == 78
    assert "no configuration found: looked for ./bl931.toml (" in done.stderr
    assert "bl931tui --example-config" in done.stderr and "bl931tui --demo" in done.stderr


def test_the_example_config_ships_with_the_program_and_loads(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("--example-config")
    assert done.returncode == 0
    assert done.stdout == (ROOT / "config.example.toml").read_text("utf-8")
    tomllib.loads(done.stdout)


def test_the_systemd_unit_names_this_installation(run_cli) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("--systemd-unit")
    assert done.returncode == 0
    lines = dict(
        line.split("=", 1)
        for line in done.stdout.splitlines()
        if line.startswith(("ExecStart=", "Documentation="))
    )
    program = lines["ExecStart"].split()[0]
    assert Path(program).is_file() and program.endswith("bl931tui")
    docs = lines["Documentation"]
    assert docs.startswith("file://") and Path(docs.removeprefix("file://")).is_file()
    assert "RestartPreventExitStatus=78" in done.stdout


def test_as_of_takes_a_plain_date_as_midnight_utc(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = create_workspace(tmp_path / "ws")
    done = run_cli("--dry-run", "--json", "--as-of", "2027-12-01", config=ws.config_path)
    assert done.returncode in (0, 2), done.stderr
    assert json.loads(done.stdout)["as_of"] == "2027-12-01T00:00:00+00:00"
    naive = run_cli("--dry-run", "--as-of", "2027-12-01T08:00", config=ws.config_path)
    assert naive.returncode == 64
    # the hint it gives is itself accepted
    hint = naive.stderr.rsplit("e.g. ", 1)[1].strip()
    assert hint == "2027-12-01T08:00:00+00:00"
    again = run_cli("--dry-run", "--json", "--as-of", hint, config=ws.config_path)
    assert json.loads(again.stdout)["as_of"] == hint


def test_a_relative_endpoint_path_that_is_missing_says_where_it_was_taken_from(
    run_cli,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    ws = create_workspace(tmp_path / "ws")
    text = ws.config_path.read_text("utf-8").replace('path = "dtn"', 'path = "raw-data"')
    assert '"raw-data"' in text
    ws.config_path.write_text(text, "utf-8")
    done = run_cli("--dry-run", config=ws.config_path)
    assert done.returncode == 1
    assert (
        f"root {ws.config_path.parent / 'raw-data'} is missing or not a directory (unmounted? a "
        f"relative `path` is taken from the config file's folder, {ws.config_path.parent})"
    ) in done.stdout


def test_the_headless_demo_prints_one_line_per_event_and_logs_to_a_file(
    run_cli,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Before: every event was printed twice (narrative on stdout, log line on stderr), with
    empty "pass done in 0.02s:" lines in between."""
    done = run_cli("--demo", "--headless", "--duration", "6", "--workspace", str(tmp_path / "d"))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[1] == f"  engine log: {tmp_path / 'd' / 'demo.log'}"
    log = (tmp_path / "d" / "demo.log").read_text("utf-8")
    assert "pass done in" in log and "pass done in 0.00s: \n" not in log
    assert all(not line.rstrip().endswith("s:") for line in log.splitlines())
    events = [line for line in lines if line[:2].isdigit() and line[2] == ":"]
    assert events, done.stdout
    assert len(events) == len(set(events)), "an event was printed twice"
    assert "Where every scan is now" in done.stdout

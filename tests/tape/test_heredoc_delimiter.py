"""The job script's heredocs cannot be ended early by any member path (engine/storage/tape_script.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from engine.storage.tape_script import _heredoc, heredoc_delimiter


def test_a_path_holding_the_derived_delimiter_gets_a_longer_one() -> None:
    body = "2026/a.h5"
    first = heredoc_delimiter(body)
    evil = f"{body}\n{first}"
    assert heredoc_delimiter(evil) not in evil


def test_bash_reads_back_exactly_the_lines_even_with_delimiter_lookalikes(tmp_path: Path) -> None:
    lines = ["2026/BL931_EOF", "BL931_EOF", "2026/$(touch PWNED)", "x'y\"z"]
    lines.append(heredoc_delimiter("\n".join(lines)))  # a path equal to the plain body's delimiter
    script = _heredoc("$OUT", lines)
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", "-c", script], env={"OUT": str(out), "PATH": "/usr/bin:/bin"}, cwd=tmp_path
    )
    assert done.returncode == 0
    assert out.read_text().splitlines() == lines
    assert not (tmp_path / "PWNED").exists()

"""Without a config: where bl931 looked (the actual paths) and how to get one.

Before: the message named `./bl931.toml` without saying which folder "." was, and a `--config`
path that does not exist said only "file not found", with no way forward.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

from tests.conftest import CLI


def bl931(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(home)},
        stdin=subprocess.DEVNULL,
    )


def test_no_config_names_the_folders_it_looked_in(tmp_path: Path) -> None:
    for args in (("--dry-run",), ("--check",), ()):
        done = bl931(tmp_path, *args)
        assert done.returncode == 78, (args, done.stderr)
        assert (
            f"no configuration found: looked for ./bl931.toml ({tmp_path / 'bl931.toml'}) and "
            f"~/.config/bl931/config.toml ({tmp_path / 'home' / '.config/bl931/config.toml'})"
        ) in done.stderr
        assert "`bl931tui --example-config > bl931.toml`, then edit it" in done.stderr
        assert "`bl931tui --demo` shows bl931 at work without a config" in done.stderr


def test_a_missing_config_file_says_how_to_make_one(tmp_path: Path) -> None:
    missing = tmp_path / "etc" / "bl931.toml"
    done = bl931(tmp_path, "--config", str(missing), "--check")
    assert done.returncode == 78
    assert f"{missing}: file not found (given with --config)" in done.stderr
    assert f"`bl931tui --example-config > {missing}`, then edit it" in done.stderr


def test_the_suggested_command_gives_a_config_that_loads(tmp_path: Path) -> None:
    example = bl931(tmp_path, "--example-config")
    assert example.returncode == 0
    (tmp_path / "bl931.toml").write_text(example.stdout, "utf-8")
    tomllib.loads(example.stdout)
    done = bl931(tmp_path, "--check")
    # it loads; its endpoints are the site's paths, absent here: each one is named (exit 1)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[0] == f"config: ok ({tmp_path / 'bl931.toml'})"
    assert "endpoint dtn: FAILED: reachable: root /data/bl931/raw is missing" in done.stdout

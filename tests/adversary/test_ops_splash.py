"""Adversary: endpoints from splash_flows' config.yml (`from_splash`, `--import-splash`).

Promise (docs/operations.md): a missing file, a name not in it, a YAML without
`globus.globus_endpoints` (and any unusable YAML) is a configuration error, exit 78, naming the
file and the key. Loading fails before any Globus credential is needed, so these run offline.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "bl931tui"]
NAME = "bl931-nersc_alsdev_raw"
UUID = "d40248e6-d874-4f7b-badd-2c06c16f1a58"
GOOD_YAML = f"""\
globus:
  globus_endpoints:
    {NAME}:
      root_path: /global/cfs/cdirs/als/data_mover/9.3.1/raw/
      uri: nersc.gov
      uuid: {UUID}
      name: {NAME}
    spot832:
      root_path: /
      uuid: 0b4e4a0e-3f8a-4d0c-9f5e-3a4d1f7d9c21
"""
CONFIG = """\
[state]
path = "state/state.sqlite"
[inventory]
endpoint = "dtn"
watch = "off"
[endpoints.dtn]
kind = "local"
path = "dtn"
[endpoints.cfs]
from_splash = "{ref}"
{extra}
[[copy]]
from = "dtn"
to = "cfs"
[catalog]
kind = "none"
[splash]
config = "config.yml"
"""


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLOBUS_")}
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def beamline(tmp_path: Path, yml: str | bytes | None, ref: str = NAME, extra: str = "") -> Path:
    (tmp_path / "dtn").mkdir(exist_ok=True)
    if isinstance(yml, bytes):
        (tmp_path / "config.yml").write_bytes(yml)
    elif yml is not None:
        (tmp_path / "config.yml").write_text(yml, "utf-8")
    config = tmp_path / "bl931.toml"
    config.write_text(CONFIG.format(ref=ref, extra=extra), "utf-8")
    return config


def load_error(tmp_path: Path, config: Path) -> str:
    done = run("--config", str(config), "--dry-run", cwd=tmp_path)
    assert done.returncode == 78, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "state").exists()
    return done.stderr


@pytest.mark.parametrize(
    ("yml", "key"),
    [
        ("globus:\n  globus_endpoints:\n    a: [1\n", None),
        ("globus: {}\n", "globus.globus_endpoints"),
        ("- just\n- a list\n", "globus.globus_endpoints"),
        (f"globus:\n  globus_endpoints:\n    {NAME}:\n      root_path: /x\n", f"{NAME}.uuid"),
        (
            f"globus:\n  globus_endpoints:\n    {NAME}:\n      root_path: /x\n      uuid: 42\n",
            f"{NAME}.uuid",
        ),
        (
            f"globus:\n  globus_endpoints:\n    {NAME}:\n      root_path: [a]\n      uuid: {UUID}\n",
            f"{NAME}.root_path",
        ),
        (f"globus:\n  globus_endpoints:\n    {NAME}: just text\n", NAME),
    ],
    ids=["syntax", "no-endpoints", "a-list", "no-uuid", "int-uuid", "list-root", "not-a-map"],
)
def test_an_unusable_yaml_is_a_config_error_naming_file_and_key(
    tmp_path: Path, yml: str, key: str | None
) -> None:
    err = load_error(tmp_path, beamline(tmp_path, yml))
    assert str(tmp_path / "config.yml") in err, err
    if key is not None:
        assert key in err, err


def test_a_name_not_in_the_yaml_lists_the_names(tmp_path: Path) -> None:
    err = load_error(tmp_path, beamline(tmp_path, GOOD_YAML, ref="bl931-nersc_typo"))
    assert "endpoints.cfs.from_splash" in err and "bl931-nersc_typo" in err
    assert NAME in err and "spot832" in err and "config.yml" in err


def test_a_disagreeing_root_names_both_keys_but_a_trailing_slash_agrees(tmp_path: Path) -> None:
    err = load_error(tmp_path, beamline(tmp_path, GOOD_YAML, extra='root = "/global/cfs/other"'))
    assert "endpoints.cfs.root" in err and str(tmp_path / "config.yml") in err, err
    # Without the credentials the loader stops at Globus, i.e. *after* the splash expansion
    # accepted a root that differs only by its trailing slash.
    config = beamline(
        tmp_path, GOOD_YAML, extra='root = "/global/cfs/cdirs/als/data_mover/9.3.1/raw"'
    )
    done = run("--config", str(config), "--dry-run", cwd=tmp_path)
    assert "disagrees" not in done.stderr and "GLOBUS_CLIENT_ID" in done.stderr, done.stderr


def test_import_splash_prints_tables_with_roots_without_trailing_slash(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(GOOD_YAML, "utf-8")
    done = run("--import-splash", "config.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"[endpoints.{NAME}]" in done.stdout
    assert f'collection = "{UUID}"' in done.stdout
    assert 'root = "/global/cfs/cdirs/als/data_mover/9.3.1/raw"\n' in done.stdout
    assert 'root = "/"\n' in done.stdout


@pytest.mark.parametrize("mode", ["load", "import"])
def test_a_non_utf8_yaml_is_a_config_error(tmp_path: Path, mode: str) -> None:
    config = beamline(tmp_path, b"globus:\n  globus_endpoints:\n    caf\xe9: {}\n")
    if mode == "load":
        load_error(tmp_path, config)
    else:
        done = run("--import-splash", "config.yml", cwd=tmp_path)
        assert done.returncode == 78 and "Traceback" not in done.stderr, done.stderr[-500:]
        assert "config.yml" in done.stderr


def test_a_missing_yaml_names_the_file_and_the_key(tmp_path: Path) -> None:
    err = load_error(tmp_path, beamline(tmp_path, None))
    assert str(tmp_path / "config.yml") in err
    assert "splash.config" in err or "endpoints.cfs.from_splash" in err, err


def test_a_uuid_that_is_not_a_uuid_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(GOOD_YAML.replace(UUID, "not-a-uuid"), "utf-8")
    done = run("--import-splash", "config.yml", cwd=tmp_path)
    assert done.returncode == 78, done.stdout
    assert f"globus.globus_endpoints.{NAME}.uuid" in done.stderr


def test_a_disagreeing_root_names_the_yaml_key_that_exists(tmp_path: Path) -> None:
    err = load_error(tmp_path, beamline(tmp_path, GOOD_YAML, extra='root = "/global/cfs/other"'))
    assert f"globus.globus_endpoints.{NAME}.root_path" in err, err

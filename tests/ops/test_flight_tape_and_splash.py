"""A tape leg is only checked for reachability (`hsi ls ROOT` through its TapeRunner, never a
write), and splash_flows' `config.yml` endpoints (`from_splash`, `--import-splash`).

The YAML fixture copies the shape of als-computing/splash_flows `config.yml` (commit 8e48e45,
"# 9.3.1 ENDPOINTS": `globus.globus_endpoints.<name>.{root_path, uri, uuid, name}`, some roots
with a trailing slash).
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.clock import FakeClock
from engine.config import load_config
from engine.errors import ConfigError
from engine.flight_check import run_flight_check
from engine.storage.tape_runner import CommandResult, JobStatus
from engine.workspace import LocalWorkspace
from tests.conftest import RunCli

SPLASH_YML = """\
globus:
  globus_endpoints:

    # 9.3.1 ENDPOINTS

    bl931-beegfs-data:
      root_path: /beamline_staging/bl931/raw/
      uri: beegfs.als.lbl.gov
      uuid: d33b5d6e-1603-414e-93cb-bcb732b7914a
      name: bl931-beegfs-data

    bl931-compute-dtn:
      root_path: /
      uri: compute-dtn.als.lbl.gov
      uuid: 23af478e-d459-4e78-9753-5091b5fb432a
      name: bl931-compute-dtn

    bl931-nersc_alsdev_raw:
      root_path: /global/cfs/cdirs/als/data_mover/9.3.1/raw
      uri: nersc.gov
      uuid: d40248e6-d874-4f7b-badd-2c06c16f1a58
      name: bl931-nersc_alsdev_raw

  globus_apps:
    als_transfer:
      client_id: ${GLOBUS_CLIENT_ID}
      client_secret: ${GLOBUS_CLIENT_SECRET}
"""


class RecordingRunner:
    """A TapeRunner that records what it is asked and answers `hsi ls` with `returncode`."""

    name = "recording"

    def __init__(self, returncode: int = 0) -> None:
        self.returncode = returncode
        self.commands: list[list[str]] = []
        self.submitted: list[str] = []

    def submit(self, name: str, script: str) -> str:
        self.submitted.append(name)
        return "job-1"

    def status(self, job_id: str) -> JobStatus:
        raise AssertionError("a flight check never runs a tape job")

    def find(self, name: str) -> str | None:
        return None

    def command(self, argv: list[str]) -> CommandResult:
        self.commands.append(argv)
        return CommandResult(self.returncode, "", "" if self.returncode == 0 else "HPSS down")

    def close(self) -> None:
        pass

    def keep_holds_in(self, book: object) -> None:
        pass


@pytest.mark.parametrize("returncode", [0, 72])
def test_a_tape_leg_is_hsi_ls_of_its_root_and_never_a_write(
    workspace: LocalWorkspace, returncode: int
) -> None:
    ws = workspace
    runner = RecordingRunner(returncode)
    clock = FakeClock(datetime(2031, 1, 1, tzinfo=UTC))
    report = run_flight_check(ws.config(), clock=clock, tape_runners={"hpss": runner})
    tape = next(leg for leg in report.legs if leg.target == "hpss")
    assert tape.check == "reachability"
    assert runner.commands == [["hsi", "ls", "/"]] and runner.submitted == []
    assert list(ws.hpss.rglob("*")) == []  # nothing written to tape
    assert tape.ok is (returncode == 0) and report.ok is (returncode == 0)
    if returncode:
        assert "HPSS down" in (tape.error or "")
    assert report.started_at == clock.now()
    assert "| cfs → hpss | reachability |" in report.to_markdown()
    assert report.to_json()["legs"][1]["target"] == "hpss"


def write_bl931(tmp_path: Path, endpoints: str, splash: str | None = "config.yml") -> Path:
    (tmp_path / "config.yml").write_text(SPLASH_YML)
    (tmp_path / "dtn").mkdir(exist_ok=True)
    text = f"""
[inventory]
endpoint = "dtn"
[endpoints.dtn]
kind = "local"
path = "dtn"
{endpoints}
[[copy]]
from = "dtn"
to = "cfs"
"""
    if splash is not None:
        text = f'[splash]\nconfig = "{splash}"\n' + text
    path = tmp_path / "bl931.toml"
    path.write_text(text)
    return path


def test_from_splash_fills_collection_and_root(tmp_path: Path) -> None:
    config = load_config(
        write_bl931(tmp_path, '[endpoints.cfs]\nfrom_splash = "bl931-nersc_alsdev_raw"')
    )
    cfs = config.endpoints["cfs"]
    assert (cfs.kind, cfs.collection, cfs.root) == (
        "globus",
        "d40248e6-d874-4f7b-badd-2c06c16f1a58",
        "/global/cfs/cdirs/als/data_mover/9.3.1/raw",
    )


@pytest.mark.parametrize(
    ("endpoints", "splash", "names"),
    [
        (
            '[endpoints.cfs]\nfrom_splash = "bl931-nersc_raw"',
            "config.yml",
            ["endpoints.cfs.from_splash", "config.yml", "bl931-nersc_alsdev_raw"],
        ),
        (
            '[endpoints.cfs]\nfrom_splash = "bl931-nersc_alsdev_raw"',
            None,
            ["endpoints.cfs.from_splash", "[splash] config"],
        ),
        (
            '[endpoints.cfs]\nfrom_splash = "bl931-nersc_alsdev_raw"',
            "missing.yml",
            ["missing.yml", "not found"],
        ),
        (
            '[endpoints.cfs]\nfrom_splash = "bl931-nersc_alsdev_raw"\ncollection = "0000"',
            "config.yml",
            ["endpoints.cfs.collection", "globus.globus_endpoints.bl931-nersc_alsdev_raw.uuid"],
        ),
    ],
    ids=["unknown name", "no splash file", "missing file", "disagreeing collection"],
)
def test_splash_errors_name_the_file_and_key(
    tmp_path: Path, endpoints: str, splash: str | None, names: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_bl931(tmp_path, endpoints, splash))
    message = str(caught.value)
    for name in names:
        assert name in message, message
    assert "bl931.toml" in message or "yml" in message


def test_a_yaml_without_globus_endpoints_is_named(tmp_path: Path) -> None:
    path = write_bl931(tmp_path, '[endpoints.cfs]\nfrom_splash = "x"')
    (tmp_path / "config.yml").write_text("prefect:\n  deployments: []\n")
    with pytest.raises(ConfigError, match=r"config\.yml.*globus\.globus_endpoints"):
        load_config(path)


def test_import_splash_prints_tables_bl931_accepts(run_cli: RunCli, tmp_path: Path) -> None:
    yml = tmp_path / "config.yml"
    yml.write_text(SPLASH_YML)
    done = run_cli("--import-splash", str(yml))
    assert done.returncode == 0, done.stderr
    tables = tomllib.loads(done.stdout)["endpoints"]
    assert tables["bl931-beegfs-data"] == {
        "kind": "globus",
        "collection": "d33b5d6e-1603-414e-93cb-bcb732b7914a",
        "root": "/beamline_staging/bl931/raw",
    }
    assert set(tables) == {"bl931-beegfs-data", "bl931-compute-dtn", "bl931-nersc_alsdev_raw"}
    bad = run_cli("--import-splash", str(tmp_path / "nope.yml"))
    assert bad.returncode == 78 and "nope.yml" in bad.stderr

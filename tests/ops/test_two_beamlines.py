"""Two beamlines on one machine: 9.3.1 and 7.3.3 services side by side, each with its own
state store, lock, decision socket, metrics and Pushgateway group, never touching the other's;
and the shipped `deploy/examples/bl733.toml` is a valid config (its splash_flows names resolve).
"""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from pathlib import Path

from engine.config import load_config
from engine.workspace import create_workspace
from tests.ops.test_flight_tape_and_splash import SPLASH_YML
from tests.ops.test_owner_and_push import gateway
from tests.service.helpers import ServiceProcess, metrics_port, sample, wait_for

ROOT = Path(__file__).resolve().parents[2]

BL733_SPLASH = """\
    bl733-nersc-alsdev_raw:
      root_path: /global/cfs/cdirs/als/data_mover/7.3.3/raw
      uri: nersc.gov
      uuid: d40248e6-d874-4f7b-badd-2c06c16f1a58
      name: bl733-nersc-alsdev_raw

    bl733-als-data733_raw:
      root_path: /
      uri: data733.lbl.gov
      uuid: 26b3d2cf-fd80-4a64-a78f-38a155aca926
      name: data733_raw
"""


def test_the_bl733_example_is_a_valid_config(tmp_path: Path) -> None:
    yml = tmp_path / "config.yml"
    yml.write_text(SPLASH_YML.replace("  globus_apps:", BL733_SPLASH + "\n  globus_apps:"))
    (tmp_path / "raw").mkdir()
    text = (ROOT / "deploy" / "examples" / "bl733.toml").read_text()
    text = text.replace("/opt/splash_flows/config.yml", str(yml))
    text = text.replace("/data/bl733/raw", str(tmp_path / "raw"))
    path = tmp_path / "bl733.toml"
    path.write_text(text)
    config = load_config(path)
    assert config.beamline.name == "7.3.3"
    assert config.state.path == Path("/var/lib/bl733/state.sqlite")
    assert config.retention["dtn"].keep_days == 180
    assert config.endpoints["cfs"].root == "/global/cfs/cdirs/als/data_mover/7.3.3/raw"
    assert config.endpoints["dtn"].collection == "26b3d2cf-fd80-4a64-a78f-38a155aca926"
    assert config.catalog.path != load_config_931_default()


def load_config_931_default() -> Path:
    return Path("/var/lib/bl931/catalog.json")


def test_two_beamline_services_side_by_side(tmp_path: Path) -> None:
    worlds = {
        "9.3.1": create_workspace(tmp_path / "bl931", dtn_keep_days=0, cfs_keep_days=0),
        "7.3.3": create_workspace(tmp_path / "bl733", dtn_keep_days=180, cfs_keep_days=0),
    }
    ws733 = worlds["7.3.3"]
    ws733.config_path.write_text(
        ws733.config_path.read_text().replace('name = "9.3.1"', 'name = "7.3.3"')
    )
    worlds["9.3.1"].write_scan("2026/11/S931.h5", b"nine three one")
    ws733.write_scan("2026/11/S733.h5", b"seven three three")
    services = {}
    with gateway() as pushes:
        env = {"PUSHGATEWAY_URL": pushes[0][1]}
        try:
            for name, ws in worlds.items():
                services[name] = ServiceProcess(
                    ws.config_path,
                    "--interval",
                    "3600",
                    "--metrics-port",
                    "0",
                    log_path=tmp_path / f"{name}.log",
                    env=env,
                )
            ports = {name: metrics_port(svc) for name, svc in services.items()}
            for svc in services.values():
                svc.wait_log(r"pass done in")
            for ws in worlds.values():
                wait_for(lambda ws=ws: Path(f"{ws.state_path}.sock").exists(), what="socket")
            wait_for(lambda: len(pushes) >= 3, what="a push from each service")
            for name, ws in worlds.items():
                other = "7.3.3" if name == "9.3.1" else "9.3.1"
                own_scan = "2026/11/S931.h5" if name == "9.3.1" else "2026/11/S733.h5"
                with sqlite3.connect(ws.state_path) as db:
                    scans = [r[0] for r in db.execute("SELECT id FROM scans")]
                assert scans == [own_scan]
                holder = json.loads(Path(f"{ws.state_path}.lock").read_text())
                assert holder["pid"] == services[name].pid
                assert worlds[other].root not in ws.state_path.parents
                text = urllib.request.urlopen(
                    f"http://127.0.0.1:{ports[name]}/metrics", timeout=10
                ).read()
                assert (
                    sample(text.decode(), "bl931_replicas", endpoint="dtn", level="checksum") == 1.0
                )
            assert ports["9.3.1"] != ports["7.3.3"]
            paths = {path for _, path, _ in pushes[1:]}
            assert {
                "/metrics/job/bl931/beamline/9.3.1",
                "/metrics/job/bl931/beamline/7.3.3",
            } <= paths
            # Each catalog is its own beamline's, and never names the other's scan.
            for name, ws in worlds.items():
                doc = json.loads((ws.root / "state" / "catalog.json").read_text())
                assert [i["beamline"] for i in doc["bl931_catalog"].values()] == [name]
                other_scan = "S733" if name == "9.3.1" else "S931"
                assert other_scan not in json.dumps(doc)
        finally:
            for svc in services.values():
                svc.close()

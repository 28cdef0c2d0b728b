"""The shipped systemd units: hardened (`systemd-analyze security` ≤ 2.0), still verifiable, and
still granting what the service needs (network, the decision socket, the operators' group).

Runs the real `systemd-analyze` (skipped only where it is not installed). `verify` needs the
unit's programs to exist, so it checks the unit as `bl931tui --systemd-unit` renders it for this
installation (and the worker unit with its program pointed at this venv's interpreter).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = [ROOT / "deploy" / "bl931.service", ROOT / "deploy" / "bl931-prefect-worker.service"]
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def _settings(unit: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@needs_analyze
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_exposure_is_at_most_two(unit: Path) -> None:
    done = subprocess.run(
        [str(ANALYZE), "security", "--offline=true", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", done.stdout)
    assert found is not None, done.stdout + done.stderr
    assert float(found.group(1)) <= 2.0, done.stdout


@needs_analyze
def test_the_rendered_service_unit_verifies_clean(tmp_path: Path) -> None:
    rendered = subprocess.run(
        [sys.executable, "-m", "bl931tui", "--systemd-unit"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    unit = tmp_path / "bl931.service"
    unit.write_text(rendered)
    done = subprocess.run(
        [str(ANALYZE), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


@needs_analyze
def test_the_worker_unit_verifies_clean(tmp_path: Path) -> None:
    text = UNITS[1].read_text().replace("/opt/bl931/venv/bin/prefect", sys.executable)
    unit = tmp_path / "bl931-prefect-worker.service"
    unit.write_text(text)
    done = subprocess.run(
        [str(ANALYZE), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_the_sandbox_keeps_what_the_service_needs(unit: Path) -> None:
    s = _settings(unit)
    families = " ".join(s["RestrictAddressFamilies"]).split()
    # Globus and SciCat over HTTPS; the decision socket and journald over Unix sockets.
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(families)
    # The decision socket names callers by their kernel uid, and the store gets the operators'
    # group: a private user namespace would map both to nobody.
    assert s.get("PrivateUsers", ["false"]) == ["false"]
    assert "PrivateNetwork" not in s and "IPAddressDeny" not in s
    # chown(…, -1, gid) gives the store and socket the operators' group.
    assert "@chown" in s["SystemCallFilter"][0].split()
    assert all("@chown" not in f and "@privileged" not in f for f in s["SystemCallFilter"][1:])
    # The state directory (store, lock, socket) and the local paths it prunes stay writable.
    assert "bl931" in s["StateDirectory"][0].split()
    writable = s["ReadWritePaths"][0].split()
    assert "/var/lib/bl931" in writable and "/data/bl931/raw" in writable
    assert s["ProtectSystem"] == ["strict"] and s["CapabilityBoundingSet"] == [""]


def test_the_worker_and_the_service_never_run_together() -> None:
    """Exactly one owner of a beamline's store: starting one unit stops the other."""
    assert "bl931.service" in _settings(UNITS[1])["Conflicts"]

"""`--check` covers every endpoint: reachable, identity marker, listing, writable; one line each.

Before: `--check` printed `config: ok` and the catalog only; an unmounted CFS, a foreign marker
or a read-only mount passed the check (exit 0) and were found by the first pass instead.

Local endpoints run here; a read-only mount is made in a private mount namespace (`unshare -m`,
skipped where that is not allowed). Globus endpoints are in `test_check_globus.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.identity import MARKER_NAME
from engine.reconciler import os_user
from engine.workspace import LocalWorkspace
from tests.conftest import CLI


def marker_id(root: Path) -> str:
    return str(json.loads((root / MARKER_NAME).read_text("utf-8"))["id"])


def line_of(stdout: str, endpoint: str) -> str:
    (line,) = [ln for ln in stdout.splitlines() if ln.startswith(f"endpoint {endpoint}: ")]
    return line


def test_before_the_first_pass_every_endpoint_is_checked_and_the_markers_are_to_come(  # type: ignore[no-untyped-def]
    run_cli, workspace: LocalWorkspace
) -> None:
    done = run_cli("--check", config=workspace.config_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == f"config: ok ({workspace.config_path})"
    for name in ("dtn", "cfs", "hpss"):
        root = workspace.root / name
        assert line_of(done.stdout, name) == (
            f"endpoint {name}: warning (local {root}: listed; identity: no marker yet, the "
            f"service's first pass writes it; writable by {os_user()})"
        )
    catalog = workspace.root / "state" / "catalog.json"
    assert f"catalog: ok (local file {catalog}; its folder writable by {os_user()})" in (
        done.stdout
    )
    assert not (workspace.root / "cfs" / MARKER_NAME).exists(), "--check wrote a marker"
    assert [p.name for p in (workspace.root / "cfs").iterdir()] == [], "a probe was left"


def test_after_a_pass_each_endpoint_names_its_marker(  # type: ignore[no-untyped-def]
    run_cli, workspace: LocalWorkspace
) -> None:
    assert run_cli("--reconcile", "--once", config=workspace.config_path).returncode == 0
    done = run_cli("--check", config=workspace.config_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("dtn", "cfs", "hpss"):
        root = workspace.root / name
        assert line_of(done.stdout, name) == (
            f"endpoint {name}: ok (local {root}: listed; identity marker {marker_id(root)}; "
            f"writable by {os_user()})"
        )


def test_a_lost_marker_needs_a_person_and_the_other_endpoints_are_still_checked(  # type: ignore[no-untyped-def]
    run_cli, workspace: LocalWorkspace
) -> None:
    assert run_cli("--reconcile", "--once", config=workspace.config_path).returncode == 0
    cfs = workspace.root / "cfs"
    (cfs / MARKER_NAME).unlink()
    done = run_cli("--check", config=workspace.config_path)
    assert done.returncode == 1
    assert line_of(done.stdout, "cfs").startswith(
        f"endpoint cfs: FAILED: identity: the identity marker {cfs / MARKER_NAME} is missing"
    )
    assert line_of(done.stdout, "dtn").startswith("endpoint dtn: ok (")
    assert line_of(done.stdout, "hpss").startswith("endpoint hpss: ok (")


def test_an_unmounted_root_is_named(run_cli, workspace: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("--reconcile", "--once", config=workspace.config_path).returncode == 0
    hpss = workspace.root / "hpss"
    shutil.rmtree(hpss)
    done = run_cli("--check", config=workspace.config_path)
    assert done.returncode == 1
    assert line_of(done.stdout, "hpss").startswith(
        f"endpoint hpss: FAILED: reachable: root {hpss} is missing or not a directory"
    )


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs root and `unshare -m` for a read-only mount")
def test_a_read_only_mount_is_not_writable(run_cli, workspace: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("--reconcile", "--once", config=workspace.config_path).returncode == 0
    cfs = workspace.root / "cfs"
    script = (
        f"mount --bind {cfs} {cfs} && mount -o remount,bind,ro {cfs} && "
        f"exec {' '.join(CLI)} --config {workspace.config_path} --check --json"
    )
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["exit"] == 1
    (cfs_doc,) = [e for e in doc["endpoints"] if e["endpoint"] == "cfs"]
    assert cfs_doc["verdict"] == "FAILED"
    writable = {c["check"]: c for c in cfs_doc["checks"]}["writable"]
    assert writable["verdict"] == "FAILED"
    assert writable["message"].startswith(f"cannot create a file in {cfs}: Read-only file system")


def test_json_has_one_entry_per_endpoint_and_the_exit_code(  # type: ignore[no-untyped-def]
    run_cli, workspace: LocalWorkspace
) -> None:
    assert run_cli("--reconcile", "--once", config=workspace.config_path).returncode == 0
    done = run_cli("--check", "--json", config=workspace.config_path)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["config"] == {"path": str(workspace.config_path), "verdict": "ok"}
    assert [e["endpoint"] for e in doc["endpoints"]] == ["dtn", "cfs", "hpss"]
    assert all(e["verdict"] == "ok" and e["kind"] == "local" for e in doc["endpoints"])
    checks = [c["check"] for c in doc["endpoints"][0]["checks"]]
    assert checks == ["reachable", "identity", "writable"]
    assert doc["catalog"][0]["verdict"] == "ok"
    assert doc["exit"] == 0


def test_a_config_error_is_78(run_cli, workspace: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    text = workspace.config_path.read_text("utf-8").replace('to = "cfs"', 'to = "cfz"', 1)
    workspace.config_path.write_text(text, "utf-8")
    done = run_cli("--check", config=workspace.config_path)
    assert done.returncode == 78
    assert "cfz" in done.stderr

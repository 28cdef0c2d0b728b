"""An unmounted filesystem is unknown, never empty — through the real CLI.

Each test plays the adversary: the CFS filesystem is unmounted (its empty mount point left
behind), swapped for another endpoint's storage, upgraded from a store without markers, or loses
replicas; bl931 must neither copy onto the bare disk, nor drop catalog locations, nor prune a
scan relying on what it cannot prove, and must say so with a non-zero exit.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from engine.identity import MARKER_NAME
from engine.workspace import LocalWorkspace, create_workspace


@pytest.fixture
def ws(tmp_path: Path) -> LocalWorkspace:
    """DTN retention passed at once; CFS keeps its copies (its prune is not what is tested)."""
    return create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=1000)


def scans_at(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".bl931-")
    )


def audit(run_cli, ws: LocalWorkspace) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert done.returncode in (0, 1, 2), done.stderr
    assert done.stdout.strip(), f"exit {done.returncode}, no JSON; stderr:\n{done.stderr}"
    return done.returncode, json.loads(done.stdout)


def settle(run_cli, ws: LocalWorkspace, passes: int = 4, *, approve: bool = True) -> list[int]:  # type: ignore[no-untyped-def]
    """Run passes (approving whatever awaits approval); returns each pass's exit code."""
    codes = []
    for _ in range(passes):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        codes.append(done.returncode)
        if approve:
            run_cli("--approve-all", "--yes", config=ws.config_path)
    return codes


def catalog_locations(ws: LocalWorkspace) -> dict[str, list[str]]:
    doc = json.loads((ws.root / "state" / "catalog.json").read_text())
    out = {}
    for dataset in doc["datasets"].values():
        text = json.dumps(dataset)
        out[dataset.get("datasetName") or text[:40]] = [
            ep for ep in ("dtn", "cfs", "hpss") if f'"{ep}"' in text
        ]
    return out


def test_unmounted_cfs_is_unknown_for_every_action(run_cli, ws: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        ws.write_scan(f"2026/old{i}.h5", os.urandom(256))
    settle(run_cli, ws, 5)
    assert scans_at(ws.dtn) == [] and len(scans_at(ws.cfs)) == 3  # the lifecycle ran
    assert (ws.cfs / MARKER_NAME).is_file(), "a new store writes the endpoint markers"
    before_catalog = (ws.root / "state" / "catalog.json").read_text()

    # Unmount CFS: the mount point stays, empty.
    os.rename(ws.cfs, ws.root / "cfs-offline")
    ws.cfs.mkdir()
    ws.write_scan("2026/new.h5", os.urandom(512))
    codes = settle(run_cli, ws, 4)

    assert codes == [1, 1, 1, 1], "a pass that cannot prove an endpoint must exit non-zero"
    assert scans_at(ws.cfs) == [], "copied onto the bare disk under the mount point"
    assert scans_at(ws.dtn) == ["2026/new.h5"], "pruned relying on an unprovable copy"
    assert (ws.root / "state" / "catalog.json").read_text() == before_catalog, (
        "catalog locations were rewritten from an unprovable listing"
    )
    code, doc = audit(run_cli, ws)
    assert code == 1
    (alert,) = [a for a in doc["alert_details"] if a["endpoint"] == "cfs"]
    assert alert["effect"] == "unknown_endpoint" and alert["cleared_by"] == "condition"
    assert alert["since"] and "marker" in alert["message"]
    assert any(e["endpoint"] == "cfs" and e["class"] == "needs_human" for e in doc["errors"])

    # Remount: everything carries on, the alert clears by itself.
    ws.cfs.rmdir()
    os.rename(ws.root / "cfs-offline", ws.cfs)
    settle(run_cli, ws, 5)
    assert scans_at(ws.dtn) == [] and "2026/new.h5" in scans_at(ws.cfs)
    code, doc = audit(run_cli, ws)
    assert doc["alert_details"] == []


def test_a_foreign_marker_makes_the_endpoint_unknown(run_cli, ws: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    ws.write_scan("2026/a.h5", os.urandom(128))
    settle(run_cli, ws, 2, approve=False)
    # Another endpoint's storage mounted where CFS should be (here: the hpss marker).
    (ws.cfs / MARKER_NAME).write_bytes((ws.hpss / MARKER_NAME).read_bytes())
    code, doc = audit(run_cli, ws)
    assert code == 1
    (alert,) = doc["alert_details"]
    assert alert["endpoint"] == "cfs" and "belongs to 'hpss'" in alert["message"]
    assert not any(a["kind"] == "delete" for a in doc["actions"])


def test_an_upgraded_store_asks_for_init_and_never_writes_a_marker(  # type: ignore[no-untyped-def]
    run_cli, ws: LocalWorkspace
) -> None:
    ws.write_scan("2026/a.h5", os.urandom(128))
    settle(run_cli, ws, 2, approve=False)
    # A deployment from before markers: a store with scans, no identities, no marker files.
    with sqlite3.connect(ws.state_path) as conn:
        conn.execute("DELETE FROM endpoint_identity")
    for root in (ws.dtn, ws.cfs, ws.hpss):
        (root / MARKER_NAME).unlink()

    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 1, done.stderr
    assert "--init-endpoint cfs" in done.stderr
    assert not any((r / MARKER_NAME).exists() for r in (ws.dtn, ws.cfs, ws.hpss))
    code, doc = audit(run_cli, ws)
    assert code == 1 and {a["endpoint"] for a in doc["alert_details"]} == {"dtn", "cfs", "hpss"}

    for name in ("dtn", "cfs", "hpss"):
        done = run_cli("--init-endpoint", name, config=ws.config_path)
        assert done.returncode == 0, done.stderr
        assert f"{name}: identity" in done.stdout
    assert all((r / MARKER_NAME).is_file() for r in (ws.dtn, ws.cfs, ws.hpss))
    code, doc = audit(run_cli, ws)
    assert doc["alert_details"] == [] and doc["errors"] == []
    # Initialising an endpoint onto another's storage is refused.
    (ws.root / "elsewhere").mkdir()
    (ws.root / "elsewhere" / MARKER_NAME).write_bytes((ws.dtn / MARKER_NAME).read_bytes())
    with sqlite3.connect(ws.state_path) as conn:
        conn.execute("DELETE FROM endpoint_identity WHERE endpoint = 'cfs'")
    (ws.cfs / MARKER_NAME).write_bytes((ws.dtn / MARKER_NAME).read_bytes())
    done = run_cli("--init-endpoint", "cfs", config=ws.config_path)
    assert done.returncode == 1 and "marker of endpoint 'dtn'" in done.stderr


def test_an_unknown_endpoint_at_start_up_is_never_a_configuration_error(  # type: ignore[no-untyped-def]
    run_cli, ws: LocalWorkspace
) -> None:
    ws.write_scan("2026/a.h5", os.urandom(128))
    settle(run_cli, ws, 1, approve=False)
    (ws.cfs / MARKER_NAME).unlink()
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 1, "78 would stop systemd from restarting the service"


def test_missing_replicas_freeze_the_endpoint_until_acknowledged(  # type: ignore[no-untyped-def]
    run_cli, ws: LocalWorkspace
) -> None:
    for i in range(10):
        ws.write_scan(f"2026/s{i}.h5", os.urandom(64))
    settle(run_cli, ws, 2, approve=False)  # on cfs and hpss, verified; dtn prunes await approval
    assert len(scans_at(ws.cfs)) == 10
    for i in range(5):  # half of CFS vanishes, the marker stays
        (ws.cfs / f"2026/s{i}.h5").unlink()

    code, doc = audit(run_cli, ws)
    assert code == 1
    (alert,) = doc["alert_details"]
    assert alert["code"] == "missing_fraction" and alert["effect"] == "freeze_deletes"
    assert alert["cleared_by"] == "condition_or_acknowledgement"
    # cfs is unknown for every action: no copy into it, no delete anywhere.
    assert not any(a["kind"] in ("copy", "delete") for a in doc["actions"]), doc["actions"]
    assert any(b["reason_code"] == "endpoint_unknown" for b in doc["blocked"])
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 1
    assert len(scans_at(ws.cfs)) == 5 and len(scans_at(ws.dtn)) == 10

    refused = run_cli("--acknowledge", alert["id"], config=ws.config_path)
    assert refused.returncode == 64 and "--why" in refused.stderr
    done = run_cli(
        "--acknowledge", alert["id"], "--why", "disk failure; restore from hpss",
        config=ws.config_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    code, doc = audit(run_cli, ws)
    assert doc["alert_details"] == []
    copies = sorted(a["scan"] for a in doc["actions"] if a["kind"] == "copy")
    assert copies == [f"2026/s{i}.h5" for i in range(5)], "the accepted loss is restored"
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode == 0
    with sqlite3.connect(ws.state_path) as conn:
        rows = conn.execute(
            "SELECT acknowledged_by, acknowledged_why, cleared_at FROM alerts"
        ).fetchall()
    assert [(why, cleared is not None) for _, why, cleared in rows] == [
        ("disk failure; restore from hpss", True)
    ]


def test_mount_true_refuses_a_root_that_is_not_a_mount_point(run_cli, ws: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    text = ws.config_path.read_text()
    ws.config_path.write_text(text.replace('path = "cfs"', 'path = "cfs"\nmount = true'))
    ws.write_scan("2026/a.h5", os.urandom(128))
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode == 1 and "not a mount point" in done.stderr
    assert scans_at(ws.cfs) == [] and not (ws.cfs / MARKER_NAME).exists()
    code, doc = audit(run_cli, ws)
    assert code == 1 and [a["endpoint"] for a in doc["alert_details"]] == ["cfs"]
    done = run_cli("--init-endpoint", "cfs", config=ws.config_path)
    assert done.returncode == 1 and "not a mount point" in done.stderr


def test_an_audit_of_a_store_from_before_markers_asks_for_init_and_never_crashes(  # type: ignore[no-untyped-def]
    run_cli, ws: LocalWorkspace
) -> None:
    """The audit opens the store read-only, so a store of the previous schema stays as it is."""
    from engine.state import MIGRATIONS

    ws.state_path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(ws.state_path) as conn:
        conn.executescript(MIGRATIONS[0] + ";PRAGMA user_version = 1;")
    ws.write_scan("2026/a.h5", os.urandom(128))
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    doc = json.loads(done.stdout)
    assert {a["endpoint"] for a in doc["alert_details"]} == {"dtn", "cfs", "hpss"}
    assert all("--init-endpoint" in a["message"] for a in doc["alert_details"])
    with sqlite3.connect(ws.state_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


def test_an_alert_seen_only_by_the_audit_can_be_acknowledged(run_cli, ws: LocalWorkspace) -> None:  # type: ignore[no-untyped-def]
    for i in range(4):
        ws.write_scan(f"2026/s{i}.h5", os.urandom(64))
    settle(run_cli, ws, 2, approve=False)
    for i in range(2):
        (ws.cfs / f"2026/s{i}.h5").unlink()
    _, doc = audit(run_cli, ws)  # no pass has recorded the alert yet
    (alert,) = doc["alert_details"]
    done = run_cli(
        "--acknowledge", alert["id"], "--why", "seen in the audit", config=ws.config_path
    )
    assert done.returncode == 0, done.stderr
    assert audit(run_cli, ws)[1]["alert_details"] == []

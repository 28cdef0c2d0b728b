"""Moving a per-file HPSS endpoint (`kind = "local"`/`"globus"` with `tape = true`) to
`kind = "tape"`, through the real CLI (docs/hpss.md, "Migrating").

The adversary changes the kind in the config and runs the service. The per-file objects already
on HPSS must neither look absent (re-archive everything, or "copies gone") nor keep counting as
verified on evidence nobody carried over: without the operator's step the endpoint is refused by
name; with it, each object becomes a legacy member, re-checked (`hsi ls` presence and size) by
the last look before a CFS prune like any per-file tape object.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from engine.workspace import HPSS_LOCAL, HPSS_TAPE, LocalWorkspace, create_workspace

JAN = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SCANS = ["2026/03/ALS-7/scan_001.h5", "2026/03/ALS-7/scan_002.h5"]


def audit(run_cli, ws: LocalWorkspace) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert done.returncode in (0, 1, 2), done.stderr
    return done.returncode, json.loads(done.stdout)


def once(run_cli, ws: LocalWorkspace) -> str:  # type: ignore[no-untyped-def]
    done = run_cli("--reconcile", "--once", config=ws.config_path)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return done.stderr


def tars(ws: LocalWorkspace) -> list[Path]:
    return sorted(ws.hpss.rglob("*.tar"))


def per_file_archive(run_cli, tmp_path: Path) -> tuple[LocalWorkspace, str]:  # type: ignore[no-untyped-def]
    """Two scans archived one file each to a `tape = true` local endpoint, kept on CFS; then
    the config switched to `kind = "tape"` with CFS retention over. Returns the old identity."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=10**4, approval=())
    for n, scan in enumerate(SCANS):
        ws.write_scan(scan, f"legacy {n} ".encode() * 500, mtime=JAN)
    once(run_cli, ws)  # dtn → cfs
    once(run_cli, ws)  # cfs → hpss, per file
    once(run_cli, ws)  # the catalog records the hpss locations
    assert all((ws.hpss / s).is_file() for s in SCANS)
    _, doc = audit(run_cli, ws)
    assert not [a for a in doc["actions"] if a["kind"] in ("copy", "delete")], doc["actions"]
    with sqlite3.connect(ws.state_path) as conn:
        (old,) = conn.execute(
            "SELECT identity FROM endpoint_storage WHERE endpoint = 'hpss'"
        ).fetchone()
    assert old.startswith("local:")
    text = ws.config_path.read_text("utf-8")
    text = text.replace(HPSS_LOCAL, HPSS_TAPE.format(close_after_days=0, bundle_by="cycle"))
    text = text.replace(
        f'keep_days = {10**4}\ndelete_requires = ["hpss"]',
        'keep_days = 0\ndelete_requires = ["hpss"]',
    )
    assert 'kind = "tape"' in text and "keep_days = 0" in text
    ws.config_path.write_text(text, "utf-8")
    return ws, old


def test_a_changed_kind_without_the_step_is_refused_by_name(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws, old = per_file_archive(run_cli, tmp_path)
    code, doc = audit(run_cli, ws)
    assert code == 1, "a changed kind needs a person"
    errors = [e for e in doc["errors"] if e["endpoint"] == "hpss"]
    assert errors, doc["errors"]
    message = errors[0]["message"]
    assert "--adopt-endpoint hpss" in message and old in message, message
    assert not [a for a in doc["actions"] if a["kind"] == "copy" and a["target"] == "hpss"], (
        "the per-file objects were taken for an empty tape: re-archived"
    )
    assert not [a for a in doc["actions"] if a["kind"] == "delete"], doc["actions"]
    for _ in range(2):
        once(run_cli, ws)
    assert tars(ws) == [], "bundled again although every scan is on tape"
    assert all((ws.cfs / s).is_file() for s in SCANS), "CFS pruned on unverified evidence"
    assert all((ws.hpss / s).is_file() for s in SCANS)
    with sqlite3.connect(ws.state_path) as conn:
        ids = {r[0] for r in conn.execute("SELECT identity FROM evidence WHERE endpoint='hpss'")}
        (recorded,) = conn.execute(
            "SELECT identity FROM endpoint_storage WHERE endpoint = 'hpss'"
        ).fetchone()
        legacy = conn.execute("SELECT count(*) FROM tape_members").fetchone()[0]
    assert ids == {old} and recorded == old, "evidence re-keyed silently"
    assert legacy == 0


def test_with_the_step_legacy_members_count_and_cfs_is_pruned(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws, old = per_file_archive(run_cli, tmp_path)
    done = run_cli("--adopt-endpoint", "hpss", "--from-identity", old, config=ws.config_path)
    assert done.returncode == 0, done.stderr
    assert "2 legacy members" in done.stdout, done.stdout
    _, doc = audit(run_cli, ws)
    assert not [e for e in doc["errors"] if e["endpoint"] == "hpss"], doc["errors"]
    assert not [a for a in doc["actions"] if a["kind"] == "copy"], doc["actions"]
    deletes = [a for a in doc["actions"] if a["kind"] == "delete"]
    assert sorted(a["scan"] for a in deletes) == SCANS and {a["target"] for a in deletes} == {"cfs"}
    once(run_cli, ws)
    assert not any((ws.cfs / s).exists() for s in SCANS), "the prunes did not follow"
    assert all((ws.hpss / s).is_file() for s in SCANS)
    assert tars(ws) == [], "re-archived although asked not to"
    with sqlite3.connect(ws.state_path) as conn:
        (recorded,) = conn.execute(
            "SELECT identity FROM endpoint_storage WHERE endpoint = 'hpss'"
        ).fetchone()
        kinds = [r[0] for r in conn.execute("SELECT kind FROM events WHERE kind LIKE 'endpoint.%'")]
    assert recorded.startswith("tape:") and "endpoint.adopted" in kinds


def test_a_legacy_object_missing_at_the_last_look_stops_its_prune(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws, old = per_file_archive(run_cli, tmp_path)
    assert (
        run_cli(
            "--adopt-endpoint", "hpss", "--from-identity", old, config=ws.config_path
        ).returncode
        == 0
    )
    # An hsi that loses scan_001 between the pass's listing (`ls -l -R`) and the last look
    # (`ls -l PATH`): the object is gone when the look asks for it.
    shims = Path(__file__).parents[2] / "engine" / "storage" / "hpss_shims"
    tools = ws.root / "tools"
    tools.mkdir()
    (tools / "htar").symlink_to(shims / "htar")
    victim = ws.hpss / SCANS[0]
    (tools / "hsi").write_text(
        "#!/bin/bash\n"
        f'case "$*" in *"ls -l /{SCANS[0]}"*) rm -f "{victim}";; esac\n'
        f'exec "{shims / "hsi"}" "$@"\n'
    )
    (tools / "hsi").chmod(0o755)
    text = ws.config_path.read_text().replace('kind = "tape"', f'kind = "tape"\ntools = "{tools}"')
    ws.config_path.write_text(text)
    once(run_cli, ws)
    assert not victim.exists(), "the last look never asked hsi about the legacy object"
    assert (ws.cfs / SCANS[0]).is_file(), "CFS pruned relying on a legacy object that is gone"
    assert not (ws.cfs / SCANS[1]).exists(), "the intact legacy member's prune did not run"


def test_rearchive_bundles_everything_afresh_only_when_asked(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws, old = per_file_archive(run_cli, tmp_path)
    assert run_cli("--rearchive", config=ws.config_path).returncode == 64
    done = run_cli(
        "--adopt-endpoint", "hpss", "--from-identity", old, "--rearchive", config=ws.config_path
    )
    assert done.returncode == 0, done.stderr
    assert "bundled afresh" in done.stdout
    for _ in range(3):
        once(run_cli, ws)
    assert [p.name for p in tars(ws)] == ["bl9.3.1-2026-1-p001.tar"]
    assert all((ws.hpss / s).is_file() for s in SCANS), "a per-file object was removed from tape"
    assert not any((ws.cfs / s).exists() for s in SCANS), "the prunes did not follow the bundle"

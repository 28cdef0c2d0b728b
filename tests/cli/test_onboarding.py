"""Onboarding existing data: a copy already on CFS licenses no delete until its bytes are verified.

A beamline that adopts bl931 has scans on the DTN and copies a person made on CFS. A copy bl931
finds listed with the right sizes has never been verified: it may be a truncated rsync padded
back, an older version, another file of the same size. Before: with `verify = "size"` (allowed
for a retention rule), such a copy licensed the DTN prune as it was found — even after a re-hash
had shown that its bytes differ. Now a copy bl931 did not verify counts as `present` until its
bytes are re-hashed (a local or mounted endpoint) or copied again with checksum verification,
whatever the rule's `verify`.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from engine.workspace import LocalWorkspace, create_workspace

SCAN = "2026/01/ALS-1234/scan_0001.h5"
DATA = b"sulfur K edge, ALS-1234 " * 400
ACQUIRED = datetime(2026, 1, 5, tzinfo=UTC)


def beamline(tmp_path: Path) -> LocalWorkspace:
    """DTN retention passed, `verify = "size"` for the DTN prune; HPSS left out of the way."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=100_000)
    text = ws.config_path.read_text("utf-8")
    text = text.replace(
        'delete_requires = ["cfs"]\nverify = "checksum"',
        'delete_requires = ["cfs"]\nverify = "size"',
    )
    assert 'verify = "size"' in text
    ws.config_path.write_text(text, "utf-8")
    ws.write_scan(SCAN, DATA, mtime=ACQUIRED)
    return ws


def place_on_cfs(ws: LocalWorkspace, data: bytes) -> Path:
    """A copy made by a person before bl931 was installed (`cp -p`: same mtime)."""
    target = ws.root / "cfs" / SCAN
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    stamp = ACQUIRED.timestamp()
    os.utime(target, (stamp, stamp))
    return target


def audit(run_cli, ws: LocalWorkspace) -> dict:  # type: ignore[no-untyped-def,type-arg]
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert done.returncode in (0, 1, 2), done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def dtn_prunes(doc: dict) -> list[dict]:  # type: ignore[type-arg]
    return [a for a in doc["actions"] if a["kind"] == "delete" and a["target"] == "dtn"]


def test_a_found_copy_with_other_bytes_of_the_same_size_licenses_no_prune(  # type: ignore[no-untyped-def]
    run_cli, tmp_path: Path
) -> None:
    ws = beamline(tmp_path)
    wrong = bytearray(DATA)
    wrong[100] ^= 0xFF
    cfs_copy = place_on_cfs(ws, bytes(wrong))
    for _ in range(3):
        assert run_cli("--reconcile", "--once", config=ws.config_path).returncode in (0, 1)
        doc = audit(run_cli, ws)
        assert dtn_prunes(doc) == [], doc["actions"]
    # the copy over the other bytes is a replace (gated like a delete), never a silent overwrite
    (replace,) = [a for a in doc["actions"] if a["kind"] == "copy" and a["target"] == "cfs"]
    assert "other bytes" in replace["reason"] and replace["requires_approval"]
    assert (ws.root / "dtn" / SCAN).read_bytes() == DATA
    assert cfs_copy.read_bytes() == bytes(wrong)


def test_a_found_copy_with_the_right_bytes_is_adopted_by_its_checksum(  # type: ignore[no-untyped-def]
    run_cli, tmp_path: Path
) -> None:
    ws = beamline(tmp_path)
    place_on_cfs(ws, DATA)
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode in (0, 1)
    assert run_cli("--reconcile", "--once", config=ws.config_path).returncode in (0, 1)
    doc = audit(run_cli, ws)
    (prune,) = dtn_prunes(doc)
    assert (
        "cfs verified by size" in prune["reason"] or "cfs verified by checksum" in prune["reason"]
    )
    from engine.state import StateStore

    store = StateStore(ws.state_path, readonly=True)
    try:
        rows = (
            store.connection()
            .execute("SELECT level, how FROM evidence WHERE endpoint = 'cfs' AND scan = ?", (SCAN,))
            .fetchall()
        )
    finally:
        store.close()
    assert [(r["level"], r["how"]) for r in rows] == [(3, "rehash")]  # Level.CHECKSUM


def test_a_found_copy_on_an_unmounted_globus_cfs_is_copied_again_before_any_prune(  # type: ignore[no-untyped-def]
    run_cli, tmp_path: Path, monkeypatch
) -> None:
    """CFS only through Globus (not mounted here): nothing can re-hash the copy, so only a
    transfer with checksum verification can vouch for it."""
    from tests.cli.globus_site import MANIFEST, make_site, reconcile
    from tests.cli.globus_site import audit as site_audit
    from tests.cli.globus_site import dtn_prunes as site_prunes
    from tests.fakes.transfer_api import FakeTransferAPI

    with FakeTransferAPI() as fake:
        site = make_site(tmp_path, fake)
        text = site.config_path.read_text("utf-8")
        site.config_path.write_text(
            text.replace('delete_requires = ["cfs"]', 'delete_requires = ["cfs"]\nverify = "size"'),
            "utf-8",
        )
        for name, value in fake.environ.items():
            monkeypatch.setenv(name, value)
        for rel, data in MANIFEST.items():  # a person's copy: right sizes, one byte off
            wrong = bytearray(data)
            wrong[0] ^= 0xFF
            target = site.cfs / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(bytes(wrong))
        _, first = site_audit(run_cli, site)
        assert site_prunes(first) == [], first["actions"]
        (copy,) = [a for a in first["actions"] if a["kind"] == "copy" and a["target"] == "cfs"]
        assert "cfs copy is verified by present only" in copy["reason"]
        (blocked,) = [
            b for b in first["blocked"] if b["kind"] == "delete" and b["endpoint"] == "dtn"
        ]
        assert blocked["reason_code"] == "copy_unverified"
        for _ in range(4):
            reconcile(run_cli, site)
            _, doc = site_audit(run_cli, site)
            if site_prunes(doc):
                break
        (prune,) = site_prunes(doc)
        assert "cfs verified by size" in prune["reason"]
        # by then the transfer (checksum sync) put the scan's own bytes on CFS
        for rel, data in MANIFEST.items():
            assert (site.cfs / rel).read_bytes() == data

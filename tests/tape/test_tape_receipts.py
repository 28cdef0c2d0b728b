"""`--receipt` for a CFS prune that relied on a tape copy in a bundle names the bundle, the
scan's members in it, the job that wrote and verified it, and its CRC verification."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from engine.workspace import create_workspace

JAN = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SCAN = "2026/03/ALS-7/scan_001.h5"
BUNDLE = "/2026-1/bl9.3.1-2026-1-p001.tar"


def test_the_receipt_of_a_cfs_prune_names_the_bundle(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = create_workspace(
        tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0, hpss_kind="tape", approval=()
    )
    ws.write_scan(SCAN, b"bundled " * 700, mtime=JAN)
    for _ in range(4):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert done.returncode == 0, done.stderr[-3000:]
    assert not (ws.cfs / SCAN).exists() and not (ws.dtn / SCAN).exists()

    done = run_cli("--receipt", SCAN, "--json", config=ws.config_path)
    assert done.returncode == 0, done.stderr
    (cfs_receipt,) = [r for r in json.loads(done.stdout) if r["endpoint"] == "cfs"]
    (copy,) = cfs_receipt["verified_copies"]
    assert copy["endpoint"] == "hpss" and copy["level"] == "checksum"
    tape = copy["tape"]
    assert tape["bundle"] == BUNDLE and tape["members"] == [SCAN], tape
    assert tape["job_id"] == "local-1" and tape["crc"] == "htar -Hcrc -Hverify=all", tape
    assert tape["verified_at"]

    text = run_cli("--receipt", SCAN, config=ws.config_path)
    assert text.returncode == 0, text.stderr
    assert f"in bundle {BUNDLE}" in text.stdout, text.stdout
    assert f"member {SCAN}" in text.stdout and "job local-1" in text.stdout
    assert "CRC verified (htar -Hcrc -Hverify=all)" in text.stdout, text.stdout

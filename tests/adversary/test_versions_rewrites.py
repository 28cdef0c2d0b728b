"""Adversary: a scan rewritten several times on the DTN, with an operator who approves whatever
is asked. Promise (docs/safety.md, "A changed scan is a new version"): a verified copy is never
overwritten unasked, write-once tape is never written over, and the last verified copy of any
version is never lost — through the real CLI.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.workspace import create_workspace
from tests.adversary.versions_cli import (
    SCAN,
    approve_everything,
    audit,
    file_contents,
    holders,
    passes,
    scan_record,
)
from tests.conftest import RunCli


def test_three_versions_each_reach_tape_and_tape_is_never_written_over(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """v1 on cfs+tape; v2 replaces it at cfs (approved) and goes to tape beside it; v3 arrives.
    Every version keeps an intact copy; no object once on tape ever changes its bytes."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000, cfs_keep_days=1000)
    versions = [os.urandom(3000), b"second measurement" * 50, b"third measurement" * 70]
    tape_seen: dict[str, bytes] = {}

    def tape_is_write_once() -> None:
        now = file_contents(ws.hpss)
        for rel, data in tape_seen.items():
            assert now.get(rel) == data, f"tape object {rel} was changed or removed"
        tape_seen.update(now)

    ws.write_scan(SCAN, versions[0])
    passes(run_cli, ws, 3)
    tape_is_write_once()
    for n, data in enumerate(versions[1:], start=2):
        ws.write_scan(SCAN, data)
        for _ in range(5):
            approve_everything(run_cli, ws, 1)
            tape_is_write_once()
            for seen in versions[:n]:
                assert holders(ws, seen), f"a version was lost after v{n} arrived"
        assert scan_record(ws, SCAN).version == n

    for n, data in enumerate(versions[:2], start=1):
        where = holders(ws, data)
        assert any(w.startswith("hpss:") for w in where), f"v{n} never reached tape: {where}"
    assert file_contents(ws.hpss)[SCAN] == versions[0]
    # Documented gap (docs/safety.md, known gaps): the middle version's tape object is no longer
    # counted as verified, so replacing v2 at cfs waits for a person, and tape (fed from cfs)
    # never gets v3 meanwhile: v3 sits on the DTN only, v2 stays intact at cfs and on tape.
    assert file_contents(ws.cfs)[SCAN] == versions[1]
    assert holders(ws, versions[2]) == [f"dtn:{SCAN}"]
    code, doc = audit(run_cli, ws)
    held = sorted((b["endpoint"], b["reason_code"]) for b in doc["blocked"] if b["kind"] == "copy")
    assert ("cfs", "version_conflict") in held, held
    assert code == 1


def test_v3_arriving_before_v2_reached_tape_never_loses_v2(run_cli: RunCli, tmp_path: Path) -> None:
    """v1 on cfs+tape; v2 replaces v1 at cfs (approved, v1 stays on tape); before v2's tape copy
    runs, the DTN is rewritten again (v3). v2 now exists only at cfs: replacing it by v3 must wait
    for a person (`version_conflict`), even with an operator approving everything."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000, cfs_keep_days=1000)
    v1, v2, v3 = os.urandom(2000), b"v2 " * 400, b"v3 " * 500
    ws.write_scan(SCAN, v1)
    passes(run_cli, ws, 3)
    ws.write_scan(SCAN, v2)
    passes(run_cli, ws, 1)
    _, doc = audit(run_cli, ws)
    (replace,) = [a for a in doc["actions"] if a["kind"] == "copy" and a["target"] == "cfs"]
    assert run_cli("--approve", replace["id"], config=ws.config_path).returncode == 0
    passes(run_cli, ws, 1)  # the replace at cfs runs; tape's copy waited for cfs as its source
    assert file_contents(ws.cfs)[SCAN] == v2
    assert holders(ws, v2) == ["dtn:" + SCAN, "cfs:" + SCAN] or holders(ws, v2)

    ws.write_scan(SCAN, v3)  # v3 overtakes v2 before v2 reached tape
    approve_everything(run_cli, ws, 6)
    assert holders(ws, v1), "v1 lost"
    assert holders(ws, v2), "v2's last copy (cfs) was overwritten by v3"
    assert file_contents(ws.hpss)[SCAN] == v1


def test_a_scan_shrunk_to_zero_with_everything_approved_keeps_v1_on_tape(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """Prunes due everywhere but tape; the DTN file is truncated to 0 bytes after v1 was
    archived. The alert (`version_suspect`, notify) is raised; even an operator approving
    everything never loses v1, and tape is never written over."""
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0)
    v1 = os.urandom(2222)
    ws.write_scan(SCAN, v1)
    passes(run_cli, ws, 3)
    (ws.dtn / SCAN).write_bytes(b"")
    passes(run_cli, ws, 1)
    code, doc = audit(run_cli, ws)
    assert any(a["code"] == "version_suspect" for a in doc["alert_details"]) and code == 1
    approve_everything(run_cli, ws, 6)
    assert file_contents(ws.hpss)[SCAN] == v1, "tape's v1 was written over"
    assert holders(ws, v1)

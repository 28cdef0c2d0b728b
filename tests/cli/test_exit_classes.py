"""Nothing that failed is reported as "in sync": the audit's three classes, through the real CLI.

settled 0 · work pending 2 · needs a person 1 — the exit code is the most serious class present,
and the human output never says "No changes" while anything but dates or operators' standing
decisions holds a scan back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.workspace import LocalWorkspace, create_workspace


def audit(run_cli, ws: LocalWorkspace) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    done = run_cli("--dry-run", "--json", config=ws.config_path)
    assert done.returncode in (0, 1, 2), done.stderr
    return done.returncode, json.loads(done.stdout)


def human(run_cli, ws: LocalWorkspace) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    done = run_cli("--dry-run", config=ws.config_path)
    return done.returncode, done.stdout


def once(run_cli, ws: LocalWorkspace) -> int:  # type: ignore[no-untyped-def]
    return int(run_cli("--reconcile", "--once", config=ws.config_path).returncode)


def test_a_file_with_a_non_utf8_name_in_a_directory_scan_is_a_problem_not_a_crash(  # type: ignore[no-untyped-def]
    run_cli, tmp_path: Path
) -> None:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000, scan_unit="directory")
    good = ws.dtn / "scan_good"
    good.mkdir()
    (good / "data.h5").write_bytes(os.urandom(100))
    bad = ws.dtn / "scan_bad"
    bad.mkdir()
    with open(os.path.join(os.fsencode(bad), b"caf\xe9.h5"), "wb") as fh:
        fh.write(b"latin-1 named file")

    assert once(run_cli, ws) == 0, "the pass itself must not crash"
    assert (ws.cfs / "scan_good" / "data.h5").is_file(), "the other scans must proceed"
    code, doc = audit(run_cli, ws)
    assert code == 1
    (problem,) = doc["problems"]
    assert problem["scan"] == "scan_bad" and "not valid UTF-8" in problem["message"]
    code, text = human(run_cli, ws)
    assert code == 1 and "No changes" not in text and "scan_bad" in text


def test_a_scan_that_cannot_be_inventoried_is_never_no_changes(  # type: ignore[no-untyped-def]
    run_cli, tmp_path: Path
) -> None:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000)
    (ws.dtn / "2026").mkdir()
    with open(os.path.join(os.fsencode(ws.dtn), b"2026/\xff\xfe.h5"), "wb") as fh:
        fh.write(b"x")
    code, text = human(run_cli, ws)
    assert code == 1, text
    assert "No changes" not in text
    code, doc = audit(run_cli, ws)
    assert [p["scan"] for p in doc["problems"]] == ["2026/\udcff\udcfe.h5"]
    assert doc["outcome"] == "needs_person"


def test_a_copy_that_failed_for_good_makes_the_audit_need_a_person(  # type: ignore[no-untyped-def]
    run_cli, tmp_path: Path
) -> None:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000)
    ws.write_scan("2026/a.h5", os.urandom(64))
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws.cfs / "2026").symlink_to(outside)  # the copy would escape the endpoint: refused for good
    assert once(run_cli, ws) == 0  # the pass itself ran; the copy failed and waits
    code, doc = audit(run_cli, ws)
    assert code == 1, doc
    assert doc["summary"]["copy"] == 0
    assert {b["reason_code"] for b in doc["blocked"] if b["kind"] == "copy"} & {
        "failed",
        "needs_attention",
    }
    code, text = human(run_cli, ws)
    assert code == 1 and "No changes" not in text and "Needs a person" in text
    assert not any(outside.iterdir())


def test_missing_relative_roots_are_a_failure_and_never_no_changes(  # type: ignore[no-untyped-def]
    run_cli, tmp_path: Path
) -> None:
    ws = create_workspace(tmp_path / "ws")
    text = ws.config_path.read_text()
    for name in ("dtn", "cfs", "hpss"):
        text = text.replace(f'path = "{name}"', f'path = "not-mounted/{name}"')
    ws.config_path.write_text(text)
    code, out = human(run_cli, ws)
    assert code == 1
    assert "No changes" not in out and "not-mounted" in out
    assert once(run_cli, ws) == 1


def test_settled_and_pending_keep_their_codes(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=1000, cfs_keep_days=1000)
    ws.write_scan("2026/a.h5", os.urandom(64))
    assert audit(run_cli, ws)[0] == 2  # a copy to make
    for _ in range(3):
        assert once(run_cli, ws) == 0
    code, doc = audit(run_cli, ws)
    assert code == 0, doc  # everything waits for its date: settled
    assert {b["reason_code"] for b in doc["blocked"]} == {"retention_not_reached"}
    code, text = human(run_cli, ws)
    assert code == 0 and "No changes" in text

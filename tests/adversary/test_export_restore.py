"""Adversary: a recall from on-site tape into an off-site endpoint, for an export-controlled scan.

Promise (docs/safety.md): for an export-controlled scan "no copy into an off-site endpoint is
ever planned". A restore (`bl931tui --restore SCAN --to ENDPOINT`) is planned as a copy from the
tape endpoint (engine/storage/tape_plan.py `_restores`), next to the planner's copy rules; an
operator approving it (the worst case: `--approve-all --yes`) must still not put the scan's
bytes off site.
"""

from __future__ import annotations

from pathlib import Path

from tests.adversary.export_world import (
    approve_all,
    audit,
    blocked,
    holds_bytes,
    make_world,
    notify,
    passes,
    planned,
)
from tests.conftest import RunCli

SCAN = "2026/s0.h5"
DATA = b"controlled, archived on site \x00\x07"


def test_restore_of_a_controlled_scan_into_an_offsite_endpoint_is_refused(
    tmp_path: Path, run_cli: RunCli
) -> None:
    w = make_world(tmp_path, copies=(("dtn", "tape"),), tape=True)
    w.write("2026/boot.h5", b"boot")
    passes(run_cli, w)
    w.write(SCAN, DATA)
    assert notify(run_cli, w, SCAN, "--export-control").returncode == 0
    passes(run_cli, w, 2)
    _, doc = audit(run_cli, w)
    assert {"scan": SCAN, "source": "notify"} in doc["export_controlled"]
    done = run_cli("--restore", SCAN, "--to", "off", config=w.config_path)
    assert "Traceback" not in done.stderr, done.stderr
    # Refused up front (exit 64, docs/hpss.md), naming the scan and the endpoint.
    assert done.returncode == 64, (done.returncode, done.stderr)
    assert "refused" in done.stderr and SCAN in done.stderr and "off" in done.stderr
    for _ in range(2):
        passes(run_cli, w)
        approve_all(run_cli, w)
    passes(run_cli, w)
    assert holds_bytes(w, "off", DATA) == []


def test_restore_requested_before_the_flag_arrived_is_blocked_by_the_planner(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """Defence in depth: the request was accepted while the scan was not flagged; the notify
    flagging it comes afterwards. Every pass re-checks the restore: blocked `export_controlled`
    (settled), never planned, so `--approve-all --yes` has nothing to approve for it."""
    w = make_world(tmp_path, copies=(("dtn", "tape"),), tape=True)
    w.write("2026/boot.h5", b"boot")
    passes(run_cli, w)
    w.write(SCAN, DATA)
    passes(run_cli, w, 2)
    done = run_cli("--restore", SCAN, "--to", "off", config=w.config_path)
    assert done.returncode == 0, done.stderr  # not flagged (yet): the request is recorded
    assert notify(run_cli, w, SCAN, "--export-control").returncode == 0
    for _ in range(2):
        passes(run_cli, w)
        approve_all(run_cli, w)
    passes(run_cli, w)
    assert holds_bytes(w, "off", DATA) == []
    code, doc = audit(run_cli, w)
    assert "export_controlled" in blocked(doc, SCAN, "off"), doc.get("blocked")
    assert [a for a in planned(doc, SCAN) if a.get("target") == "off"] == []
    assert code == 0, doc  # a settled state (docs/audit.md)

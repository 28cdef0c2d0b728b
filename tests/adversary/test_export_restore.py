"""Adversary: a recall from on-site tape into an off-site endpoint, for an export-controlled scan.

Promise (docs/safety.md): for an export-controlled scan "no copy into an off-site endpoint is
ever planned". A restore (`bl931tui --restore SCAN --to ENDPOINT`) is planned as a copy from the
tape endpoint (engine/storage/tape_plan.py `_restores`), next to the planner's copy rules; an
operator approving it (the worst case: `--approve-all --yes`) must still not put the scan's
bytes off site.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adversary.export_world import (
    approve_all,
    audit,
    holds_bytes,
    make_world,
    notify,
    passes,
)
from tests.conftest import RunCli

SCAN = "2026/s0.h5"
DATA = b"controlled, archived on site \x00\x07"


@pytest.mark.xfail(
    strict=True,
    reason="tape_plan._restores plans the recall into the off-site endpoint without the export "
    "check: after --restore SCAN --to off and --approve-all, the controlled scan's bytes are at "
    "off/2026/s0.h5",
)
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
    if done.returncode != 0:
        return  # refused up front: the promise holds
    for _ in range(2):
        passes(run_cli, w)
        approve_all(run_cli, w)
    passes(run_cli, w)
    assert holds_bytes(w, "off", DATA) == []

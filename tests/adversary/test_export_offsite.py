"""Adversary: export-controlled scans and `offsite = true` endpoints, through the real CLI.

Promises (docs/safety.md "Export-controlled scans stay on site", docs/audit.md): a flagged scan is
never copied off site (blocked `export_controlled`, the audit exits 0 for it), the flag is sticky
and listed in the audit JSON, no delete of it relies on an off-site copy (even one made before
the flag), and with `[export_control]` configured nothing goes off site until the flag is known.
Every check looks at the off-site folder's bytes, not only at the engine's words.
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
DATA = b"controlled bytes \x00\x01 s0"

DTN_RELIES_ON_OFF = """[retention.dtn]
keep_days = 0
delete_requires = ["off"]
verify = "checksum"
"""


def test_flagged_scan_never_reaches_offsite_via_the_second_leg(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """dtn → cfs (on site) → off: the flag set before any copy keeps the scan at cfs."""
    w = make_world(tmp_path)
    w.write(SCAN, DATA)
    passes(run_cli, w)  # creates the store; dtn → cfs runs; cfs → off waits for cfs? or runs
    # The first pass may already have copied it off site (nobody flagged it yet, no
    # [export_control] section): start again with a scan flagged before any pass.
    other = "2026/s1.h5"
    data1 = b"second scan, flagged before its first pass"
    w.write(other, data1)
    done = notify(run_cli, w, other, "--export-control")
    assert done.returncode == 0, done.stderr
    assert "export-controlled" in done.stderr
    passes(run_cli, w, 3)
    assert holds_bytes(w, "cfs", data1) == [other]
    assert holds_bytes(w, "off", data1) == []
    code, doc = audit(run_cli, w)
    assert blocked(doc, other, "off") == ["export_controlled"]
    assert {"scan": other, "source": "notify"} in doc["export_controlled"]
    assert code == 0, doc


def test_flag_is_sticky_against_a_later_plain_notify(tmp_path: Path, run_cli: RunCli) -> None:
    w = make_world(tmp_path)
    w.write("2026/boot.h5", b"boot")
    passes(run_cli, w)
    w.write(SCAN, DATA)
    assert notify(run_cli, w, SCAN, "--export-control").returncode == 0
    again = notify(run_cli, w, str(w.folder("dtn") / SCAN))  # no flag, absolute path
    assert again.returncode == 0, again.stderr
    assert "(export-controlled)" in again.stderr, again.stderr
    passes(run_cli, w, 3)
    assert holds_bytes(w, "off", DATA) == []
    _, doc = audit(run_cli, w)
    assert blocked(doc, SCAN, "off") == ["export_controlled"]


def test_flag_after_offsite_copy_blocks_the_dtn_delete_even_with_approve_all(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """The off-site copy exists before the flag; dtn's delete relies on it: never executed."""
    w = make_world(tmp_path, copies=(("dtn", "off"),), retention=DTN_RELIES_ON_OFF)
    w.write(SCAN, DATA)
    passes(run_cli, w, 2)
    assert holds_bytes(w, "off", DATA) == [SCAN]
    _, before = audit(run_cli, w)
    assert any(a["kind"] == "delete" for a in planned(before, SCAN)), before
    assert notify(run_cli, w, SCAN, "--export-control").returncode == 0
    for _ in range(3):
        approve_all(run_cli, w)
        passes(run_cli, w)
    assert holds_bytes(w, "dtn", DATA) == [SCAN]
    code, doc = audit(run_cli, w)
    assert blocked(doc, SCAN, "dtn") == ["export_controlled"]
    assert code == 0, doc


def test_delete_approved_before_the_flag_is_not_executed_after_it(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """An operator approves the dtn delete (relying on off) before the flag arrives; the flag
    then comes before the next pass: the approval must not carry the delete through."""
    w = make_world(tmp_path, copies=(("dtn", "off"),), retention=DTN_RELIES_ON_OFF)
    w.write(SCAN, DATA)
    passes(run_cli, w, 2)
    _, doc = audit(run_cli, w)
    ids = [a["id"] for a in planned(doc, SCAN) if a["kind"] == "delete"]
    assert ids, doc
    done = run_cli("--approve", *ids, config=w.config_path)
    assert done.returncode == 0, done.stderr
    assert notify(run_cli, w, SCAN, "--export-control").returncode == 0
    passes(run_cli, w, 2)
    assert holds_bytes(w, "dtn", DATA) == [SCAN]


def test_copy_approved_before_the_flag_is_not_executed_after_it(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """Copies need approval; the operator approves the off-site copy, then the flag arrives."""
    w = make_world(tmp_path, copies=(("dtn", "off"),), approval=("copy", "delete"))
    w.write(SCAN, DATA)
    passes(run_cli, w)
    _, doc = audit(run_cli, w)
    ids = [a["id"] for a in planned(doc, SCAN) if a["kind"] == "copy" and a["target"] == "off"]
    assert ids, doc
    assert run_cli("--approve", *ids, config=w.config_path).returncode == 0
    assert notify(run_cli, w, SCAN, "--export-control").returncode == 0
    passes(run_cli, w, 2)
    approve_all(run_cli, w)
    passes(run_cli, w)
    assert holds_bytes(w, "off", DATA) == []


def test_rewrite_of_a_flagged_scan_is_not_replaced_offsite(tmp_path: Path, run_cli: RunCli) -> None:
    """Copied off site while unflagged, then flagged, then rewritten: the new version (a
    replace at off) must not go there, even with an operator approving everything."""
    w = make_world(tmp_path, copies=(("dtn", "off"),))
    w.write(SCAN, DATA)
    passes(run_cli, w, 2)
    assert holds_bytes(w, "off", DATA) == [SCAN]
    assert notify(run_cli, w, SCAN, "--export-control").returncode == 0
    new = b"rewritten controlled bytes v2"
    w.write(SCAN, new)
    for _ in range(3):
        approve_all(run_cli, w)
        passes(run_cli, w)
    assert holds_bytes(w, "off", new) == []


def test_unknown_waits_until_a_plain_notify_then_goes(tmp_path: Path, run_cli: RunCli) -> None:
    w = make_world(tmp_path, copies=(("dtn", "off"),), export_control='controlled = ["secret/**"]')
    w.write(SCAN, DATA)
    passes(run_cli, w, 2)
    assert holds_bytes(w, "off", DATA) == []
    code, doc = audit(run_cli, w)
    assert blocked(doc, SCAN, "off") == ["export_control_unknown"]
    assert code == 2, doc
    assert notify(run_cli, w, SCAN).returncode == 0
    passes(run_cli, w, 2)
    assert holds_bytes(w, "off", DATA) == [SCAN]


def test_overlapping_rules_controlled_wins(tmp_path: Path, run_cli: RunCli) -> None:
    """controlled = secret/** and cleared = ** overlap; a notify without the flag on a
    controlled scan does not clear it; a notify with the flag beats `cleared`."""
    w = make_world(
        tmp_path,
        copies=(("dtn", "off"),),
        export_control='controlled = ["secret/**"]\ncleared = ["**"]',
    )
    secret, flagged, free = "secret/a.h5", "open/b.h5", "open/c.h5"
    w.write(secret, b"secret a")
    w.write(flagged, b"flagged b")
    w.write(free, b"free c")
    passes(run_cli, w)
    assert notify(run_cli, w, secret).returncode == 0  # plain notify on a controlled path
    assert notify(run_cli, w, flagged, "--export-control").returncode == 0
    passes(run_cli, w, 2)
    assert holds_bytes(w, "off", b"secret a") == []
    assert holds_bytes(w, "off", b"free c") == [free]
    _, doc = audit(run_cli, w)
    got = {e["scan"]: e["source"] for e in doc["export_controlled"]}
    assert got.get(secret) == "rule secret/**"
    # The flagged scan was possibly copied in the first pass (cleared by `**` before its
    # notify); what matters is that it is now listed as controlled.
    assert got.get(flagged) == "notify"


def test_directory_scan_flagged_through_one_of_its_files(tmp_path: Path, run_cli: RunCli) -> None:
    w = make_world(tmp_path, copies=(("dtn", "off"),), scan_unit="directory", depth=2)
    w.write("2026/boot/x.h5", b"boot")
    passes(run_cli, w)
    w.write("2026/scanA/frame_0001.h5", b"frame one A")
    w.write("2026/scanA/frame_0002.h5", b"frame two A")
    done = notify(run_cli, w, str(w.folder("dtn") / "2026/scanA/frame_0002.h5"), "--export-control")
    assert done.returncode == 0, done.stderr
    passes(run_cli, w, 2)
    assert holds_bytes(w, "off", b"frame one A") == []
    assert holds_bytes(w, "off", b"frame two A") == []
    _, doc = audit(run_cli, w)
    assert {"scan": "2026/scanA", "source": "notify"} in doc["export_controlled"]


def test_catalog_registers_controlled_scan_and_docs_say_so(tmp_path: Path, run_cli: RunCli) -> None:
    """Known gap, stated in docs/safety.md: the catalog still registers a controlled scan."""
    w = make_world(tmp_path)
    w.write("2026/boot.h5", b"boot")
    passes(run_cli, w)
    w.write(SCAN, DATA)
    assert notify(run_cli, w, SCAN, "--export-control").returncode == 0
    passes(run_cli, w, 3)
    catalog = (w.root / "state" / "catalog.json").read_text("utf-8")
    assert SCAN in catalog
    safety = (Path(__file__).resolve().parents[2] / "docs" / "safety.md").read_text("utf-8")
    assert "the catalog (SciCat) still registers the scan's" in " ".join(safety.split())

"""Adversary: HPSS unreachable or unmounted, a crash after a bundle job was submitted, a scan
rewritten after it was bundled, restores that should be refused or must not overwrite, a bundle
limit smaller than one scan, and a clock that goes backwards around `close_after_days`.
"""

from __future__ import annotations

from pathlib import Path

from tests.adversary.tape_world import (
    approve_all,
    audit,
    blocked,
    bundled_bytes,
    churn,
    make_tape_world,
    on_disk,
    passes,
    restore,
    run_ok,
    sql,
)
from tests.conftest import RunCli

S0, S1 = "2026/s0.h5", "2026/s1.h5"
D0, D1 = b"scan zero: the acquisition's bytes", b"scan one: other acquisition bytes"


def test_hpss_root_missing_is_unknown_not_missing(tmp_path: Path, run_cli: RunCli) -> None:
    w = make_tape_world(tmp_path)
    w.write(S0, D0)
    w.write(S1, D1)
    passes(run_cli, w, 2)
    approve_all(run_cli, w)
    hpss, away = w.folder("hpss"), tmp_path / "hpss-away"
    hpss.rename(away)
    passes(run_cli, w, 2)
    assert on_disk(w, "cfs", S0) == D0 and on_disk(w, "cfs", S1) == D1
    assert set(s for (s,) in sql(w, "SELECT state FROM tape_bundles")) == {"verified"}
    _, doc = audit(run_cli, w)
    assert "endpoint_unknown" in [b["reason_code"] for b in blocked(doc, S0)]
    assert not hpss.exists(), "something created the HPSS stand-in while it was gone"
    away.rename(hpss)
    passes(run_cli, w)
    assert len(w.bundles()) == 1, "a bundle was made again after HPSS came back"


def test_hpss_mount_point_empty_is_not_a_rebundling_storm(tmp_path: Path, run_cli: RunCli) -> None:
    """The HPSS stand-in directory exists but is empty (an unmounted mount point)."""
    w = make_tape_world(tmp_path)
    w.write(S0, D0)
    w.write(S1, D1)
    passes(run_cli, w, 2)
    approve_all(run_cli, w)
    hpss, away = w.folder("hpss"), tmp_path / "hpss-away"
    hpss.rename(away)
    hpss.mkdir()
    passes(run_cli, w, 2)
    assert on_disk(w, "cfs", S0) == D0 and on_disk(w, "cfs", S1) == D1
    assert list(hpss.rglob("*.tar")) == [], "bundles written into the unmounted mount point"
    assert set(s for (s,) in sql(w, "SELECT state FROM tape_bundles")) == {"verified"}
    _, doc = audit(run_cli, w)
    assert "endpoint_unknown" in [b["reason_code"] for b in blocked(doc, S0)]
    codes = [a.get("code") for a in doc.get("alert_details", [])]
    assert "endpoint_identity" in codes, doc.get("alert_details")
    hpss.rmdir()
    away.rename(hpss)
    passes(run_cli, w, 2)
    assert len(w.bundles()) == 1, (
        "after HPSS came back the intact bundle was not trusted again: "
        f"{sql(w, 'SELECT bundle, state FROM tape_bundles')}"
    )


def test_rewritten_scan_needs_a_bundle_of_its_new_version_before_the_prune(
    tmp_path: Path, run_cli: RunCli
) -> None:
    w = make_tape_world(tmp_path)
    w.write(S0, D0)
    passes(run_cli, w, 2)
    assert D0 in bundled_bytes(w)[S0]
    new = b"scan zero, rewritten: NEW bytes!!!"
    assert len(new) == len(D0)
    w.write(S0, new)
    churn(run_cli, w, 4)
    if on_disk(w, "cfs", S0) != new:
        assert new in bundled_bytes(w).get(S0, []), "CFS lost the new version; no bundle holds it"
    assert D0 in bundled_bytes(w)[S0], "the old version's bundle was rewritten"


def test_restore_of_a_scan_never_archived_is_refused_or_waits(
    tmp_path: Path, run_cli: RunCli
) -> None:
    w = make_tape_world(tmp_path)
    w.write(S0, D0)
    passes(run_cli, w)
    done = run_ok(run_cli, w, "--restore", "2026/never.h5", "--to", "cfs")
    assert done.returncode != 0, "a restore of an unknown scan was accepted"
    assert "never" in (done.stdout + done.stderr)


def test_restore_while_the_bundle_is_missing_places_nothing(
    tmp_path: Path, run_cli: RunCli
) -> None:
    w = make_tape_world(tmp_path)
    w.write(S0, D0)
    passes(run_cli, w, 2)
    approve_all(run_cli, w)
    passes(run_cli, w)
    assert on_disk(w, "cfs", S0) is None, "setup: the approved prune ran"
    (bundle,) = w.bundles()
    bundle.unlink()
    restore(run_cli, w, S0, "cfs")
    assert on_disk(w, "cfs", S0) is None
    assert on_disk(w, "dtn", S0) == D0
    _, doc = audit(run_cli, w)
    assert doc.get("blocked") or doc.get("errors") or doc.get("alert_details"), doc


def test_restore_into_dtn_holding_a_newer_version_does_not_overwrite_it(
    tmp_path: Path, run_cli: RunCli
) -> None:
    w = make_tape_world(tmp_path)
    w.write(S0, D0)
    passes(run_cli, w, 2)
    assert D0 in bundled_bytes(w)[S0]
    newer = b"scan zero, newer version on the dtn"
    w.write(S0, newer)
    passes(run_cli, w)
    run_ok(run_cli, w, "--restore", S0, "--to", "dtn")
    churn(run_cli, w, 2)
    assert (
        on_disk(w, "dtn", S0) == newer
        or on_disk(w, "cfs", S0) == newer
        or newer in bundled_bytes(w).get(S0, [])
    )


def test_bundle_limit_smaller_than_one_scan(tmp_path: Path, run_cli: RunCli) -> None:
    w = make_tape_world(tmp_path, bundle_max_bytes=10)
    w.write(S0, D0)
    w.write(S1, D1)
    passes(run_cli, w, 3)
    held = bundled_bytes(w)
    assert D0 in held.get(S0, []) and D1 in held.get(S1, [])
    assert len(w.bundles()) == 2  # each scan alone in its part


def test_close_date_with_the_clock_going_backwards(tmp_path: Path, run_cli: RunCli) -> None:
    """Audits at an --as-of years before the scan joined its group (a clock stepped back): the
    scan still waits for its bundle with a close date, nothing crashes, no bundle is claimed."""
    import re

    w = make_tape_world(tmp_path, close_after_days=14)
    w.write(S0, D0)
    passes(run_cli, w, 2)  # to CFS, verified there; the group stays open for 14 days
    for as_of in (None, "2020-01-01T00:00:00Z", "1971-01-01T00:00:00Z"):
        _, doc = audit(run_cli, w, *(["--as-of", as_of] if as_of else []))
        reasons = [b for b in blocked(doc, S0) if b["reason_code"] == "waiting_for_bundle"]
        assert reasons, (as_of, blocked(doc, S0), [a["kind"] for a in doc["actions"]])
        assert re.search(r"\d{4}-\d\d-\d\d", reasons[0]["reason"]), reasons[0]["reason"]
    assert w.bundles() == []
    assert on_disk(w, "cfs", S0) == D0


def test_all_bundles_vanishing_raise_missing_fraction_and_no_prune_relies_on_a_new_one(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """The marker is intact but every bundle vanished (deleted on HPSS): the vanished copies
    count in the missing-fraction check, and the approved CFS prune never runs relying on a
    bundle written in the pass where the old ones vanished."""
    w = make_tape_world(tmp_path)
    w.write(S0, D0)
    w.write(S1, D1)
    passes(run_cli, w, 3)  # the third pass lists the bundles: the copies were seen on tape
    approve_all(run_cli, w)
    for tar in w.bundles():
        tar.unlink()
    passes(run_cli, w, 3)
    assert on_disk(w, "cfs", S0) == D0 and on_disk(w, "cfs", S1) == D1
    _, doc = audit(run_cli, w)
    codes = [a.get("code") for a in doc.get("alert_details", [])]
    assert "missing_fraction" in codes, doc.get("alert_details")


def test_a_used_archive_without_a_recorded_marker_waits_for_init_endpoint(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """Bundles recorded but no tape identity (a store from before markers): unknown, never
    'all missing', until the operator runs --init-endpoint, which adopts the marker there."""
    w = make_tape_world(tmp_path)
    w.write(S0, D0)
    passes(run_cli, w, 3)
    (marker,) = [p for p in w.folder("hpss").iterdir() if p.name.startswith(".bl931-tape-")]
    sql(w, "DELETE FROM endpoint_identity WHERE endpoint = 'hpss'")
    passes(run_cli, w)
    _, doc = audit(run_cli, w)
    assert "endpoint_unknown" in [b["reason_code"] for b in blocked(doc, S0)]
    assert set(s for (s,) in sql(w, "SELECT state FROM tape_bundles")) == {"verified"}
    done = run_ok(run_cli, w, "--init-endpoint", "hpss")
    assert done.returncode == 0 and marker.name in done.stdout, done.stdout + done.stderr
    passes(run_cli, w)
    _, doc = audit(run_cli, w)
    assert "endpoint_unknown" not in [b["reason_code"] for b in blocked(doc, S0)]
    assert len(w.bundles()) == 1

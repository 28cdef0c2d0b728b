"""Adversary: a rewritten DTN file fails its whole Globus task; only its scan may fail, naming
its own file, and the other scans of the batch land in a new batch. Driven through the real CLI
against the fake Transfer API (real globus-sdk)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.state import StateStore
from tests.cli.globus_site import (
    ACQUIRED,
    Site,
    audit,
    flip_one_byte,
    make_site,
    reconcile,
    transfers,
)
from tests.conftest import RunCli
from tests.fakes.transfer_api import FakeTransferAPI

SCANS = ("scan_0001", "scan_0002", "scan_0003", "scan_0004")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    with FakeTransferAPI() as fake:
        s = make_site(tmp_path, fake)
        for scan in SCANS[1:]:
            path = s.dtn / scan / "frame_1.h5"
            path.parent.mkdir(parents=True)
            path.write_bytes(scan.encode() * 100)
            os.utime(path, (ACQUIRED, ACQUIRED))
        for name, value in fake.environ.items():
            monkeypatch.setenv(name, value)
        yield s


def failures(site: Site) -> dict[str, list[tuple[str, str]]]:
    """scan → every (class, message) of its `action.failed` events, oldest first."""
    store = StateStore(site.state_path)
    try:
        rows = store.connection().execute(
            "SELECT scan, message, data FROM events WHERE kind = 'action.failed' ORDER BY rowid"
        )
        found: dict[str, list[tuple[str, str]]] = {}
        for r in rows:
            found.setdefault(r["scan"], []).append((json.loads(r["data"])["class"], r["message"]))
        return found
    finally:
        store.close()


def needs_attention(doc: dict[str, Any]) -> dict[str, str]:
    return {b["scan"]: b["reason"] for b in doc["blocked"] if b["reason_code"] == "needs_attention"}


def landed(site: Site, scan: str) -> bool:
    src = sorted(p.relative_to(site.dtn) for p in (site.dtn / scan).rglob("*") if p.is_file())
    return all(
        (site.cfs / rel).is_file()
        and (site.cfs / rel).read_bytes() == (site.dtn / rel).read_bytes()
        for rel in src
    )


def test_two_rewritten_files_in_one_batch_fail_only_their_own_scans(
    run_cli: RunCli, site: Site
) -> None:
    """Two scans of one batch rewritten: Transfer ends the task at the first mismatch (the fake
    walks the items in order, so scan_0002's file). Only that scan is blamed, on its own file;
    the other rewritten scan is taken in again as its new version before the resubmission, so
    it is never blamed for the first one's file, and every scan lands with its current bytes."""
    reconcile(run_cli, site)
    (first,) = transfers(site.fake)
    flip_one_byte(site.dtn / "scan_0002" / "frame_1.h5")
    flip_one_byte(site.dtn / "scan_0004" / "frame_1.h5")
    for _ in range(4):
        reconcile(run_cli, site)
    assert first.status == "FAILED" and first.fatal_error["code"] == "CHECKSUM_MISMATCH"
    failed = failures(site)
    (blamed,) = failed["scan_0002"]
    assert blamed[0] == "needs_human" and "/raw/scan_0002/frame_1.h5" in blamed[1], blamed
    assert "scan_0004" not in blamed[1]
    for scan in ("scan_0001", "scan_0003", "scan_0004"):
        for error_class, message in failed.get(scan, []):
            assert error_class == "transient" and "sent again in a new batch" in message, message
            assert "scan_0002" not in message, message
    for scan in SCANS:
        assert landed(site, scan), scan
    _code, doc = audit(run_cli, site)
    assert not needs_attention(doc), doc


def test_a_batch_whose_events_name_no_file_fails_every_scan_and_the_audit_says_so(
    run_cli: RunCli, site: Site
) -> None:
    """A whole-task CHECKSUM_MISMATCH whose event list names no file: no scan can be singled out,
    so every scan fails with the task's error; the audit must not read as settled."""
    site.fake.fail_next_task("CHECKSUM_MISMATCH", "checksum mismatch", kind="TRANSFER")
    reconcile(run_cli, site)
    reconcile(run_cli, site)
    (_first,) = [t for t in transfers(site.fake) if t.status == "FAILED"]
    failed = failures(site)
    assert set(failed) == set(SCANS)
    for scan in SCANS:
        error_class, message = failed[scan][-1]
        assert error_class == "needs_human" and "CHECKSUM_MISMATCH" in message, message
    code, doc = audit(run_cli, site)
    assert code == 1, doc
    assert doc["outcome"] == "needs_person"
    assert set(needs_attention(doc)) == set(SCANS)
    assert not any(landed(site, s) for s in SCANS)
    assert not [a for a in doc["actions"] if a["kind"] == "delete"]
    human = run_cli("--dry-run", config=site.config_path)
    assert human.returncode == 1 and "No changes" not in human.stdout


def test_a_resubmitted_batch_that_fails_again_blames_the_new_culprit_only(
    run_cli: RunCli, site: Site
) -> None:
    """The batch resent after one mismatch fails on another rewritten file: again only that
    scan is blamed, the first culprit's message is not carried to others, and all land."""
    reconcile(run_cli, site)
    flip_one_byte(site.dtn / "scan_0003" / "frame_1.h5")
    reconcile(run_cli, site)  # batch 1 fails on scan_0003; batch 2 is sent
    assert len(transfers(site.fake)) == 2
    flip_one_byte(site.dtn / "scan_0001" / "frame_2.h5")  # before batch 2 runs
    reconcile(run_cli, site)  # batch 2 fails on scan_0001; batch 3 is sent
    second = transfers(site.fake)[1]
    assert second.status == "FAILED" and second.fatal_error["code"] == "CHECKSUM_MISMATCH"
    failed = failures(site)
    last_0001 = failed["scan_0001"][-1]
    assert last_0001[0] == "needs_human" and "scan_0001/frame_2.h5" in last_0001[1], last_0001
    for scan in ("scan_0002", "scan_0004"):
        for error_class, message in failed[scan]:
            assert error_class == "transient", message
            assert "frame_2.h5" not in message and "scan_0003/" not in message, message
    for _ in range(2):
        reconcile(run_cli, site)
    for scan in SCANS:
        assert landed(site, scan), scan
    _code, doc = audit(run_cli, site)
    assert not needs_attention(doc), doc


def test_a_destination_verify_retry_earlier_in_the_task_does_not_blame_an_innocent_scan(
    run_cli: RunCli, site: Site
) -> None:
    """Transfer retries a destination checksum failure itself (Task Behavior, "Retry
    Behavior") and logs an error event naming that file; the retry succeeds. When the task
    later fails on a rewritten file of another scan, only that scan is at fault: the scan whose
    file was merely retried must be sent again at once, not held as needing a person."""
    reconcile(run_cli, site)
    (first,) = transfers(site.fake)
    first_source = first.body["DATA"][0]["source_path"]  # the file copied first
    innocent = first_source.split("/")[2]
    bad = "scan_0004" if innocent != "scan_0004" else "scan_0002"
    site.fake.corrupt_next_copy = True  # that first copy fails verification once, then passes
    flip_one_byte(site.dtn / bad / "frame_1.h5")
    for _ in range(3):
        reconcile(run_cli, site)
        if first.status == "FAILED":
            break
    assert first.status == "FAILED" and first.fatal_error["code"] == "CHECKSUM_MISMATCH"
    assert any(e["code"] == "VERIFY_CHECKSUM" for e in first.events)
    failed = failures(site)
    assert failed[bad][-1][0] == "needs_human"
    error_class, message = failed[innocent][-1]
    assert error_class == "transient" and "sent again" in message, message
    reconcile(run_cli, site)
    _code, doc = audit(run_cli, site)
    assert innocent not in needs_attention(doc), needs_attention(doc)
    assert landed(site, innocent)


def test_a_file_that_keeps_changing_does_not_keep_the_other_scans_from_landing(
    run_cli: RunCli, site: Site
) -> None:
    """scan_0003's file is rewritten again between every pass (after the inventory took it in,
    before Transfer copies it). Each batch carrying it fails whole; the innocent scans of the
    batch must still land within a few passes instead of riding along in every failing batch."""
    for _ in range(5):
        reconcile(run_cli, site)
        flip_one_byte(site.dtn / "scan_0003" / "frame_1.h5")
    assert len(transfers(site.fake)) <= 4
    for scan in ("scan_0001", "scan_0002", "scan_0004"):
        assert landed(site, scan), scan


def test_unreadable_events_never_blame_every_scan_nor_read_as_in_sync(
    run_cli: RunCli, site: Site
) -> None:
    """The batch failed on a rewritten file but Transfer cannot give its event list now (503
    beyond the SDK's retries): nothing may be settled from that guess. The next pass, with
    the events readable, blames only the culprit; meanwhile the audit is not settled."""
    reconcile(run_cli, site)
    (first,) = transfers(site.fake)
    flip_one_byte(site.dtn / "scan_0003" / "frame_1.h5")
    site.fake.fail_next("event_list", 3, 503)
    reconcile(run_cli, site)
    assert first.status == "FAILED"
    assert not failures(site), failures(site)  # nothing recorded from a guess
    code, doc = audit(run_cli, site)
    assert code != 0 and doc["outcome"] != "settled"
    reconcile(run_cli, site)
    failed = failures(site)
    assert failed["scan_0003"][-1][0] == "needs_human"
    for scan in ("scan_0001", "scan_0002", "scan_0004"):
        assert failed[scan][-1][0] == "transient", failed[scan]
    reconcile(run_cli, site)
    for scan in SCANS:
        assert landed(site, scan), scan

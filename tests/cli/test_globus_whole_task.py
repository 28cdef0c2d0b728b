"""A rewritten DTN file fails its whole Globus task (as `external_checksum` does on the real
service); through the real CLI only that scan needs attention, and the other scans of the batch
are copied in a new batch."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.state import StateStore
from tests.cli.globus_site import (
    ACQUIRED,
    Site,
    audit,
    flip_one_byte,
    make_site,
    md5,
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


def test_one_rewritten_file_fails_only_its_scan_and_the_rest_go_in_a_new_batch(
    run_cli: RunCli, site: Site
) -> None:
    reconcile(run_cli, site)
    (first,) = transfers(site.fake)
    assert len({item["source_path"].split("/")[2] for item in first.body["DATA"]}) == 4
    flip_one_byte(site.dtn / "scan_0003" / "frame_1.h5")  # after inventory, before the copy

    reconcile(run_cli, site)
    assert first.status == "FAILED" and first.fatal_error["code"] == "CHECKSUM_MISMATCH"
    (second,) = [t for t in transfers(site.fake) if t is not first]
    resent = {item["source_path"].split("/")[2]: item for item in second.body["DATA"]}
    # The innocent scans go again at once; the rewritten one only as the new version the
    # inventory found (its new checksum), never with the bytes that failed.
    assert set(resent) == set(SCANS)
    new_bytes = (site.dtn / "scan_0003" / "frame_1.h5").read_bytes()
    assert resent["scan_0003"]["external_checksum"] == md5(new_bytes)
    failed = failures(site)
    assert set(failed) == set(SCANS)
    assert "scan_0003/frame_1.h5" in failed["scan_0003"][1]
    assert failed["scan_0003"][0] == "needs_human"
    for scan in ("scan_0001", "scan_0002", "scan_0004"):
        error_class, message = failed[scan]
        assert error_class == "transient" and "scan_0003" not in message, message

    reconcile(run_cli, site)
    _code, doc = audit(run_cli, site)
    assert not [b for b in doc["blocked"] if b["reason_code"] == "needs_attention"], doc
    for scan in SCANS:
        assert (site.cfs / scan / "frame_1.h5").is_file()


def failures(site: Site) -> dict[str, tuple[str, str]]:
    """scan → (class, message) of each `action.failed` event."""
    store = StateStore(site.state_path)
    try:
        rows = store.connection().execute(
            "SELECT scan, message, data FROM events WHERE kind = 'action.failed'"
        )
        return {r["scan"]: (json.loads(r["data"])["class"], r["message"]) for r in rows}
    finally:
        store.close()

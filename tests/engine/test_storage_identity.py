"""Storage identities: what they are made of, and how evidence is keyed to them."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from engine.config import Config, parse_config
from engine.evidence_identity import StorageIdentities, storage_identity
from engine.model import Evidence, Level
from engine.state import StateStore

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
CFS = "6E1C0000-0000-4000-8000-000000000001"


def config(tmp_path: Path, *, cfs_root: str = "/raw", cfs: str = CFS) -> Config:
    return parse_config(
        {
            "state": {"path": str(tmp_path / "state.sqlite")},
            "endpoints": {
                "dtn": {"kind": "local", "path": str(tmp_path / "dtn")},
                "cfs": {"kind": "globus", "collection": cfs, "root": cfs_root},
            },
            "copy": [{"from": "dtn", "to": "cfs"}],
            "catalog": {"kind": "none"},
        }
    )


def proof(identity: str | None) -> Evidence:
    return Evidence(Level.CHECKSUM, "md5", "abc", "task", NOW, "sig", "transfer", identity)


def test_a_globus_identity_is_the_collection_and_the_normalised_root(tmp_path: Path) -> None:
    one = storage_identity(config(tmp_path).endpoints["cfs"], None)
    assert one == f"globus:{CFS.lower()}:/raw"
    assert storage_identity(config(tmp_path, cfs_root="/raw/").endpoints["cfs"], None) == one
    assert storage_identity(config(tmp_path, cfs_root="/raw2").endpoints["cfs"], None) != one


def test_a_local_identity_names_the_marker_the_device_and_the_root(tmp_path: Path) -> None:
    (tmp_path / "dtn").mkdir()
    spec = config(tmp_path).endpoints["dtn"]
    device = os.stat(tmp_path / "dtn").st_dev
    assert storage_identity(spec, "m-1") == f"local:m-1:{device}:{tmp_path / 'dtn'}"
    assert storage_identity(spec, "m-2") != storage_identity(spec, "m-1")
    (tmp_path / "dtn").rmdir()
    assert storage_identity(spec, "m-1") is None, "no root, no identity (unknown, not new)"


def test_evidence_counts_only_on_the_storage_it_was_taken_on(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite")
    try:
        store.record_evidence("s1", "cfs", proof(None))  # from before identities
        first = StorageIdentities(config(tmp_path), store)
        first.record(NOW)
        (stamped,) = store.load_evidence()["cfs"].values()
        assert stamped.identity == first.of("cfs")

        moved = StorageIdentities(config(tmp_path, cfs_root="/migrated"), store)
        here, elsewhere = moved.split("cfs", store.load_evidence()["cfs"])
        assert here == {} and elsewhere["s1"].identity == first.of("cfs")
        moved.record(NOW, unproven={"cfs"})
        assert StorageIdentities(config(tmp_path), store).recorded["cfs"] == first.of("cfs")
        moved.record(NOW)
        (event,) = [e for e in store.events() if e["kind"] == "endpoint.storage_changed"]
        assert "1 copies verified on other storage" in event["message"]

        # Back at the old storage, its evidence counts again (its listing must still match).
        back = StorageIdentities(config(tmp_path), store)
        assert back.belongs("cfs", store.load_evidence()["cfs"]["s1"])
    finally:
        store.close()

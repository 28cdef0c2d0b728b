"""The local catalog never holds every document in memory, and reads documents from the very
file it indexed (a file rewritten behind its back is read again, never misread)."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest
from tinydb import TinyDB

from engine.catalog import json_stream
from engine.catalog.dataset import local_document, to_iso
from engine.catalog.local import LocalCatalog
from engine.catalog.local_file import CatalogFile, CatalogRaced
from engine.config import CatalogConfig
from tests.catalog.helpers import CREATED, new_local_catalog
from tests.fakes.scans import cfs, hpss, make_scan

DOCS = 1500


def _filled(path: Path, config: CatalogConfig, docs: int = DOCS) -> LocalCatalog:
    catalog = new_local_catalog(path, config)
    for i in range(docs):
        scan = make_scan(f"p{i % 7}/u/scan_{i:05d}", files=3)
        catalog.register(scan, [cfs(scan), hpss(scan)])
    catalog.flush()
    return catalog


def test_observing_a_catalog_holds_far_less_than_its_documents(
    tmp_path: Path, catalog_config: CatalogConfig
) -> None:
    path = tmp_path / "catalog.json"
    catalog_id = _filled(path, catalog_config).identity_on_disk()
    file_bytes = path.stat().st_size
    wanted = {f"p{i % 7}/u/scan_{i:05d}" for i in range(DOCS)}

    tracemalloc.start()
    try:
        fresh = LocalCatalog(path, catalog_config)
        fresh.expect(catalog_id)
        before = tracemalloc.get_traced_memory()[0]
        view = fresh.observe(wanted)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(view.locations) == DOCS
    # Parsed documents take ~4x the file's bytes; the index a few hundred bytes per scan.
    assert held < 0.5 * file_bytes, (held, file_bytes)


def test_a_pass_that_changes_a_few_documents_never_loads_them_all(
    tmp_path: Path, catalog_config: CatalogConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reader's window (1 MiB by default) is a fixed cost that would dominate a test-sized
    # file; a smaller one leaves what grows with the catalog to be measured.
    monkeypatch.setattr(json_stream, "CHUNK", 1 << 16)
    path = tmp_path / "catalog.json"
    catalog = _filled(path, catalog_config)
    file_bytes = path.stat().st_size
    catalog.observe({"p0/u/scan_00000"})  # indexed

    tracemalloc.start()
    try:
        for i in range(5):
            scan = make_scan(f"p{i % 7}/u/scan_{i:05d}", files=3)
            catalog.update_locations(scan, [hpss(scan)])
        new = make_scan("p0/u/new", files=3)
        catalog.register(new, [cfs(new)])
        catalog.flush()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.5 * file_bytes, (peak, file_bytes)
    with TinyDB(path) as db:
        rows = db.table("datasets").all()
    assert len(rows) == DOCS + 1
    changed = {r["scientificMetadata"]["scan_id"]["value"]: r for r in rows}
    assert [
        e["endpoint"] for e in changed["p0/u/scan_00000"]["scientificMetadata"]["locations"]
    ] == ["hpss"]


def test_documents_written_by_another_program_survive_a_write_unchanged(
    tmp_path: Path, catalog_config: CatalogConfig
) -> None:
    """Unchanged documents are copied byte for byte: whatever formatting, key order and text
    another writer used, the values read back are the ones it wrote."""
    path = tmp_path / "catalog.json"
    catalog = new_local_catalog(path, catalog_config)
    theirs = make_scan("p1/ü/théirs")
    doc = local_document(theirs, [cfs(theirs)], catalog_config, beamline="9.3.1", template=None)
    doc["createdAt"] = doc["updatedAt"] = to_iso(CREATED)
    doc["note"] = {"z": 1.50, "a": ["x\u2028y", None, True]}
    data = json.loads(path.read_text())
    data["datasets"] = {"7": doc}
    path.write_text(json.dumps(data, indent=4, ensure_ascii=True))
    expected = json.loads(path.read_text())["datasets"]["7"]

    mine = make_scan("p1/u/mine")
    catalog.register(mine, [cfs(mine)])
    catalog.flush()

    with TinyDB(path) as db:
        rows = {r["scientificMetadata"]["scan_id"]["value"]: dict(r) for r in db.table("datasets")}
    assert rows[theirs.id] == expected
    assert set(rows) == {theirs.id, mine.id}
    assert catalog.document(theirs.id) == expected


def test_a_stale_index_is_never_used_to_read_another_scans_document(
    tmp_path: Path, catalog_config: CatalogConfig
) -> None:
    """A file rewritten in place so fast that its stamp did not change: the bytes at a scan's
    recorded range belong to another scan. The catalog notices and indexes the file again."""
    path = tmp_path / "catalog.json"
    catalog = _filled(path, catalog_config, docs=3)
    a, b = "p0/u/scan_00000", "p1/u/scan_00001"
    snapshot = catalog._snapshot
    assert snapshot is not None
    swapped = dict(snapshot.entries)
    swapped[a], swapped[b] = snapshot.entries[b], snapshot.entries[a]
    catalog._snapshot = type(snapshot)(
        swapped, snapshot.catalog_id, snapshot.generation, snapshot.stamp, snapshot.identity
    )
    with CatalogFile(path).opened(catalog._snapshot) as handle, pytest.raises(CatalogRaced):
        CatalogFile.document(handle, a, swapped[a])

    doc = catalog.document(a)
    assert doc is not None and doc["scientificMetadata"]["scan_id"]["value"] == a
    assert [d["scientificMetadata"]["scan_id"]["value"] for d in catalog.documents()] == sorted(
        [a, b, "p2/u/scan_00002"]
    )


def test_a_file_replaced_between_index_and_read_is_read_again(
    tmp_path: Path, catalog_config: CatalogConfig
) -> None:
    path = tmp_path / "catalog.json"
    catalog = _filled(path, catalog_config, docs=2)
    catalog.observe({"p0/u/scan_00000"})
    data = json.loads(path.read_text())
    doc = data["datasets"]["1"]
    doc["note"] = "edited by an operator's script"
    data["datasets"] = {"1": doc}  # and the other document dropped
    tmp = path.with_suffix(".edit")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)

    scan_id = doc["scientificMetadata"]["scan_id"]["value"]
    assert catalog.document(scan_id)["note"] == "edited by an operator's script"  # type: ignore[index]
    assert len(catalog) == 1

"""The local catalog follows the disk and never overwrites what it did not read.

Several writers (processes, or instances in one process) share one catalog file: each re-reads
the file when it changed, and each write is a compare-and-swap under the write lock, so no
writer loses another's documents. A bound catalog whose file is missing or is another catalog is
unavailable, and keeps its changes until it can merge them into the right file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.catalog.local import LocalCatalog
from engine.catalog.local_file import IDENTITY_TABLE, CatalogFile
from engine.config import CatalogConfig
from engine.errors import CatalogUnavailable
from engine.model import ErrorClass
from tests.catalog.helpers import CREATED, new_local_catalog
from tests.fakes.scans import cfs, hpss, make_scan

WRITERS = 4
SCANS_EACH = 25


# One process registering its own scans, writing after each (a pass per scan).
WRITER = """
import sys
from pathlib import Path
from engine.catalog.local import LocalCatalog
from engine.config import CatalogConfig
from tests.fakes.scans import cfs, make_scan

path, config_json, index, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
catalog = LocalCatalog(Path(path), CatalogConfig.model_validate_json(config_json))
for i in range(count):
    scan = make_scan(f"w{index}/u/scan_{i:03d}")
    catalog.register(scan, [cfs(scan)])
    catalog.flush()
"""


def catalogued(path: Path) -> set[str]:
    doc = json.loads(path.read_text("utf-8"))
    return {d["scientificMetadata"]["scan_id"]["value"] for d in doc["datasets"].values()}


def test_concurrent_writer_processes_lose_no_record(
    tmp_path: Path, catalog_config: CatalogConfig
) -> None:
    path = tmp_path / "catalog.json"
    path.write_text('{"datasets": {}}', "utf-8")  # an existing catalog every writer reads
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), catalog_config.model_dump_json(), str(n),
             str(SCANS_EACH)],
            cwd=Path(__file__).parents[2],
        )
        for n in range(WRITERS)
    ]  # fmt: skip
    assert [proc.wait(120) for proc in procs] == [0] * WRITERS
    expected = {f"w{n}/u/scan_{i:03d}" for n in range(WRITERS) for i in range(SCANS_EACH)}
    assert catalogued(path) == expected, f"{len(expected - catalogued(path))} records lost"


def test_a_catalog_rereads_a_file_another_writer_changed(
    tmp_path: Path, catalog_config: CatalogConfig
) -> None:
    path = tmp_path / "catalog.json"
    service = new_local_catalog(path, catalog_config)
    a, b, c = make_scan("p/u/a"), make_scan("p/u/b"), make_scan("p/u/c")
    service.register(a, [cfs(a)])
    service.flush()
    assert service.observe([a.id, b.id]).locations == {a.id: frozenset({"cfs"})}

    other = LocalCatalog(path, catalog_config)  # e.g. an operator's back-fill tool
    other.register(b, [cfs(b)])
    other.update_locations(a, [cfs(a), hpss(a)])
    other.flush()

    seen = service.observe([a.id, b.id, c.id]).locations
    assert seen == {a.id: frozenset({"cfs", "hpss"}), b.id: frozenset({"cfs"})}, "stale copy"
    service.register(c, [cfs(c)])
    service.flush()
    assert catalogued(path) == {a.id, b.id, c.id}
    assert LocalCatalog(path, catalog_config).observe([a.id]).locations[a.id] == {"cfs", "hpss"}
    identity = json.loads(path.read_text())[IDENTITY_TABLE]["1"]
    assert identity["generation"] == 4  # initialised, then three writes


def test_a_writer_ignoring_the_lock_between_read_and_replace_is_merged_not_erased(
    tmp_path: Path, catalog_config: CatalogConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "catalog.json"
    catalog = new_local_catalog(path, catalog_config)
    mine, theirs = make_scan("p/u/mine"), make_scan("p/u/theirs")
    catalog.register(mine, [cfs(mine)])

    real_read = CatalogFile.read
    raced: list[bool] = []

    def read_then_someone_writes(self: CatalogFile):  # type: ignore[no-untyped-def]
        snapshot = real_read(self)
        if not raced:  # after the locked read, before the replace: a write without the lock
            raced.append(True)
            intruder = LocalCatalog(path, catalog_config)
            intruder.register(theirs, [cfs(theirs)])
            data = json.loads(path.read_text())
            doc = intruder.document(theirs.id)
            data["datasets"]["99"] = doc
            tmp = path.with_suffix(".intruder")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, path)
        return snapshot

    monkeypatch.setattr(CatalogFile, "read", read_then_someone_writes)
    catalog.flush()
    assert raced and catalogued(path) == {mine.id, theirs.id}


def test_a_missing_file_is_unavailable_and_changes_wait_for_it(
    tmp_path: Path, catalog_config: CatalogConfig
) -> None:
    path = tmp_path / "vol" / "catalog.json"
    catalog = new_local_catalog(path, catalog_config)
    a, b = make_scan("p/u/a"), make_scan("p/u/b")
    catalog.register(a, [cfs(a)])
    catalog.flush()
    kept = path.read_bytes()

    catalog.register(b, [cfs(b)])  # in memory
    os.rename(path.parent, tmp_path / "vol-offline")  # unmounted before the write
    path.parent.mkdir()  # the bare mount point
    with pytest.raises(CatalogUnavailable) as caught:
        catalog.flush()
    assert caught.value.error_class is ErrorClass.NEEDS_HUMAN
    assert "missing" in str(caught.value)
    assert not path.exists(), "a catalog was started on the bare mount point"
    with pytest.raises(CatalogUnavailable):
        catalog.observe([a.id])

    path.parent.rmdir()
    os.rename(tmp_path / "vol-offline", path.parent)  # remounted
    assert path.read_bytes() == kept
    catalog.flush()
    assert catalogued(path) == {a.id, b.id}


def test_another_catalog_at_the_path_is_unavailable(
    tmp_path: Path, catalog_config: CatalogConfig
) -> None:
    path = tmp_path / "catalog.json"
    catalog = new_local_catalog(path, catalog_config)
    elsewhere = new_local_catalog(tmp_path / "other" / "catalog.json", catalog_config)
    os.replace(elsewhere.path, path)
    with pytest.raises(CatalogUnavailable, match=r"is catalog .*, not catalog") as caught:
        catalog.observe(["p/u/a"])
    assert caught.value.error_class is ErrorClass.NEEDS_HUMAN

    path.write_text('{"datasets": {}}')  # a file from before identities
    with pytest.raises(CatalogUnavailable, match="carries no catalog identity"):
        catalog.observe(["p/u/a"])


def test_initialise_never_creates_the_folder_and_adopts_what_is_there(
    tmp_path: Path, catalog_config: CatalogConfig
) -> None:
    path = tmp_path / "unmounted" / "catalog.json"
    catalog = LocalCatalog(path, catalog_config)
    with pytest.raises(CatalogUnavailable, match="does not exist"):
        catalog.initialise(now=CREATED)
    assert not path.parent.exists()

    path.parent.mkdir()
    first, how = catalog.initialise(now=CREATED)
    assert how == "created" and catalogued(path) == set()
    again, how = LocalCatalog(path, catalog_config).initialise(now=CREATED)
    assert (again, how) == (first, "adopted")

    legacy = tmp_path / "legacy.json"
    source = new_local_catalog(tmp_path / "src" / "c.json", catalog_config)
    scan = make_scan("p/u/a")
    source.register(scan, [cfs(scan)])
    source.flush()
    data = json.loads(source.path.read_text())
    legacy.write_text(json.dumps({"datasets": data["datasets"]}))
    new_id, how = LocalCatalog(legacy, catalog_config).initialise(now=CREATED)
    assert how == "identified" and new_id != first
    assert catalogued(legacy) == {scan.id}


def test_a_symlinked_catalog_is_written_through_its_link(
    tmp_path: Path, catalog_config: CatalogConfig
) -> None:
    (tmp_path / "vol").mkdir()
    real = tmp_path / "vol" / "catalog.json"
    new_local_catalog(real, catalog_config)
    link = tmp_path / "state" / "catalog.json"
    link.parent.mkdir()
    link.symlink_to(real)
    catalog = LocalCatalog(link, catalog_config)
    scan = make_scan("p/u/a")
    catalog.register(scan, [cfs(scan)])
    catalog.flush()
    assert link.is_symlink() and catalogued(real) == {scan.id}

    os.rename(tmp_path / "vol", tmp_path / "vol-offline")  # the link now dangles
    other = make_scan("p/u/b")
    with pytest.raises(CatalogUnavailable, match="missing"):
        catalog.register(other, [cfs(other)])
    with pytest.raises(CatalogUnavailable, match="symlink"):
        catalog.initialise(now=CREATED)
    assert link.is_symlink() and not (tmp_path / "vol").exists()

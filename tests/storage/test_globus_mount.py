"""Re-hashing a Globus endpoint's copy through its local mount: the real globus-sdk lists it on
the fake Transfer API, the bytes are read through the mount, and a mount that does not show the
collection's files vouches for nothing."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.config import Config, parse_config
from engine.last_look import CHANGED_SINCE_INVENTORY, UNCHECKABLE, check_mounted_target
from engine.layout import ScanLayout
from engine.model import Scan, ScanFile, scan_digest
from engine.storage.globus import GlobusBackend, build_globus
from tests.fakes.transfer_api import FakeTransferAPI

DATA = {"s1/a.h5": b"alpha" * 50, "s1/b.h5": b"beta" * 70}
MTIME = 1_700_000_000


def scan() -> Scan:
    files = tuple(
        ScanFile(path, len(data), float(MTIME), hashlib.md5(data).hexdigest())
        for path, data in DATA.items()
    )
    return Scan(
        id="s1",
        files=files,
        acquired_at=datetime.fromtimestamp(MTIME, UTC),
        checksum_algorithm="md5",
        checksum=scan_digest("md5", files),
        is_directory=True,
    )


@pytest.fixture
def cfs(tmp_path: Path) -> Iterator[tuple[GlobusBackend, Path, Path, Config]]:
    """A Globus CFS whose root is also mounted here at `mount` (a link to the collection)."""
    with FakeTransferAPI() as fake:
        collection = fake.add_collection(tmp_path / "cfs")
        raw = tmp_path / "cfs" / "raw"
        for relpath, data in DATA.items():
            path = raw / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.utime(path, (MTIME, MTIME))
        mount = tmp_path / "mnt"
        mount.symlink_to(raw, target_is_directory=True)
        config = parse_config(
            {
                "state": {"path": str(tmp_path / "state.sqlite")},
                "inventory": {"scan": "directory", "depth": 1},
                "endpoints": {
                    "dtn": {"kind": "local", "path": str(tmp_path / "dtn")},
                    "cfs": {
                        "kind": "globus",
                        "collection": collection,
                        "root": "/raw",
                        "path": str(mount),
                    },
                },
                "copy": [{"from": "dtn", "to": "cfs"}],
                "catalog": {"kind": "none"},
            }
        )
        backend = build_globus(config, environ=fake.environ, max_retries=0)
        try:
            yield backend, raw, mount, config
        finally:
            backend.close()


def test_an_intact_copy_passes_and_rot_is_found(
    cfs: tuple[GlobusBackend, Path, Path, Config],
) -> None:
    backend, raw, _, config = cfs
    storage, layout = backend.storages["cfs"], ScanLayout.from_config(config.inventory)
    assert check_mounted_target(scan(), "cfs", storage, layout) is None
    listing = storage.stat_scan(layout, "s1")
    assert listing is not None
    sums = storage.checksum_files(listing, "md5")
    assert sums == {f.path: f.checksum for f in scan().files}

    path = raw / "s1/b.h5"
    path.write_bytes(b"Beta" + DATA["s1/b.h5"][4:])  # same size, mtime put back
    os.utime(path, (MTIME, MTIME))
    refusal = check_mounted_target(scan(), "cfs", storage, layout)
    assert refusal is not None and refusal.code == CHANGED_SINCE_INVENTORY
    assert "s1/b.h5" in refusal.message


def test_an_unmounted_or_foreign_mount_vouches_for_nothing(
    cfs: tuple[GlobusBackend, Path, Path, Config],
) -> None:
    backend, _, mount, config = cfs
    storage, layout = backend.storages["cfs"], ScanLayout.from_config(config.inventory)
    mount.unlink()
    mount.mkdir()  # the bare mount point
    refusal = check_mounted_target(scan(), "cfs", storage, layout)
    assert refusal is not None and refusal.code == UNCHECKABLE
    assert "not found" in refusal.message

    (mount / "s1").mkdir()  # another filesystem's copy: same bytes, other mtimes
    for relpath, data in DATA.items():
        (mount / relpath).write_bytes(data)
    refusal = check_mounted_target(scan(), "cfs", storage, layout)
    assert refusal is not None and refusal.code == UNCHECKABLE
    assert "is not the file the collection lists" in refusal.message

"""A small beamline on the fake Globus Transfer API, driven through the real CLI.

DTN and CFS are Globus collections (each a temporary directory behind the fake); the DTN is
also mounted here (`path`), as in production, and CFS optionally too. One directory scan of two
files is written on the DTN; the DTN prune relies on CFS and waits for approval.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import RunCli
from tests.fakes.transfer_api import FakeTransferAPI

SCAN = "scan_0001"
MANIFEST = {
    f"{SCAN}/frame_1.h5": b"frame one" * 100,
    f"{SCAN}/frame_2.h5": b"frame two" * 100,
}
ACQUIRED = 1_700_000_000

CONFIG = """\
[beamline]
name = "9.3.1"

[state]
path = "{state}"

[inventory]
endpoint = "dtn"
scan = "directory"
depth = 1
quiet_seconds = 0
checksum = "md5"

[endpoints.dtn]
kind = "globus"
collection = "{dtn}"
root = "/raw"
path = "{dtn_path}"

[endpoints.cfs]
kind = "globus"
collection = "{cfs}"
root = "{cfs_root}"
{cfs_path}
[[copy]]
from = "dtn"
to = "cfs"

[retention.dtn]
keep_days = 0
delete_requires = ["cfs"]

[approval]
required_for = ["delete"]

[catalog]
kind = "none"
"""


@dataclass
class Site:
    fake: FakeTransferAPI
    tmp: Path
    config_path: Path
    state_path: Path
    collections: dict[str, str]  # name -> collection id
    cfs_root: str = "/raw"
    # Where CFS is mounted here (`path`), or None for a Globus-only CFS.
    cfs_mount: Path | None = None

    def dir_of(self, collection: str, root: str = "/raw") -> Path:
        """The local directory behind `root` on a fake collection."""
        return self.fake.path_of(self.collections[collection], root)

    @property
    def dtn(self) -> Path:
        return self.dir_of("dtn")

    @property
    def cfs(self) -> Path:
        """The directory behind the CFS endpoint as currently configured."""
        return self.dir_of("cfs", self.cfs_root)

    def write_config(self) -> None:
        mount = f'path = "{self.cfs_mount}"\n' if self.cfs_mount is not None else ""
        self.config_path.write_text(
            CONFIG.format(
                state=self.state_path,
                dtn=self.collections["dtn"],
                dtn_path=self.dtn,
                cfs=self.collections["cfs"],
                cfs_root=self.cfs_root,
                cfs_path=mount,
            ),
            "utf-8",
        )

    def repoint_cfs(self, collection: str, root: str = "/raw") -> None:
        """Point `[endpoints.cfs]` at another collection / root (a storage migration)."""
        self.collections["cfs"] = self.collections[collection]
        self.cfs_root = root
        self.write_config()


def make_site(tmp: Path, fake: FakeTransferAPI, *, cfs_mount: Path | None = None) -> Site:
    """The site; `cfs_mount` (if given) is where CFS is also mounted here (`path`)."""
    collections = {name: fake.add_collection(tmp / name) for name in ("dtn", "cfs")}
    for cid in collections.values():
        fake.path_of(cid, "/raw").mkdir(parents=True)
    state = tmp / "state" / "state.sqlite"
    state.parent.mkdir()
    site = Site(fake, tmp, tmp / "bl931.toml", state, collections, cfs_mount=cfs_mount)
    site.write_config()
    for relpath, data in MANIFEST.items():
        path = site.dtn / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (ACQUIRED, ACQUIRED))
    return site


def add_collection(site: Site, name: str) -> Path:
    """A new, empty collection `name` with a `/raw` directory; returns that directory."""
    site.collections[name] = site.fake.add_collection(site.tmp / name)
    raw = site.dir_of(name)
    raw.mkdir(parents=True)
    return raw


def copy_tree_preserving(src: Path, dst: Path) -> None:
    """`cp -p -r`: the files with their mtimes."""
    shutil.copytree(src, dst, copy_function=shutil.copy2, dirs_exist_ok=True)


def flip_one_byte(path: Path) -> None:
    """Corrupt one byte in place, keeping the size and the mtime (bit rot, a bad copy)."""
    info = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def intact(root: Path) -> bool:
    """Whether `root` holds every file of the scan with the acquisition's bytes."""
    return all(
        (root / rel).is_file() and md5((root / rel).read_bytes()) == md5(data)
        for rel, data in MANIFEST.items()
    )


def reconcile(run_cli: RunCli, site: Site) -> int:
    done = run_cli("--reconcile", "--once", config=site.config_path)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode


def audit(run_cli: RunCli, site: Site) -> tuple[int, dict[str, Any]]:
    done = run_cli("--dry-run", "--json", config=site.config_path)
    assert done.returncode in (0, 1, 2), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, doc


def dtn_prunes(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in doc["actions"] if a["kind"] == "delete" and a["target"] == "dtn"]


def until_dtn_prune_planned(run_cli: RunCli, site: Site) -> dict[str, Any]:
    """Run passes until CFS holds a verified copy and the DTN prune awaits approval."""
    for _ in range(4):
        reconcile(run_cli, site)
        _, doc = audit(run_cli, site)
        if dtn_prunes(doc):
            return doc
    raise AssertionError("the DTN prune was never planned")


def transfers(fake: FakeTransferAPI) -> list[Any]:
    return [t for t in fake.tasks.values() if t.kind == "TRANSFER"]


def deletes(fake: FakeTransferAPI) -> list[Any]:
    return [t for t in fake.tasks.values() if t.kind == "DELETE"]

"""A beamline whose endpoints are all Globus collections, for tests of the real CLI.

The collections are served by the fake Transfer API on 127.0.0.1 (`tests/fakes/transfer_api.py`),
each backed by a temporary directory; the child `bl931tui` finds the fake through the
environment (`FakeTransferAPI.environ`). The dtn collection is also mounted here (`path`), as
in production, so the inventory walks it locally.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunCli
from tests.fakes.transfer_api import FakeTransferAPI

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
root = "/raw"

[endpoints.hpss]
kind = "globus"
collection = "{hpss}"
root = "/raw"
tape = true

[[copy]]
from = "dtn"
to = "cfs"

[[copy]]
from = "cfs"
to = "hpss"

[retention.dtn]
keep_days = 0
delete_requires = ["cfs"]

[retention.cfs]
keep_days = {cfs_keep_days}
delete_requires = ["hpss"]

[approval]
required_for = {approval}

[catalog]
kind = "none"
"""

ACQUIRED = 1_700_000_000  # every scan's mtime: long past any retention


@dataclass
class GlobusSite:
    fake: FakeTransferAPI
    config_path: Path
    state_path: Path
    roots: dict[str, Path]  # endpoint -> the directory behind its root "/raw"
    collections: dict[str, str]  # endpoint -> its collection id at the fake

    def write_scan(self, files: dict[str, bytes]) -> None:
        """Write files (paths relative to the dtn root) as the beamline would."""
        for relpath, data in files.items():
            path = self.roots["dtn"] / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.utime(path, (ACQUIRED, ACQUIRED))


@contextmanager
def globus_site(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    cfs_keep_days: float = 0,
    approval: tuple[str, ...] = ("delete",),
) -> Iterator[GlobusSite]:
    """Serve dtn, cfs and hpss as fake collections and write a config for them."""
    with FakeTransferAPI() as fake:
        ids = {name: fake.add_collection(tmp_path / name) for name in ("dtn", "cfs", "hpss")}
        roots = {name: tmp_path / name / "raw" for name in ids}
        for root in roots.values():
            root.mkdir(parents=True)
        state = tmp_path / "state" / "state.sqlite"
        state.parent.mkdir()
        config_path = tmp_path / "bl931.toml"
        config_path.write_text(
            CONFIG.format(
                state=state,
                dtn_path=roots["dtn"],
                cfs_keep_days=cfs_keep_days,
                approval=json.dumps(list(approval)),
                **ids,
            ),
            "utf-8",
        )
        for name, value in fake.environ.items():  # the child CLI talks to the fake
            monkeypatch.setenv(name, value)
        yield GlobusSite(fake, config_path, state, roots, ids)


def reconcile(run_cli: RunCli, site: GlobusSite) -> None:
    done = run_cli("--reconcile", "--once", config=site.config_path)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def audit(run_cli: RunCli, site: GlobusSite) -> dict[str, Any]:
    done = run_cli("--dry-run", "--json", config=site.config_path)
    assert done.returncode in (0, 1, 2), done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def files_below(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}

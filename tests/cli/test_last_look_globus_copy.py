"""The last look re-reads a Globus-only copy a delete relies on, through the real CLI.

CFS is a Globus collection with no mount here; the DTN prune relies on its copy, verified by a
checksum transfer. Between the pass's observation (which listed CFS) and the delete's last look,
the CFS copy loses a file or one file changes size (its mtime put back). The last look lists
the copy afresh through Globus (`operation_ls`, uncached) and must refuse the delete with a
reason code: the DTN copy is never submitted for deletion.

The change is made by the fake Transfer API itself, right before it answers the second listing
of the scan's folder in the pass (`FakeTransferAPI.before_ls`): the first is the observation's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.state import StateStore
from tests.cli.globus_site import (
    MANIFEST,
    SCAN,
    Site,
    deletes,
    intact,
    make_site,
    reconcile,
    until_dtn_prune_planned,
)
from tests.conftest import RunCli
from tests.fakes.transfer_api import FakeTransferAPI


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    with FakeTransferAPI() as fake:
        for name, value in fake.environ.items():  # the child CLI talks to the fake
            monkeypatch.setenv(name, value)
        yield make_site(tmp_path, fake)


def vanish(path: Path) -> Callable[[], None]:
    return path.unlink


def grow_keeping_mtime(path: Path) -> Callable[[], None]:
    def grow() -> None:
        info = path.stat()
        with path.open("ab") as out:
            out.write(b"appended after the verification")
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))

    return grow


@pytest.mark.parametrize("change", [vanish, grow_keeping_mtime], ids=["vanishes", "resized"])
def test_a_globus_only_copy_that_changes_before_the_last_look_blocks_the_delete(
    change: Callable[[Path], Callable[[], None]], site: Site, run_cli: RunCli
) -> None:
    until_dtn_prune_planned(run_cli, site)
    done = run_cli("--approve-all", "--yes", config=site.config_path)
    assert done.returncode == 0, done.stderr
    assert intact(site.cfs)
    victim = site.cfs / sorted(MANIFEST)[1]
    fired: list[bool] = []
    act = change(victim)

    def change_now() -> None:
        fired.append(True)
        act()

    site.fake.before_ls(site.collections["cfs"], f"/raw/{SCAN}", change_now, skip=1)

    reconcile(run_cli, site)

    assert fired, "the last look did not list the CFS copy again"
    assert deletes(site.fake) == [], "the DTN was pruned on a CFS copy that changed"
    assert intact(site.dtn)
    store = StateStore(site.state_path, readonly=True)
    try:
        refused = [e for e in store.events(scan=SCAN) if e["kind"] == "delete.recheck_failed"]
    finally:
        store.close()
    assert refused, "no reason recorded for the refused delete"
    assert json_code(refused[-1]) in ("copy_missing", "copy_unverified", "copy_changed"), refused
    assert "cfs" in str(refused[-1]["message"])


def json_code(event: dict[str, object]) -> str:
    data = event.get("data")
    if isinstance(data, str):
        import json

        data = json.loads(data)
    assert isinstance(data, dict), event
    return str(data.get("reason_code"))

"""Globus storage and mover: the real globus-sdk against the fake Transfer API on 127.0.0.1."""

from __future__ import annotations

import hashlib
import logging
import os
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.clock import FakeClock
from engine.config import Config, parse_config
from engine.errors import (
    Bl931Error,
    ConfigError,
    EndpointUnavailable,
    NeedsHumanError,
    TransientError,
)
from engine.layout import ScanLayout
from engine.model import ErrorClass, Level, ScanFile, scan_digest
from engine.storage.base import (
    Mover,
    Storage,
    TaskRequest,
    TaskStatus,
    TransferItem,
    listing_signature,
)
from engine.storage.globus import GlobusBackend, GlobusMover, build_globus
from tests.fakes.transfer_api import FakeTransferAPI, data_access_scope

ROOT = "/global/cfs/bl931/raw"
FILES = ScanLayout(unit="file", include=("**/*",), exclude=("**/.*",))
DIRS = ScanLayout(unit="directory", depth=2, include=("**/*",), exclude=("**/.*",))


@dataclass
class Site:
    fake: FakeTransferAPI
    base: Path
    ids: dict[str, str]  # endpoint name -> collection id

    def dir(self, endpoint: str) -> Path:
        """The local directory behind an endpoint's root."""
        return self.base / endpoint / ROOT.lstrip("/")

    def config(self, **globus: Any) -> Config:
        endpoints: dict[str, Any] = {
            name: {"kind": "globus", "collection": cid, "root": ROOT}
            for name, cid in self.ids.items()
        }
        endpoints["hpss"]["tape"] = True
        return parse_config(
            {
                "endpoints": endpoints,
                "copy": [{"from": "dtn", "to": "cfs"}, {"from": "cfs", "to": "hpss"}],
                "globus": globus,
            }
        )

    def backend(self, **globus: Any) -> GlobusBackend:
        return build_globus(self.config(**globus), self.fake.environ, max_sleep=0.01)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with FakeTransferAPI() as fake:
        ids = {
            name: fake.add_collection(tmp_path / name, display_name=f"fake {name}")
            for name in ("dtn", "cfs", "hpss")
        }
        s = Site(fake, tmp_path, ids)
        for name in ids:
            s.dir(name).mkdir(parents=True)
        yield s


@pytest.fixture
def backend(site: Site) -> Iterator[GlobusBackend]:
    b = site.backend(max_items_per_task=50)
    yield b
    b.close()


def write_scan(site: Site, relpath: str, payload: bytes, mtime: float = 1_700_000_000) -> ScanFile:
    """A file on the DTN and its inventory record (md5)."""
    path = site.dir("dtn") / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    os.utime(path, (mtime, mtime))
    return ScanFile(relpath, len(payload), mtime, hashlib.md5(payload).hexdigest())


def file_item(action: str, f: ScanFile) -> TransferItem:
    return TransferItem(action_id=action, scan=f.path, files=(f,), checksum_algorithm="md5")


def copy_request(
    mover: GlobusMover, items: list[TransferItem], sid: str | None = None
) -> TaskRequest:
    return TaskRequest(
        kind="copy",
        source="dtn",
        target="cfs",
        items=tuple(items),
        submission_id=sid or mover.new_submission_id(),
        label="bl931 copy dtn→cfs batch 1",
    )


def poll_until_finished(mover: GlobusMover, task_id: str, limit: int = 50) -> list[TaskStatus]:
    seen = []
    for _ in range(limit):
        status = mover.poll(task_id)
        seen.append(status)
        if status.finished:
            return seen
    raise AssertionError(f"task {task_id} never finished: {seen[-1]}")


# --------------------------------------------------------------------------- construction


def test_backend_implements_protocols_and_one_storage_per_endpoint(backend: GlobusBackend) -> None:
    assert set(backend.storages) == {"dtn", "cfs", "hpss"}
    assert all(isinstance(s, Storage) for s in backend.storages.values())
    assert isinstance(backend.mover, Mover)
    assert backend.mover.max_items_per_task == 50
    assert backend.mover.max_active_tasks == 3
    assert backend.mover.finishes_locally is False


def test_missing_credentials_name_the_variables_and_the_file_option(site: Site) -> None:
    with pytest.raises(ConfigError) as err:
        build_globus(site.config(), {"GLOBUS_CLIENT_ID": "abc"})
    text = str(err.value)
    assert "GLOBUS_CLIENT_SECRET" in text and "secrets_file" in text
    assert "GLOBUS_CLIENT_ID," not in text  # the id was given; only the secret is missing


def test_credentials_from_an_owner_only_secrets_file(site: Site, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        f'GLOBUS_CLIENT_ID = "{site.fake.client_id}"\n'
        f'GLOBUS_CLIENT_SECRET = "{site.fake.client_secret}"\n'
    )
    secrets.chmod(0o600)
    env = {k: v for k, v in site.fake.environ.items() if not k.startswith("GLOBUS_CLIENT")}
    b = build_globus(site.config(secrets_file=str(secrets)), env)
    try:
        assert b.storages["cfs"].list_scans(FILES, None) == {}
    finally:
        b.close()


def test_service_urls_from_the_process_environment(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """globus-sdk itself honours GLOBUS_SDK_SERVICE_URL_*, so the real CLI can use the fake."""
    for name, value in site.fake.environ.items():
        monkeypatch.setenv(name, value)
    b = build_globus(site.config(), None)
    try:
        write_scan(site, "2026/a.h5", b"abc")
        assert set(b.storages["dtn"].list_scans(FILES, ["2026/a.h5"])) == {"2026/a.h5"}
    finally:
        b.close()


# --------------------------------------------------------------------------- auth and scopes


def test_data_access_requested_up_front_for_mapped_collections_only(
    site: Site, tmp_path: Path
) -> None:
    guest = site.fake.add_collection(tmp_path / "guest", entity_type="GCSv5_guest_collection")
    config = site.config()
    config = config.model_copy(
        update={
            "endpoints": {
                **config.endpoints,
                "extra": config.endpoints["cfs"].model_copy(update={"collection": guest}),
            }
        }
    )
    b = build_globus(config, site.fake.environ, max_sleep=0.01)
    try:
        b.storages["cfs"].list_scans(FILES, None)
        # Any later operation on any mapped collection needs no new token.
        b.storages["dtn"].list_scans(FILES, None)
        b.storages["hpss"].list_scans(FILES, None)
        b.mover.new_submission_id()
    finally:
        b.close()
    last = site.fake.token_requests[-1]
    for name in ("dtn", "cfs", "hpss"):
        assert data_access_scope(site.ids[name]) in last
    assert data_access_scope(guest) not in last
    assert len(site.fake.token_requests) == 2  # bootstrap token, then one with every scope


def test_consent_required_is_needs_human_naming_the_collection(
    site: Site, backend: GlobusBackend
) -> None:
    site.fake.deny_consent(site.ids["cfs"])
    with pytest.raises(EndpointUnavailable) as err:
        backend.storages["cfs"].list_scans(FILES, None)
    assert err.value.error_class is ErrorClass.NEEDS_HUMAN
    assert "cfs" in str(err.value) and site.ids["cfs"] in str(err.value)
    assert "data_access" in str(err.value)

    f = write_scan(site, "2026/a.h5", b"abc")
    with pytest.raises(NeedsHumanError) as submit_err:
        backend.mover.submit(copy_request(backend.mover, [file_item("a", f)]))
    assert "cfs (collection " + site.ids["cfs"] in str(submit_err.value)
    assert "docs/globus.md" in str(submit_err.value)


def test_missing_identity_mapping_is_needs_human(site: Site, backend: GlobusBackend) -> None:
    site.fake.unmap_identity(site.ids["hpss"])
    with pytest.raises(EndpointUnavailable) as err:
        backend.storages["hpss"].list_scans(FILES, ["2026/a.h5"])
    assert err.value.error_class is ErrorClass.NEEDS_HUMAN
    assert f"{site.fake.client_id}@clients.auth.globus.org" in str(err.value)
    assert "identity mapping" in str(err.value)


def test_refused_credentials_are_needs_human(site: Site) -> None:
    env = {**site.fake.environ, "GLOBUS_CLIENT_SECRET": "not-the-secret"}
    b = build_globus(site.config(), env, max_sleep=0.01)
    try:
        with pytest.raises(NeedsHumanError) as err:
            b.mover.new_submission_id()
    finally:
        b.close()
    assert "GLOBUS_CLIENT_SECRET" in str(err.value)


def test_expired_token_is_replaced_with_the_same_scopes(site: Site, backend: GlobusBackend) -> None:
    backend.storages["cfs"].list_scans(FILES, None)
    site.fake.expire_tokens()
    backend.begin_pass()
    assert backend.storages["cfs"].list_scans(FILES, None) == {}
    assert data_access_scope(site.ids["cfs"]) in site.fake.token_requests[-1]


def test_client_secret_never_in_logs_or_exceptions(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-VALUE-that-must-not-leak"
    caplog.set_level(logging.DEBUG)
    raised: list[BaseException] = []
    # Refused credentials: the token call fails.
    env = {**site.fake.environ, "GLOBUS_CLIENT_SECRET": secret}
    b = build_globus(site.config(), env, max_sleep=0.01)
    for call in (
        b.mover.new_submission_id,
        lambda: b.storages["cfs"].list_scans(FILES, None),
    ):
        with pytest.raises(Bl931Error) as err:
            call()
        raised.append(err.value)
    text = repr(b) + repr(b.session.__dict__)
    b.close()
    # Accepted credentials, then every kind of failure.
    site.fake.client_secret = secret
    b = build_globus(site.config(), env, max_sleep=0.01)
    try:
        f = write_scan(site, "2026/a.h5", b"abc")
        tid = b.mover.submit(copy_request(b.mover, [file_item("a", f)]))
        b.mover.poll(tid)
        site.fake.fail_next("ls", 5, 503)
        site.fake.deny_consent(site.ids["hpss"])
        for call in (
            lambda: b.storages["cfs"].list_scans(FILES, None),
            lambda: b.storages["hpss"].list_scans(FILES, None),
        ):
            with pytest.raises(Bl931Error) as err:
                call()
            raised.append(err.value)
    finally:
        b.close()
    for exc in raised:
        formatted = "".join(traceback.format_exception(exc))
        assert secret not in formatted and secret not in repr(exc)
    assert secret not in text
    logged = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records) + caplog.text
    assert caplog.records and secret not in logged


# --------------------------------------------------------------------------- listing


def test_listing_lists_each_parent_directory_once_per_pass(
    site: Site, backend: GlobusBackend
) -> None:
    wanted = []
    for d in range(3):
        for i in range(4):
            wanted.append(write_scan(site, f"2026/d{d}/s{i}.h5", b"x" * (i + 1)).path)
    storage = backend.storages["dtn"]
    backend.begin_pass()
    listing = storage.list_scans(FILES, wanted)
    assert set(listing) == set(wanted)
    assert storage.ls_calls == 3
    storage.list_scans(FILES, wanted[:2])
    assert storage.ls_calls == 3  # cached for the pass
    backend.begin_pass()
    storage.list_scans(FILES, wanted[:2])
    assert storage.ls_calls == 4  # one directory, listed afresh
    backend.end_pass()
    (site.dir("dtn") / wanted[0]).unlink()
    assert wanted[0] not in storage.list_scans(FILES, wanted[:2])  # outside a pass: afresh
    assert storage.ls_calls == 5


def test_listing_parses_sizes_and_mtimes(site: Site, backend: GlobusBackend) -> None:
    f = write_scan(site, "2026/a.h5", b"hello world", mtime=1_700_000_123.75)
    (site.dir("dtn") / "2026/.hidden").write_bytes(b"x")
    listing = backend.storages["dtn"].list_scans(FILES, None)
    assert set(listing) == {"2026/a.h5"}
    (stat,) = listing["2026/a.h5"].files
    assert stat.size == 11 and stat.mtime == 1_700_000_123.0
    assert listing["2026/a.h5"].signature == listing_signature([f])


def test_directory_scans_recurse_only_into_wanted_scans(site: Site, backend: GlobusBackend) -> None:
    for scan in ("2026/s1", "2026/s2", "2026/s3"):
        write_scan(site, f"{scan}/frame_0.h5", b"a")
        write_scan(site, f"{scan}/sub/frame_1.h5", b"bb")
    storage = backend.storages["dtn"]
    listing = storage.list_scans(DIRS, ["2026/s1"])
    assert set(listing) == {"2026/s1"}
    assert [f.path for f in listing["2026/s1"].files] == [
        "2026/s1/frame_0.h5",
        "2026/s1/sub/frame_1.h5",
    ]
    assert storage.ls_calls == 3  # the parent, the scan dir, its subdirectory
    backend.begin_pass()
    assert set(storage.list_scans(DIRS, None)) == {"2026/s1", "2026/s2", "2026/s3"}


def test_missing_subdirectory_is_absent_but_missing_root_is_unavailable(
    site: Site, backend: GlobusBackend
) -> None:
    assert backend.storages["cfs"].list_scans(FILES, ["2031/none.h5"]) == {}
    site.dir("cfs").rmdir()
    backend.begin_pass()
    for wanted in (None, ["2031/none.h5"]):
        with pytest.raises(EndpointUnavailable, match="does not exist"):
            backend.storages["cfs"].list_scans(FILES, wanted)


def test_listing_503_raises_endpoint_unavailable_never_empty(
    site: Site, backend: GlobusBackend
) -> None:
    write_scan(site, "2026/a.h5", b"abc")
    backend.storages["dtn"].list_scans(FILES, None)  # token and scopes in place
    backend.begin_pass()
    site.fake.fail_next("ls", 3, 503)  # more than the SDK's own two retries
    with pytest.raises(EndpointUnavailable) as err:
        backend.storages["dtn"].list_scans(FILES, ["2026/a.h5"])
    assert err.value.error_class is ErrorClass.TRANSIENT and "503" in str(err.value)
    assert set(backend.storages["dtn"].list_scans(FILES, ["2026/a.h5"])) == {"2026/a.h5"}


def test_directory_larger_than_one_listing_is_paged(site: Site) -> None:
    site.fake.max_ls_entries = 5
    names = [write_scan(site, f"2026/s{i:02}.h5", b"z").path for i in range(12)]
    b = site.backend()
    try:
        listing = b.storages["dtn"].list_scans(FILES, names[:1])
        assert set(listing) == set(names)
        assert site.fake.calls["ls"] == 3
    finally:
        b.close()


def test_partial_listing_raises(site: Site, backend: GlobusBackend) -> None:
    for i in range(6):
        write_scan(site, f"2026/s{i}.h5", b"z")
    site.fake.ls_partial = True
    with pytest.raises(EndpointUnavailable, match="partial"):
        backend.storages["dtn"].list_scans(FILES, ["2026/s0.h5"])


def test_tape_endpoint_gets_longer_timeouts(backend: GlobusBackend) -> None:
    assert backend.storages["hpss"].tape
    assert backend.storages["hpss"].timeout > backend.storages["cfs"].timeout


def test_stat_scan_is_a_fresh_listing(site: Site, backend: GlobusBackend) -> None:
    f = write_scan(site, "2026/a.h5", b"abc")
    storage = backend.storages["dtn"]
    backend.begin_pass()
    assert "2026/a.h5" in storage.list_scans(FILES, [f.path])
    (site.dir("dtn") / f.path).unlink()
    assert "2026/a.h5" in storage.list_scans(FILES, [f.path])  # this pass's cache
    assert storage.stat_scan(FILES, f.path) is None
    write_scan(site, "2026/d/x.h5", b"q")
    assert storage.stat_scan(DIRS, "2026/d") is not None
    assert storage.stat_scan(DIRS, "2026/gone") is None


# --------------------------------------------------------------------------- transfers


def test_batch_is_one_checksummed_task_with_progress_and_evidence(
    site: Site, backend: GlobusBackend
) -> None:
    site.fake.files_per_poll = 1
    scans = [
        write_scan(site, f"2026/s{i}.h5", bytes([i]) * (10 + i), 1_700_000_000 + i)
        for i in range(3)
    ]
    mover = backend.mover
    request = copy_request(mover, [file_item(f"act{i}", f) for i, f in enumerate(scans)])
    task_id = mover.submit(request)

    assert site.fake.calls["transfer"] == 1 and len(site.fake.tasks) == 1
    body = site.fake.tasks[task_id].body
    assert body["sync_level"] == 3 and body["verify_checksum"] and body["preserve_timestamp"]
    assert body["label"].startswith("bl931 copy dtn")
    assert "deadline" not in body  # Transfer extends its own while the task progresses
    assert body["submission_id"] == request.submission_id
    items = body["DATA"]
    assert [i["external_checksum"] for i in items] == [f.checksum for f in scans]
    assert {i["checksum_algorithm"] for i in items} == {"MD5"}
    assert items[0]["source_path"] == f"{ROOT}/2026/s0.h5"

    statuses = poll_until_finished(mover, task_id)
    assert [s.state for s in statuses] == ["active", "active", "succeeded"]
    assert [s.files_done for s in statuses] == [1, 2, 3]
    final = statuses[-1]
    assert final.bytes_done == final.bytes_total == sum(f.size for f in scans)

    listing = backend.storages["cfs"].list_scans(FILES, [f.path for f in scans])
    by_action = {r.action_id: r for r in final.results}
    for i, f in enumerate(scans):
        result = by_action[f"act{i}"]
        assert result.ok and result.evidence is not None
        ev = result.evidence
        assert (ev.level, ev.algorithm, ev.value, ev.task_id, ev.how) == (
            Level.CHECKSUM,
            "md5",
            f.checksum,
            task_id,
            "transfer",
        )
        # The evidence fingerprints exactly what a later listing of the copy shows.
        assert ev.signature == listing[f.path].signature
        assert (site.dir("cfs") / f.path).read_bytes() == (site.dir("dtn") / f.path).read_bytes()


def test_directory_scan_evidence_carries_the_scan_digest(
    site: Site, backend: GlobusBackend
) -> None:
    files = (write_scan(site, "2026/s1/a.h5", b"a"), write_scan(site, "2026/s1/b/c.h5", b"cc"))
    item = TransferItem("dir1", "2026/s1", files, "md5", recursive=True)
    mover = backend.mover
    (result,) = poll_until_finished(mover, mover.submit(copy_request(mover, [item])))[-1].results
    assert result.ok and result.evidence is not None
    assert result.evidence.value == scan_digest("md5", files)
    listing = backend.storages["cfs"].list_scans(DIRS, ["2026/s1"])
    assert result.evidence.signature == listing["2026/s1"].signature


def test_crash_between_submission_id_and_submit_gives_exactly_one_task(site: Site) -> None:
    f = write_scan(site, "2026/a.h5", b"abc")
    first = site.backend()
    sid = first.mover.new_submission_id()  # persisted by the reconciler, then the process dies
    first.close()

    after_restart = site.backend()
    request = copy_request(after_restart.mover, [file_item("a", f)], sid)
    task_id = after_restart.mover.submit(request)
    after_restart.close()
    # Crash after submit, before the task id was recorded: submitting again is harmless.
    again = site.backend()
    assert again.mover.submit(request) == task_id
    assert len(site.fake.tasks) == 1 and site.fake.calls["transfer"] == 2
    # A poll from yet another process, given the persisted request, answers per scan.
    status = poll_until_finished(again.mover, task_id)[-1]
    again.close()
    fresh = site.backend()
    assert not fresh.mover.knows(task_id)
    assert fresh.mover.poll(task_id).results == ()  # request unknown: state only
    fresh.mover.track(task_id, request)  # what the executor does with its persisted request
    assert fresh.mover.knows(task_id)
    status = fresh.mover.poll(task_id)
    fresh.close()
    assert status.state == "succeeded" and status.results[0].ok


def test_failed_task_counts_for_nothing(site: Site, backend: GlobusBackend) -> None:
    site.fake.fail_next_task("PERMISSION_DENIED", "Permission denied on destination")
    f = write_scan(site, "2026/a.h5", b"abc")
    mover = backend.mover
    status = poll_until_finished(mover, mover.submit(copy_request(mover, [file_item("a", f)])))[-1]
    assert status.state == "failed"
    assert "PERMISSION_DENIED" in (status.error or "")
    assert status.error_class is ErrorClass.NEEDS_HUMAN
    (result,) = status.results
    assert not result.ok and result.evidence is None


def test_inactive_task_fails_after_the_grace_and_is_cancelled(site: Site) -> None:
    clock = FakeClock(datetime.fromtimestamp(1_800_000_000, UTC))
    b = build_globus(
        site.config(), site.fake.environ, max_sleep=0.01, inactive_grace=600, clock=clock
    )
    try:
        site.fake.stall_next_task("ENDPOINT_ERROR")
        f = write_scan(site, "2026/a.h5", b"abc")
        task_id = b.mover.submit(copy_request(b.mover, [file_item("a", f)]))
        assert b.mover.poll(task_id).state == "active"
        clock.advance(300)
        assert b.mover.poll(task_id).state == "active"
        clock.advance(400)
        status = b.mover.poll(task_id)
    finally:
        b.close()
    assert status.state == "failed" and "ENDPOINT_ERROR" in (status.error or "")
    assert status.results and status.results[0].evidence is None
    assert site.fake.calls["cancel"] == 1


def test_delete_past_its_deadline_is_failed_and_cancelled(site: Site) -> None:
    clock = FakeClock(datetime.fromtimestamp(1_800_000_000, UTC))
    b = build_globus(site.config(deadline_hours=1), site.fake.environ, clock=clock)
    try:
        site.fake.stall_next_task()
        f = write_scan(site, "2026/a.h5", b"abc")
        request = TaskRequest(
            "delete", None, "dtn", (file_item("a", f),), b.mover.new_submission_id(), "bl931 d"
        )
        task_id = b.mover.submit(request)
        assert site.fake.tasks[task_id].body["deadline"]  # deletes keep `deadline_hours`
        clock.advance(3601)
        status = b.mover.poll(task_id)
    finally:
        b.close()
    assert status.state == "failed" and "deadline" in (status.error or "")
    assert site.fake.calls["cancel"] == 1


def test_a_transfer_has_no_deadline_of_bl931s_own(site: Site) -> None:
    """Transfer extends the deadline of a task submitted without one while it progresses; a
    copy is never failed for `deadline_hours` (stalls are bounded by `stall_hours`)."""
    clock = FakeClock(datetime.fromtimestamp(1_800_000_000, UTC))
    b = build_globus(site.config(deadline_hours=1), site.fake.environ, clock=clock)
    try:
        site.fake.fault_collection(site.ids["cfs"], "ENDPOINT_TOO_BUSY")
        f = write_scan(site, "2026/a.h5", b"abc")
        task_id = b.mover.submit(copy_request(b.mover, [file_item("a", f)]))
        clock.advance(3 * 3600)
        status = b.mover.poll(task_id)
    finally:
        b.close()
    assert status.state == "active" and status.fault == "ENDPOINT_TOO_BUSY"
    assert status.error_class is ErrorClass.TRANSIENT
    assert site.fake.calls["cancel"] == 0


def test_a_permission_fault_on_an_active_task_names_the_collections(
    site: Site, backend: GlobusBackend
) -> None:
    site.fake.fault_collection(site.ids["cfs"], "PERMISSION_DENIED")
    f = write_scan(site, "2026/a.h5", b"abc")
    mover = backend.mover
    status = mover.poll(mover.submit(copy_request(mover, [file_item("a", f)])))
    assert status.state == "active" and status.fault == "PERMISSION_DENIED"
    assert status.error_class is ErrorClass.NEEDS_HUMAN
    assert f"cfs (collection {site.ids['cfs']})" in (status.error or "")


def test_a_cancelled_task_ends_only_when_transfer_says_it_stopped(site: Site) -> None:
    """A delete past its deadline is cancelled; until Transfer shows it FAILED it may still
    remove files, so it stays in flight (its scans are settled from a listing afterwards)."""
    clock = FakeClock(datetime.fromtimestamp(1_800_000_000, UTC))
    b = build_globus(site.config(deadline_hours=1), site.fake.environ, clock=clock)
    try:
        site.fake.stall_next_task("PERMISSION_DENIED")
        site.fake.cancels_linger = 1
        f = write_scan(site, "2026/a.h5", b"abc")
        request = TaskRequest(
            kind="delete",
            source=None,
            target="dtn",
            items=(file_item("del-a", f),),
            submission_id=b.mover.new_submission_id(),
            label="bl931 delete dtn",
        )
        task_id = b.mover.submit(request)
        clock.advance(3601)
        lingering = b.mover.poll(task_id)
        ended = b.mover.poll(task_id)
    finally:
        b.close()
    assert lingering.state == "active" and "waiting for Transfer" in (lingering.error or "")
    assert not lingering.finished
    assert ended.state == "failed" and "deadline" in (ended.error or "")
    assert site.fake.calls["cancel"] == 2


def test_throttled_then_accepted(site: Site, backend: GlobusBackend) -> None:
    f = write_scan(site, "2026/a.h5", b"abc")
    site.fake.fail_next("submission_id", 1, 429)
    request = copy_request(backend.mover, [file_item("a", f)])
    site.fake.fail_next("transfer", 1, 429)
    task_id = backend.mover.submit(request)
    assert site.fake.calls["transfer"] == 2 and len(site.fake.tasks) == 1
    assert poll_until_finished(backend.mover, task_id)[-1].state == "succeeded"


def test_persistent_5xx_is_transient(site: Site, backend: GlobusBackend) -> None:
    backend.mover.new_submission_id()
    site.fake.fail_next("submission_id", 3, 503)
    with pytest.raises(TransientError, match="503"):
        backend.mover.new_submission_id()


def test_skipped_errors_attach_to_their_scans(site: Site, backend: GlobusBackend) -> None:
    site.fake.page_size = 1  # the SDK must follow markers across pages
    good = write_scan(site, "2026/good.h5", b"good")
    d1 = write_scan(site, "2026/dir/x.h5", b"x")
    gone = write_scan(site, "2026/dir/y.h5", b"y")
    (site.dir("dtn") / gone.path).unlink()
    items = [
        file_item("good", good),
        TransferItem("dir", "2026/dir", (d1, gone), "md5", recursive=True),
    ]
    mover = backend.mover
    status = poll_until_finished(mover, mover.submit(copy_request(mover, items)))[-1]
    assert status.state == "succeeded"
    results = {r.action_id: r for r in status.results}
    assert results["good"].ok and results["good"].evidence is not None
    assert not results["dir"].ok and "FILE_NOT_FOUND" in (results["dir"].error or "")
    assert "good.h5" not in (results["dir"].error or "")


def test_a_rewritten_file_fails_the_whole_task_but_only_its_scan(
    site: Site, backend: GlobusBackend
) -> None:
    """`external_checksum`: "a failure will cause the entire task to fail" (globus-sdk
    `TransferData.add_item`), `skip_source_errors` or not. Only the event names the file: only
    that scan fails (for a person), the others are sent again at once in a new batch."""
    site.fake.files_per_poll = 1
    first = write_scan(site, "2026/a.h5", b"aaaa")
    bad = write_scan(site, "2026/bad.h5", b"bad")
    bad = ScanFile(bad.path, bad.size, bad.mtime, "0" * 32)  # inventory disagrees with the bytes
    bad_prefix = write_scan(site, "2026/bad.h5.1", b"other")  # a name the bad one is a prefix of
    last = write_scan(site, "2026/z.h5", b"zzzz")
    items = [file_item(n, f) for n, f in (("a", first), ("bad", bad), ("b1", bad_prefix))]
    items.append(file_item("z", last))
    mover = backend.mover
    status = poll_until_finished(mover, mover.submit(copy_request(mover, items)))[-1]
    assert status.state == "failed"
    results = {r.action_id: r for r in status.results}
    assert not results["bad"].ok and results["bad"].error_class is ErrorClass.NEEDS_HUMAN
    assert "2026/bad.h5: CHECKSUM_MISMATCH" in (results["bad"].error or "")
    for innocent in ("a", "b1", "z"):
        result = results[innocent]
        assert not result.ok and result.retry_now, result
        assert result.error_class is ErrorClass.TRANSIENT
        assert "bad.h5" not in (result.error or "")
    assert not (site.dir("cfs") / bad.path).exists()


def test_a_failed_task_whose_events_name_no_file_fails_every_scan(
    site: Site, backend: GlobusBackend
) -> None:
    site.fake.fail_next_task("QUOTA_EXCEEDED", "quota exceeded")
    a = write_scan(site, "2026/a.h5", b"a")
    b = write_scan(site, "2026/b.h5", b"b")
    mover = backend.mover
    request = copy_request(mover, [file_item("a", a), file_item("b", b)])
    status = poll_until_finished(mover, mover.submit(request))[-1]
    assert status.state == "failed"
    assert all(not r.ok and not r.retry_now for r in status.results)
    assert all(r.error_class is ErrorClass.NEEDS_HUMAN for r in status.results)


def test_a_destination_checksum_mismatch_is_retried_by_globus(
    site: Site, backend: GlobusBackend
) -> None:
    site.fake.corrupt_next_copy = True
    a = write_scan(site, "2026/a.h5", b"a" * 10)
    mover = backend.mover
    status = poll_until_finished(mover, mover.submit(copy_request(mover, [file_item("a", a)])))
    assert status[-1].state == "succeeded" and status[-1].results[0].ok
    assert (site.dir("cfs") / a.path).read_bytes() == b"a" * 10


def test_unknown_task_is_lost(backend: GlobusBackend) -> None:
    backend.mover.new_submission_id()
    assert backend.mover.poll("00000000-0000-0000-0000-000000000000").state == "lost"


def test_batch_larger_than_the_limit_is_refused(site: Site) -> None:
    b = site.backend(max_items_per_task=2)
    try:
        items = [file_item(str(i), write_scan(site, f"2026/{i}.h5", b"x")) for i in range(3)]
        with pytest.raises(ValueError, match=r"1\.\.2"):
            b.mover.submit(copy_request(b.mover, items))
    finally:
        b.close()


# --------------------------------------------------------------------------- deletes


def test_delete_batch_is_one_task_of_the_manifest_files(site: Site, backend: GlobusBackend) -> None:
    a = write_scan(site, "2026/a.h5", b"a")
    d = write_scan(site, "2026/d/x.h5", b"x")
    user = site.dir("dtn") / "2026/d/analysis.h5"
    user.write_bytes(b"a user's, never copied")
    mover = backend.mover
    request = TaskRequest(
        kind="delete",
        source=None,
        target="dtn",
        items=(
            file_item("del-a", a),
            TransferItem("del-d", "2026/d", (d,), "md5", recursive=True),
            file_item("del-missing", ScanFile("2026/missing.h5", 1, 0, "x")),
        ),
        submission_id=mover.new_submission_id(),
        label="bl931 delete dtn batch 1",
    )
    task_id = mover.submit(request)
    assert mover.submit(request) == task_id
    body = site.fake.tasks[task_id].body
    assert body["recursive"] is False and body["ignore_missing"] is True
    assert body["interpret_globs"] is False
    assert [i["path"] for i in body["DATA"]] == [
        f"{ROOT}/2026/a.h5",
        f"{ROOT}/2026/d/x.h5",
        f"{ROOT}/2026/missing.h5",
    ]
    status = poll_until_finished(mover, task_id)[-1]
    assert status.state == "succeeded" and all(r.ok for r in status.results)
    assert {r.action_id: r.removed for r in status.results}["del-d"] == ("2026/d/x.h5",)
    assert not (site.dir("dtn") / "2026/a.h5").exists()
    assert not (site.dir("dtn") / "2026/d/x.h5").exists()
    assert user.exists(), "a file beside the scan's files was deleted"


def test_a_delete_task_failing_part_way_says_only_that_it_failed(
    site: Site, backend: GlobusBackend
) -> None:
    """Transfer reports a FAILED task by its fatal error and counters, not by item: the mover
    fails every scan of it, and the executor finds out from a fresh listing what went."""
    files = [write_scan(site, f"2026/s{i}.h5", b"x") for i in range(3)]
    site.fake.fail_next_task("PERMISSION_DENIED", "Permission denied", after_items=1, kind="DELETE")
    mover = backend.mover
    request = TaskRequest(
        kind="delete",
        source=None,
        target="dtn",
        items=tuple(file_item(f"del-{i}", f) for i, f in enumerate(files)),
        submission_id=mover.new_submission_id(),
        label="bl931 delete dtn",
    )
    task_id = mover.submit(request)
    status = poll_until_finished(mover, task_id)[-1]
    doc = backend.session.transfer_client(10).get_task(task_id)
    assert doc["status"] == "FAILED" and doc["nice_status"] is None
    assert doc["fatal_error"]["code"] == "PERMISSION_DENIED" and doc["files_transferred"] == 1
    assert status.state == "failed" and status.error_class is ErrorClass.NEEDS_HUMAN
    assert [r.ok for r in status.results] == [False, False, False]
    assert [(site.dir("dtn") / f.path).exists() for f in files] == [False, True, True]


def test_a_folder_item_without_recursive_fails_as_transfer_does(site: Site) -> None:
    """The fake follows `DeleteData.add_item`: a folder needs `recursive`."""
    (site.dir("dtn") / "2026/folder").mkdir(parents=True)
    backend = site.backend()
    try:
        client = backend.session.transfer_client(10)
        backend.session.ensure_scopes(client)
        data = {
            "DATA_TYPE": "delete",
            "endpoint": site.ids["dtn"],
            "submission_id": client.get_submission_id()["value"],
            "DATA": [{"DATA_TYPE": "delete_item", "path": f"{ROOT}/2026/folder"}],
        }
        task_id = client.submit_delete(data)["task_id"]
        doc = client.get_task(task_id)
        assert doc["status"] == "FAILED" and doc["fatal_error"]["code"] == "NOT_A_FILE"
        assert (site.dir("dtn") / "2026/folder").is_dir()
    finally:
        backend.close()


def test_find_task_tells_an_accepted_submission_from_one_that_never_arrived(
    site: Site, backend: GlobusBackend
) -> None:
    a = write_scan(site, "2026/a.h5", b"a")
    mover = backend.mover

    def request(sid: str) -> TaskRequest:
        return TaskRequest(
            kind="delete",
            source=None,
            target="dtn",
            items=(file_item("del-a", a),),
            submission_id=sid,
            label="bl931 delete at dtn: 1 scans 2026-11-25 12:00 " + "x" * 120,
        )

    sent, never_sent = request(mover.new_submission_id()), request(mover.new_submission_id())
    task_id = mover.submit(sent)
    assert site.fake.tasks[task_id].label is not None
    assert len(site.fake.tasks[task_id].label or "") <= 128
    assert mover.find_task(sent) == task_id
    assert mover.find_task(never_sent) is None
    copy = copy_request(mover, [file_item("c", a)], sid=sent.submission_id)
    assert mover.find_task(copy) is None, "a delete's marker matched a transfer lookup"
    site.fake.fail_next("task_list", 3, 503)
    with pytest.raises(TransientError):
        mover.find_task(sent)


def test_a_fault_on_an_unrecognised_path_fails_every_scan_of_the_task(
    site: Site, backend: GlobusBackend
) -> None:
    a, b = write_scan(site, "2026/a.h5", b"a"), write_scan(site, "2026/b.h5", b"b")
    mover = backend.mover
    task_id = mover.submit(copy_request(mover, [file_item("a", a), file_item("b", b)]))
    task = site.fake.tasks[task_id]
    task.pending = [
        *task.pending[:1],
        {**task.pending[1], "source_path": f"{ROOT}/2026/elsewhere.h5"},
    ]
    status = poll_until_finished(mover, task_id)[-1]
    assert status.state == "succeeded"
    assert not any(r.ok for r in status.results)


def test_retry_after_beyond_the_sdk_cap_holds_that_collection_back_only(site: Site) -> None:
    """429 with `Retry-After: 30`: the SDK sleeps at most `max_sleep` per retry and gives up;
    bl931 sends nothing more to that collection for 30 s, while other endpoints go on."""
    clock = FakeClock(datetime.fromtimestamp(1_800_000_000, UTC))
    b = build_globus(site.config(), site.fake.environ, clock=clock, max_sleep=0.01)
    try:
        write_scan(site, "2026/a.h5", b"a")
        site.fake.fail_next("ls", 3, 429, retry_after=30)
        with pytest.raises(EndpointUnavailable) as first:
            b.storages["dtn"].list_scans(FILES)
        assert first.value.error_class is ErrorClass.TRANSIENT
        asked = site.fake.calls["ls"]
        with pytest.raises(EndpointUnavailable, match="Retry-After"):
            b.storages["dtn"].list_scans(FILES)
        assert site.fake.calls["ls"] == asked  # nothing sent while the wait lasts
        assert b.storages["cfs"].list_scans(FILES) == {}  # another collection goes on
        clock.advance(31)
        assert set(b.storages["dtn"].list_scans(FILES)) == {"2026/a.h5"}
    finally:
        b.close()


def test_a_missing_root_needs_a_person_naming_collection_and_path(
    site: Site, backend: GlobusBackend
) -> None:
    os.rmdir(site.dir("cfs"))
    with pytest.raises(EndpointUnavailable) as caught:
        backend.storages["cfs"].list_scans(FILES)
    assert caught.value.error_class is ErrorClass.NEEDS_HUMAN
    assert ROOT in str(caught.value) and site.ids["cfs"] in str(caught.value)


def test_close_closes_the_transports_it_built(site: Site) -> None:
    b = site.backend()
    transports = [s._client.transport for s in b.storages.values()]
    closed: list[object] = []
    for transport in transports:
        original = transport.close

        def close(t: Any = transport, o: Any = original) -> None:
            closed.append(t)
            o()

        transport.close = close  # type: ignore[method-assign]
    b.close()
    assert all(t in closed for t in transports)


def test_stat_of_one_file_scan_asks_transfer_for_that_name_only(
    site: Site, backend: GlobusBackend
) -> None:
    for i in range(50):
        write_scan(site, f"2026/s{i:02d}.h5", b"x")
    listing = backend.storages["dtn"].stat_scan(FILES, "2026/s07.h5")
    assert listing is not None and [f.path for f in listing.files] == ["2026/s07.h5"]
    assert backend.storages["dtn"].stat_scan(FILES, "2026/nope.h5") is None

"""Globus API calls per pass and tasks per 10,000 new scans, against the fake Transfer API.

Runs the real globus-sdk `TransferClient` (through `build_globus`) against
`tests/fakes/transfer_api.py` on 127.0.0.1 and counts requests per route:

1. 10,000 new scans (one file each, in 100 directories) are copied DTN → CFS in batches of
   `[globus] max_items_per_task`; we count tasks submitted and API calls.
2. A steady-state pass: every scan present on both endpoints, `max_active_tasks` tasks in flight
   (new scans arriving). The pass lists both endpoints for all 10,000 scans and polls each
   active task once. Target: API calls ≤ directories listed + active tasks.
3. The baseline, the system bl931 replaces: one task per file (`submit_transfer` fetching its
   own submission id, `task_wait`, then `get_task` for metrics) and a name-only `operation_ls`
   of the parent directory on both endpoints before each prune. It is measured on a sample of
   files and scaled to 10,000 (its cost is strictly per file).

4. Time to first copy: a backlog of old scans (the first sync) drains through the reconciler
   (`Reconciler.reconcile_once`, in process, on a fake clock, one pass a minute, each task
   moving `--files-per-poll` files per poll); one pass after it starts, a new scan appears. We
   count the passes until its copy is verified, and API calls per pass while the backlog drains.

5. The service's steady passes with the rolling re-verification slice
   (`engine/incremental/remote_slice.py`): the same 10,000 settled scans on two Globus endpoints
   that are neither the inventory endpoint nor tape, `reverify_days` 7, one pass a minute for
   `--slice-days` simulated days, and the scans of the active tasks unsettled (listed every
   pass). Each pass asks `GlobusStorage.list_scans` for what `RemoteSlice.wanted` returns, as
   the observer does; we count `ls` calls per pass and the longest gap between two listings of
   a folder.

Usage: `python bench/globus_calls.py [--scans 10000] [--dirs 100] [--sample 300]
[--backlog 10000] [--slice-days 1]` (`--backlog 0` skips part 4, `--slice-days 0` part 5). The
last line is machine-readable: `api_calls_per_pass=N dirs=D active_tasks=T
tasks_for_10000_new=K backlog=B first_copy_passes=P sliced_ls_per_pass=S
sliced_expected=E unsettled_dirs=U`.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import globus_sdk

from engine.backends import build_backends
from engine.clock import FakeClock
from engine.config import parse_config
from engine.incremental.remote_slice import RemoteSlice
from engine.layout import ScanLayout
from engine.model import ActionKind, InFlight, Plan, Scan, ScanFile
from engine.policy import Policy
from engine.reconciler import Reconciler
from engine.state import StateStore
from engine.storage.base import TaskRequest, TransferItem
from engine.storage.globus import GlobusMover, build_globus
from tests.fakes.transfer_api import FakeTransferAPI

ROOT = "/data/bl931/raw"
LAYOUT = ScanLayout(unit="file", include=("**/*",), exclude=("**/.*",))


def make_scans(root: Path, count: int, dirs: int, prefix: str = "") -> list[ScanFile]:
    """`count` one-file scans spread over `dirs` directories below `root`."""
    scans = []
    for i in range(count):
        rel = f"{prefix}2026/d{i % dirs:03}/scan_{i:06}.h5"
        payload = f"scan {prefix}{i}\n".encode()
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))
        scans.append(
            ScanFile(rel, len(payload), 1_700_000_000 + i, hashlib.md5(payload).hexdigest())
        )
    return scans


def batches(scans: list[ScanFile], size: int) -> list[list[ScanFile]]:
    return [scans[i : i + size] for i in range(0, len(scans), size)]


def submit(mover: GlobusMover, batch: list[ScanFile], n: int) -> str:
    items = tuple(TransferItem(f"a-{f.path}", f.path, (f,), "md5") for f in batch)
    request = TaskRequest(
        "copy", "dtn", "cfs", items, mover.new_submission_id(), f"bl931 copy dtn-cfs batch {n}"
    )
    return mover.submit(request)


def baseline_per_file(fake: FakeTransferAPI, ids: dict[str, str], sample: list[ScanFile]) -> float:
    """API calls per file of the replaced system: one task per file, polled, name-checked."""
    app = globus_sdk.ClientApp(
        "baseline",
        login_client=globus_sdk.ConfidentialAppAuthClient(
            client_id=fake.client_id, client_secret=fake.client_secret, base_url=fake.url + "/"
        ),
        config=globus_sdk.GlobusAppConfig(token_storage="memory"),
    )
    tc = globus_sdk.TransferClient(app=app, base_url=fake.url + "/")
    tc.add_app_data_access_scope(list(ids.values()))
    tc.get_submission_id()  # token in place before counting
    before = sum(fake.calls.values())
    for f in sample:
        data = globus_sdk.TransferData(
            ids["dtn"], ids["cfs"], label=Path(f.path).stem, sync_level="checksum"
        )
        data.add_item(f"{ROOT}/{f.path}", f"{ROOT}/{f.path}")
        task_id = tc.submit_transfer(data)["task_id"]  # fetches its own submission id
        tc.task_wait(task_id, timeout=5, polling_interval=1)
        tc.get_task(task_id)  # bytes and rate for metrics
        parent = f"{ROOT}/{os.path.dirname(f.path)}"
        for endpoint in ("dtn", "cfs"):  # prune_one_safe: the name exists at source and check
            names = {e["name"] for e in tc.operation_ls(ids[endpoint], path=parent)}
            assert os.path.basename(f.path) in names
    calls = sum(fake.calls.values()) - before
    tc.close()
    app.close()
    return calls / len(sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=10_000)
    parser.add_argument("--dirs", type=int, default=100)
    parser.add_argument("--sample", type=int, default=300, help="files for the baseline")
    parser.add_argument("--max-items-per-task", type=int, default=1000)
    parser.add_argument("--backlog", type=int, default=10_000, help="old scans (part 4)")
    parser.add_argument("--files-per-poll", type=int, default=250)
    parser.add_argument("--slice-days", type=float, default=1.0, help="part 5 (0: skip)")
    parser.add_argument("--reverify-days", type=float, default=7.0)
    args = parser.parse_args()
    first_copy = time_to_first_copy(args.backlog, args.files_per_poll) if args.backlog else None

    with tempfile.TemporaryDirectory() as tmp, FakeTransferAPI() as fake:
        base = Path(tmp)
        ids = {name: fake.add_collection(base / name) for name in ("dtn", "cfs")}
        (base / "cfs" / ROOT.lstrip("/")).mkdir(parents=True)
        config = parse_config(
            {
                "endpoints": {
                    name: {"kind": "globus", "collection": cid, "root": ROOT}
                    for name, cid in ids.items()
                },
                "copy": [{"from": "dtn", "to": "cfs"}],
                "globus": {"max_items_per_task": args.max_items_per_task},
            }
        )
        backend = build_globus(config, fake.environ)
        mover = backend.mover
        started = time.perf_counter()
        scans = make_scans(base / "dtn" / ROOT.lstrip("/"), args.scans, args.dirs)
        print(f"wrote {len(scans)} scans in {args.dirs} directories", file=sys.stderr)

        # 1. New scans: one task per batch.
        mover.new_submission_id()  # token and data_access scopes, once per process
        fake.calls.clear()
        task_ids = [
            submit(mover, b, n) for n, b in enumerate(batches(scans, mover.max_items_per_task))
        ]
        polls = 0
        for task_id in task_ids:
            while True:
                polls += 1
                status = mover.poll(task_id)
                if status.finished:
                    assert status.state == "succeeded", status
                    assert all(r.ok and r.evidence for r in status.results)
                    break
        copy_calls = sum(fake.calls.values())
        tasks_new = fake.calls["transfer"]
        print(
            f"copy of {len(scans)} new scans: {tasks_new} tasks, {copy_calls} API calls "
            f"({dict(fake.calls)}), {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )

        # 2. Steady state: everything copied, `max_active_tasks` tasks in flight.
        arriving = make_scans(
            base / "dtn" / ROOT.lstrip("/"), 3 * mover.max_active_tasks, 3, "new/"
        )
        fake.files_per_poll = 1  # keep them active through the pass
        active = [submit(mover, b, n) for n, b in enumerate(batches(arriving, 3))]
        backend.begin_pass()
        fake.calls.clear()
        wanted = [f.path for f in scans]
        listings = {name: backend.storages[name].list_scans(LAYOUT, wanted) for name in ids}
        for task_id in active:
            assert not mover.poll(task_id).finished
        pass_calls = sum(fake.calls.values())
        dirs_listed = fake.calls["ls"]
        assert all(len(listings[name]) >= len(scans) for name in ids)
        print(
            f"steady-state pass: {pass_calls} API calls ({dict(fake.calls)}) for "
            f"{len(scans)} scans x {len(ids)} endpoints",
            file=sys.stderr,
        )
        sliced = (
            sliced_passes(fake, backend, config, scans, arriving, args) if args.slice_days else None
        )
        backend.close()

        # 3. Baseline: one task per file, measured on a sample.
        per_file = baseline_per_file(fake, ids, scans[: args.sample])
        print(
            f"baseline (one task per file, measured on {args.sample} files): {per_file:.1f} "
            f"API calls per file -> {per_file * len(scans):,.0f} calls and {len(scans):,} tasks "
            f"for {len(scans):,} scans",
            file=sys.stderr,
        )
        expected_tasks = math.ceil(len(scans) / mover.max_items_per_task)
        verdict = (
            "OK"
            if pass_calls <= dirs_listed + len(active) and tasks_new == expected_tasks
            else "MISSED"
        )
        print(
            f"targets: pass calls <= dirs + active ({dirs_listed} + {len(active)}); "
            f"tasks == ceil({len(scans)}/{mover.max_items_per_task}) = {expected_tasks}: {verdict}",
            file=sys.stderr,
        )
        print(
            f"api_calls_per_pass={pass_calls} dirs={dirs_listed} active_tasks={len(active)} "
            f"tasks_for_10000_new={tasks_new} backlog={args.backlog} "
            f"first_copy_passes={first_copy if first_copy is not None else '-'}"
            + (
                f" sliced_ls_per_pass={sliced[0]:.2f} sliced_expected={sliced[1]:.2f} "
                f"unsettled_dirs={sliced[2]}"
                if sliced is not None
                else ""
            )
        )


def sliced_passes(
    fake: FakeTransferAPI,
    backend: object,
    config: object,
    scans: list[ScanFile],
    arriving: list[ScanFile],
    args: argparse.Namespace,
) -> tuple[float, float, int]:
    """Part 5: `ls` calls per steady pass with the rolling slice; returns (measured per pass,
    expected = unsettled folders x endpoints + folders x endpoints / (reverify minutes),
    unsettled folders)."""
    from engine.storage.globus import GlobusBackend

    assert isinstance(backend, GlobusBackend)
    policy = Policy.from_config(config)  # type: ignore[arg-type]
    start = datetime(2030, 1, 1, tzinfo=UTC)
    known = {
        f.path: Scan(f.path, (f,), start, "md5", f.checksum or "") for f in (*scans, *arriving)
    }
    unsettled = frozenset(f.path for f in arriving)  # the active tasks' scans
    unsettled_dirs = len({os.path.dirname(s) for s in unsettled})
    flights = tuple(  # the plan of a pass with these copies in flight
        InFlight(f"a-{s}", ActionKind.COPY, s, "dtn", "cfs") for s in sorted(unsettled)
    )
    names = tuple(backend.storages)
    remote = RemoteSlice(args.reverify_days)
    last: dict[tuple[str, str], datetime] = {}
    worst = 0.0
    passes = int(args.slice_days * 24 * 60)
    now = start
    calls = 0
    started = time.perf_counter()
    for n in range(passes + 1):
        remote.begin(now, known, (), policy, frozenset(names), "file")
        backend.begin_pass()
        before = fake.calls["ls"]
        for name in names:
            wanted = remote.wanted(name)
            backend.storages[name].list_scans(LAYOUT, known.keys() if wanted is None else wanted)
            for folder in {os.path.dirname(s) for s in (known if wanted is None else wanted)}:
                if (name, folder) in last:
                    age = (now - last[(name, folder)]).total_seconds() / 86400
                    worst = max(worst, age)
                last[(name, folder)] = now
            remote.merge(name, {}, known)
        backend.end_pass()
        if n:  # the first pass lists everything
            calls += fake.calls["ls"] - before
        remote.end(Plan(as_of=now, actions=(), blocked=(), in_flight=flights))
        now += timedelta(minutes=1)
    folders = len({os.path.dirname(f.path) for f in scans})
    per_pass = calls / passes
    expected = unsettled_dirs * len(names) + folders * len(names) / (args.reverify_days * 1440)
    print(
        f"steady passes with the slice ({args.slice_days:g} simulated days, one a minute, "
        f"reverify_days {args.reverify_days:g}): {per_pass:.2f} ls per pass for {len(names)} "
        f"endpoints (expected {expected:.2f} = {unsettled_dirs} unsettled folders x "
        f"{len(names)} + {folders * len(names)} folders / {args.reverify_days * 1440:g} "
        f"minutes); longest gap between listings of a folder {worst:.2f} days "
        f"(only gaps within the run); {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return per_pass, expected, unsettled_dirs


def time_to_first_copy(backlog: int, files_per_poll: int) -> int:
    """Passes (one a minute) from a new scan's appearance to its verified copy while `backlog`
    old scans drain; prints the calls per pass."""
    start = datetime(2030, 1, 1, tzinfo=UTC)
    clock = FakeClock(start)
    with tempfile.TemporaryDirectory() as tmp, FakeTransferAPI(clock=clock) as fake:
        base = Path(tmp)
        ids = {name: fake.add_collection(base / name) for name in ("dtn", "cfs")}
        (base / "cfs" / "raw").mkdir(parents=True)
        dtn = base / "dtn" / "raw"
        make_scans(dtn, backlog, max(1, backlog // 1000), "old/")
        fake.files_per_poll = files_per_poll
        config = parse_config(
            {
                "state": {"path": str(base / "state.sqlite")},
                "inventory": {"quiet_seconds": 0},
                "endpoints": {
                    "dtn": {
                        "kind": "globus",
                        "collection": ids["dtn"],
                        "root": "/raw",
                        "path": str(dtn),
                    },
                    "cfs": {"kind": "globus", "collection": ids["cfs"], "root": "/raw"},
                },
                "copy": [{"from": "dtn", "to": "cfs"}],
                "catalog": {"kind": "none"},
            }
        )
        backends = build_backends(config, environ=fake.environ, clock=clock)
        store = StateStore(config.state.path)
        reconciler = Reconciler(config, store, backends, clock=clock)
        started = time.perf_counter()
        reconciler.reconcile_once()
        print(
            f"backlog of {backlog} old scans: first pass {time.perf_counter() - started:.1f} s, "
            f"{len(fake.tasks)} tasks submitted",
            file=sys.stderr,
        )
        new = dtn / "new" / "scan_new.h5"
        new.parent.mkdir(parents=True)
        new.write_bytes(b"new scan\n")
        stamp = clock.now().timestamp()
        os.utime(new, (stamp, stamp))
        passes = 0
        calls: list[int] = []
        while passes < 1000:
            clock.advance(60)
            fake.calls.clear()
            reconciler.reconcile_once()
            passes += 1
            calls.append(sum(fake.calls.values()))
            if "new/scan_new.h5" in store.load_evidence().get("cfs", {}):
                break
        drained = sum(1 for t in fake.tasks.values() if t.status == "SUCCEEDED")
        print(
            f"new scan verified on CFS after {passes} pass(es) ({passes} simulated minutes) "
            f"while the backlog drained ({drained} of {len(fake.tasks)} tasks done); API calls "
            f"per pass: max {max(calls)}, last {calls[-1]}; entries the service read for ls: "
            f"{fake.ls_entries_read}",
            file=sys.stderr,
        )
        store.close()
        backends.close()
        return passes


if __name__ == "__main__":
    main()

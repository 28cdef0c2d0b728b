"""Recalls from a tape endpoint: `htar -xvf` of just the wanted members, checked, then placed.

Restores of several scans from one bundle run as one job (a bundle is read once, one tape
mount); jobs are submitted in bundle order, the order the bundles were written to tape. The job
extracts into a staging folder on the target (`.bl931-staging/<job name>/`), checks every member
against the manifest's acquisition checksums, and only then are the files moved into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import NeedsHumanError
from engine.model import ErrorClass, Evidence, FileStat, Level
from engine.storage.base import ItemResult, TaskRequest, listing_signature
from engine.storage.restore_target import marker_guard, missing_staged, sweep_unplaced
from engine.storage.tape_groups import job_name
from engine.storage.tape_script import Member, marked, restore_script
from engine.store import tape as tape_store

if TYPE_CHECKING:
    from engine.storage.tape import TapeMover


def plan_restores(mover: TapeMover, request: TaskRequest) -> list[tape_store.BundleRow]:
    ep = mover.endpoint
    store = ep.need_store()
    held = tape_store.held_scans(store, ep.name)
    by_bundle: dict[str, tuple[tape_store.BundleRow, list[dict[str, Any]], dict[str, str]]] = {}
    for item in request.items:
        entries = held.get(item.source_name or item.scan)
        if not entries:
            raise NeedsHumanError(f"{item.scan}: no verified bundle on {ep.name} holds it")
        bundle, checksum, detail = entries[-1]
        slot = by_bundle.setdefault(bundle.bundle, (bundle, [], {}))
        slot[1].extend(detail["files"])
        slot[2][item.scan] = checksum
    rows = []
    now = ep.clock()
    for name in sorted(by_bundle):  # bundle order: the order they were written to tape
        bundle, files, scans = by_bundle[name]
        key = f"{name}#restore-{request.submission_id[:8]}"
        manifest = {
            "archive": name,
            "target": request.target,
            "algorithm": bundle.manifest["algorithm"],
            "scans": scans,
            "members": files,
        }
        row = tape_store.BundleRow(
            ep.name,
            key,
            bundle.group,
            bundle.part,
            request.submission_id,
            job_name(name, "restore", request.submission_id),
            None,
            "restore",
            "submitting",
            None,
            None,
            manifest,
            now,
        )
        tape_store.add_bundle(store, row)
        rows.append(row)
    return rows


def _stage(mover: TapeMover, row: tape_store.BundleRow) -> Path:
    return mover.stage_roots[row.manifest["target"]] / ".bl931-staging" / row.job_name


def restore_job(mover: TapeMover, row: tape_store.BundleRow, members: list[Member]) -> str:
    script = restore_script(
        str(_stage(mover, row)), row.manifest["archive"], row.manifest["algorithm"], members
    )
    target = row.manifest["target"]
    guard = marker_guard(mover.endpoint.need_store(), target, mover.stage_roots[target])
    return script.replace("\n", "\n" + guard, 1)  # before the staging folder is made


def judge_restore(mover: TapeMover, row: tape_store.BundleRow, status: Any) -> list[ItemResult]:
    ep = mover.endpoint
    store = ep.need_store()
    now = ep.clock()
    scans = sorted(row.manifest["scans"])
    output = status.output or ""
    stage = _stage(mover, row)
    target = row.manifest["target"]
    checks = mover.recall_checks
    unproven = checks.target and checks.target(store, target, now)
    if unproven:  # unmounted or swapped since the hand-over: place and remove nothing there
        error = (
            f"recall job {row.job_id} not placed: {target} is not provably its storage ({unproven})"
        )
        tape_store.update_bundle(store, ep.name, row.bundle, state="failed", error=error)
        return [ItemResult(s, False, error, ErrorClass.TRANSIENT) for s in scans]
    if not status.ok or not marked(output, "SUMS OK"):
        error = (
            f"recall job {row.job_id} ended {status.state} with exit {status.exit_code}; "
            "nothing was placed"
        )
        tape_store.update_bundle(store, ep.name, row.bundle, state="failed", error=error)
        shutil.rmtree(stage, ignore_errors=True)
        return [ItemResult(s, False, error, ErrorClass.TRANSIENT) for s in scans]
    paths = [m["path"] for m in row.manifest["members"]]
    unseen = missing_staged(stage, paths) or (
        checks.staging and checks.staging(target, stage, paths)
    )
    if unseen:  # a Globus mount that does not show the collection: our staging goes, nothing else
        error = f"recall job {row.job_id} not placed: {unseen}"
        tape_store.update_bundle(store, ep.name, row.bundle, state="failed", error=error)
        shutil.rmtree(stage, ignore_errors=True)
        with contextlib.suppress(OSError):
            stage.parent.rmdir()  # `.bl931-staging`, if the job made it there and it is empty
        return [ItemResult(s, False, error, ErrorClass.TRANSIENT) for s in scans]
    root = mover.stage_roots[target]
    sweep_unplaced(lambda r: _stage(mover, r), tape_store.bundles(store, ep.name), target)
    results = []
    for scan in scans:
        files = []
        for m in row.manifest["members"]:
            if m["scan"] != scan:
                continue
            dest = root / m["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / m["path"], dest)
            st = dest.stat()
            files.append(FileStat(m["path"], st.st_size, st.st_mtime))
        evidence = Evidence(
            Level.CHECKSUM,
            row.manifest["algorithm"],
            row.manifest["scans"][scan],
            row.job_id,
            now,
            listing_signature(files),
            how="recall",
        )
        results.append(ItemResult(scan, True, evidence=evidence))
        tape_store.restore_done(store, scan, row.manifest["target"])
    tape_store.update_bundle(store, ep.name, row.bundle, state="done", finished_at=now)
    shutil.rmtree(stage, ignore_errors=True)
    return results

"""The `kind = "tape"` endpoint: scans archived in verified htar bundles (docs/hpss.md).

`TapeStorage` lists what verified bundles hold: the state store says which scans each verified
bundle holds (its manifest), one `hsi ls -l -R` per pass says which bundles are still there at
their verified size. Its `stat_scan` is the last look before a prune that relies on the tape
copy: `hsi ls -l` and `htar -tvf` of the scan's bundle (each bundle looked at once per pass),
compared with the manifest; a bundle that fails is marked broken, so its scans are bundled again.

`TapeMover` turns a batch of copies into bundles (engine/storage/tape_groups.py), persists each
bundle's deterministic name and job name before submitting and the job id right after, and
judges each finished job (`judge_archive`): the bundle counts only when the job COMPLETED with
exit 0, its in-job checksums of every member matched the manifest, htar wrote it with CRCs and
verified them, and its `htar -tvf` listing matches the manifest. A copy *from* the tape endpoint
is a recall (`engine/storage/tape_restore.py`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.clock import Clock
from engine.errors import EndpointUnavailable
from engine.layout import ScanLayout
from engine.model import FileStat, Scan
from engine.storage.base import ItemResult, ScanListing, TaskRequest, TaskStatus, listing_of
from engine.storage.mover_defaults import StoredTasks
from engine.storage.restore_target import RecallChecks
from engine.storage.tape_groups import bundle_name, cut_parts, group_of, job_name
from engine.storage.tape_identity import TapeIdentity, list_root
from engine.storage.tape_items import _item_scan, _items_by_scan, _renamed, _with_action
from engine.storage.tape_runner import RunnerHolds, TapeRunner
from engine.storage.tape_script import (
    MAX_HTAR_MEMBER,
    Member,
    archive_script,
    htar_can_store,
    parse_ls,
    parse_tvf,
)
from engine.store import tape as tape_store
from engine.store.connection import StoreBase

log = logging.getLogger(__name__)


class TapeEndpoint:
    """What the storage and the mover of one tape endpoint share."""

    def __init__(
        self,
        name: str,
        runner: TapeRunner,
        base: str,
        *,
        beamline: str,
        bundle_by: str,
        proposal_level: int,
        bundle_max_bytes: int,
        clock: Clock,
    ) -> None:
        self.name = name
        self.runner = runner
        self.base = base
        self.beamline = beamline
        self.bundle_by = bundle_by
        self.proposal_level = proposal_level
        self.bundle_max_bytes = bundle_max_bytes
        self.clock = clock
        self.store: StoreBase | None = None

    def attach(self, store: StoreBase) -> None:
        self.store = store

    def need_store(self) -> StoreBase:
        if self.store is None:
            raise EndpointUnavailable(self.name, "tape endpoint has no state store attached")
        return self.store


def members_of(detail: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(detail.get("files", []))


class TapeStorage:
    """Read access to a tape endpoint (see the module docstring)."""

    def __init__(self, endpoint: TapeEndpoint) -> None:
        self.endpoint = endpoint
        self.name = endpoint.name
        self._looked: dict[str, bool] = {}  # bundle → intact, this pass
        self.identity = TapeIdentity(endpoint)
        # Bundles found intact by this pass's listing, and whether any vanished: then a bundle
        # written later in the same pass is never what a last look relies on.
        self._listed: set[str] = set()
        self._vanished = False

    def attach(self, store: StoreBase) -> None:
        self.endpoint.attach(store)

    def check_identity(
        self, *, may_initialise: bool, user: str, now: datetime, fresh: bool = False
    ) -> None:
        """The endpoint's marker (engine/storage/tape_identity.py): checked afresh with `fresh`
        (each pass's observation), else once per pass (each last look reuses it)."""
        if self.identity.seen and not fresh:
            return
        self.identity.seen = False
        store = self.endpoint.need_store()
        self.identity.check(store, may_initialise=may_initialise, user=user, now=now)
        self.identity.seen = True

    def _ls(self, path: str, recursive: bool = False, fresh_ok: bool = False) -> dict[str, int]:
        flags = "-l -R" if recursive else "-l"
        done = self.endpoint.runner.command(["hsi", "-q", f"ls {flags} {path}"])
        if done.returncode != 0:
            if "No such file" in done.stderr and (fresh_ok or not recursive):
                return {}
            raise EndpointUnavailable(
                self.name,
                f"hsi ls {path} failed (exit {done.returncode}): {done.stderr.strip()[-300:]}",
            )
        return parse_ls(done.stdout)

    def list_scans(
        self, layout: ScanLayout, wanted: Collection[str] | None = None
    ) -> dict[str, ScanListing]:
        store = self.endpoint.need_store()
        self._looked = {}
        held = tape_store.held_scans(store, self.name)
        on_hpss = self._ls(self.endpoint.base, recursive=True, fresh_ok=not held)  # new: empty
        self.identity.seen = False
        self._listed, self._vanished = set(), False
        self.identity.holds(store, on_hpss)  # an emptied root is unknown, never "all missing"
        self.identity.seen = True
        out: dict[str, ScanListing] = {}
        broken: set[str] = set()
        for scan_key, entries in held.items():
            for bundle, _checksum, detail in reversed(entries):
                if _present(bundle, detail, on_hpss):
                    out[scan_key] = _listing(scan_key, detail)
                    self._listed.add(bundle.bundle)
                    break
                broken.add(bundle.bundle)
        self._vanished = bool(broken)
        if not store.readonly:
            for name in sorted(broken):
                log.error("%s: bundle %s is missing or not its verified size", self.name, name)
                tape_store.update_bundle(
                    store,
                    self.name,
                    name,
                    state="broken",
                    error="missing from hsi ls, or not the size it was verified at",
                )
        return out

    def stat_scan(self, layout: ScanLayout, scan: str) -> ScanListing | None:
        """The last look: the scan's newest bundle still listed, its index matching the manifest."""
        store = self.endpoint.need_store()
        if not self.identity.seen:
            self.identity.holds(store, list_root(self.endpoint))
            self.identity.seen = True
        entries = tape_store.held_scans(store, self.name).get(scan, [])
        for bundle, _checksum, detail in reversed(entries):
            if self._vanished and bundle.bundle not in self._listed:
                continue  # bundles vanished this pass: one written since proves nothing yet
            intact = self._looked.get(bundle.bundle)
            if intact is None:
                intact = self._look(bundle)
                self._looked[bundle.bundle] = intact
                if not intact and not store.readonly:
                    tape_store.update_bundle(
                        store,
                        self.name,
                        bundle.bundle,
                        state="broken",
                        error="the last look found it missing or not matching its manifest",
                    )
            if intact:
                return _listing(scan, detail)
        return None

    def _look(self, bundle: tape_store.BundleRow) -> bool:
        manifest = bundle.manifest
        in_tar = {m["path"]: m["size"] for m in manifest["members"] if m["via"] == "htar"}
        cput = [m for m in manifest["members"] if m["via"] == "cput"]
        if in_tar:
            sizes = self._ls(bundle.bundle)
            if sizes.get(bundle.bundle) != bundle.archive_size:
                log.error(
                    "%s: bundle %s missing or not its verified size", self.name, bundle.bundle
                )
                return False
            done = self.endpoint.runner.command(["htar", "-tvf", bundle.bundle])
            if done.returncode != 0 or parse_tvf(done.stdout) != in_tar:
                log.error("%s: htar -tvf %s does not match the manifest", self.name, bundle.bundle)
                return False
        return all(self._ls(m["hpss_path"]).get(m["hpss_path"]) == m["size"] for m in cput)

    def checksum_files(self, listing: ScanListing, algorithm: str) -> dict[str, str] | None:
        return None  # tape bytes are not re-read for a look; the bundle's evidence stands


def _present(
    bundle: tape_store.BundleRow, detail: Mapping[str, Any], on_hpss: Mapping[str, int]
) -> bool:
    in_tar = any(m["via"] == "htar" for m in members_of(detail))
    if in_tar and on_hpss.get(bundle.bundle) != bundle.archive_size:
        return False
    return all(
        on_hpss.get(m["hpss_path"]) == m["size"] for m in members_of(detail) if m["via"] == "cput"
    )


def _listing(scan_key: str, detail: Mapping[str, Any]) -> ScanListing:
    files = tuple(FileStat(m["listed_as"], m["size"], m["mtime"]) for m in members_of(detail))
    return listing_of(scan_key, files)


class TapeMover(RunnerHolds, StoredTasks):
    """Runs copies into (bundles) and out of (recalls) one tape endpoint."""

    endpoint: TapeEndpoint
    max_items_per_task = 100_000
    max_active_tasks = 1
    recall_checks = RecallChecks()  # a recall's target proven again before placing (set by build)

    def __init__(
        self,
        endpoint: TapeEndpoint,
        source_roots: Mapping[str, str],
        stage_roots: Mapping[str, Path],
    ) -> None:
        self.endpoint = endpoint
        self.name = f"tape:{endpoint.name}"
        self.finishes_locally = endpoint.runner.name == "local"
        self.source_roots = dict(source_roots)
        self.stage_roots = dict(stage_roots)

    def attach(self, store: StoreBase) -> None:
        self.endpoint.attach(store)

    def new_submission_id(self) -> str:
        return str(uuid.uuid4())

    def submit(self, request: TaskRequest) -> str:
        store = self.endpoint.need_store()
        rows = tape_store.bundles(store, self.endpoint.name, submission_id=request.submission_id)
        if not rows:
            if request.source == self.endpoint.name:
                from engine.storage.tape_restore import plan_restores

                rows = plan_restores(self, request)
            else:
                rows = self._plan_bundles(request)
        for row in rows:
            if row.job_id is not None:
                continue
            # After a crash between submit and recording the id: find the job, never resubmit.
            job_id = self.endpoint.runner.find(row.job_name)
            if job_id is None:
                job_id = self.endpoint.runner.submit(row.job_name, self._script(row, request))
            tape_store.update_bundle(
                store, self.endpoint.name, row.bundle, job_id=job_id, state="submitted"
            )
        return f"tape:{request.submission_id}"

    def _script(self, row: tape_store.BundleRow, request: TaskRequest) -> str:
        members = [Member(**{k: m[k] for k in Member.__slots__}) for m in row.manifest["members"]]
        if row.purpose == "restore":
            from engine.storage.tape_restore import restore_job

            return restore_job(self, row, members)
        assert request.source is not None
        return archive_script(
            self.source_roots[request.source],
            row.bundle,
            row.manifest["algorithm"],
            members,
            row.manifest,
        )

    def _plan_bundles(self, request: TaskRequest) -> list[tape_store.BundleRow]:
        store = self.endpoint.need_store()
        ep = self.endpoint
        now = ep.clock()
        scans = {item.scan: _item_scan(item) for item in request.items}
        targets = {item.scan: item.target_name or item.scan for item in request.items}
        by_group: dict[str, list[Scan]] = {}
        for scan in scans.values():
            by_group.setdefault(group_of(scan, ep.bundle_by, ep.proposal_level), []).append(scan)
        rows = []
        for group in sorted(by_group):
            part = tape_store.next_part(store, ep.name, group)
            for scans_in_part in cut_parts(by_group[group], ep.bundle_max_bytes):
                bundle = bundle_name(ep.base, ep.beamline, group, part)
                members = []
                for scan in scans_in_part:
                    for f in scan.files:
                        fits = htar_can_store(f.path) and f.size <= MAX_HTAR_MEMBER
                        members.append(
                            {
                                "scan": scan.id,
                                "path": f.path,
                                "listed_as": _renamed(f.path, scan.id, targets[scan.id]),
                                "size": f.size,
                                "mtime": int(f.mtime),
                                "checksum": f.checksum,
                                "via": "htar" if fits else "cput",
                                "hpss_path": bundle
                                if fits
                                else bundle.removesuffix(".tar") + ".files/" + f.path,
                            }
                        )
                manifest = {
                    "bundle": bundle,
                    "group": group,
                    "part": part,
                    "endpoint": ep.name,
                    "algorithm": request.items[0].checksum_algorithm,
                    "scans": {s.id: s.checksum for s in scans_in_part},
                    "kept_as": {s.id: targets[s.id] for s in scans_in_part},
                    "members": members,
                }
                row = tape_store.BundleRow(
                    ep.name,
                    bundle,
                    group,
                    part,
                    request.submission_id,
                    job_name(bundle, "archive", request.submission_id),
                    None,
                    "archive",
                    "submitting",
                    None,
                    None,
                    manifest,
                    now,
                )
                tape_store.add_bundle(store, row)  # persisted before the job is submitted
                rows.append(row)
                part += 1
        return rows

    # ---- poll --------------------------------------------------------------------------
    def poll(self, task_id: str) -> TaskStatus:
        store = self.endpoint.need_store()
        submission = task_id.removeprefix("tape:")
        rows = tape_store.bundles(store, self.endpoint.name, submission_id=submission)
        if not rows:
            return TaskStatus(task_id, "lost", error="no bundle recorded for this task")
        results: list[ItemResult] = []
        running = False
        for row in rows:
            if row.state in ("submitting",) or row.job_id is None:
                running = True
                continue
            status = self.endpoint.runner.status(row.job_id)
            if not status.state.terminal:
                running = True
                continue
            if row.purpose == "restore":
                from engine.storage.tape_restore import judge_restore

                results += judge_restore(self, row, status)
            else:
                from engine.storage.tape_judge import judge_archive

                results += judge_archive(self, row, status)
        if running:
            return TaskStatus(task_id, "active")
        by_action = _items_by_scan(store, submission)
        out = []
        for result in results:
            for action_id in by_action.get(result.action_id, ()):
                out.append(_with_action(result, action_id))
        ok = all(r.ok for r in out)
        return TaskStatus(
            task_id,
            "succeeded" if ok else "failed",
            results=tuple(out),
            error=None if ok else next(r.error for r in out if not r.ok),
        )

    def find_task(self, request: TaskRequest) -> str | None:
        store = self.endpoint.need_store()
        rows = tape_store.bundles(store, self.endpoint.name, submission_id=request.submission_id)
        if rows and all(r.job_id or self.endpoint.runner.find(r.job_name) for r in rows):
            return f"tape:{request.submission_id}"
        return None

    def cancel(self, task_id: str) -> None:
        from engine.storage.tape_cancel import cancel_jobs

        cancel_jobs(self.endpoint, task_id)

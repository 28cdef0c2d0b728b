"""Is a recall's target still its storage when the recall is placed?

A restore from tape runs as a job that extracts into a staging folder on the target
(`engine/storage/tape_restore.py`) and is judged later — by the next pass, or by the next
process after a crash. The target was proven when the job was handed over, but it may have been
unmounted since (a bare mount point: moving the staged files into place would create the scan's
folders on the disk below it) or another filesystem mounted there (the files would be placed on
it, and recorded as a verified copy at the endpoint). So the target's identity is checked again
right before anything is placed or removed there: a target that is not provably its storage gets
nothing, the job's scans fail as transient (planned again behind the next pass's identity check),
and the staging folder is left where it is (on the real filesystem, out of reach).

A Globus endpoint with a local `path` carries no marker: its mount is proven by the staged files
themselves, which the collection must list as the mount shows them (`mount_check`); if it does
not, the staging folder (the job's own, below the bare mount point or on the other filesystem)
is removed and nothing is placed.
"""

from __future__ import annotations

import json
import posixpath
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

from engine.errors import Bl931Error
from engine.storage.root_pin import MARKER_NAME
from engine.store import tape as tape_store

if TYPE_CHECKING:
    from engine.config import Config
    from engine.store.connection import StoreBase

# (store, endpoint, now) -> why the endpoint is not provably its storage, or None.
TargetCheck = Callable[["StoreBase", str, datetime], "str | None"]
# (target, staging folder, member paths) -> why the staged files are not on the target's storage.
StagingCheck = Callable[[str, Path, list[str]], "str | None"]


@dataclass(frozen=True, slots=True)
class RecallChecks:
    """What a tape mover asks before it places a recall (none: a mover built without a config)."""

    target: TargetCheck | None = None
    staging: StagingCheck | None = None


def identity_check(config: Config) -> TargetCheck:
    """The check of a local endpoint's marker (and mount) against the state store."""

    def check(store: StoreBase, endpoint: str, now: datetime) -> str | None:
        from engine.identity import IdentityCheck
        from engine.state import StateStore

        check = IdentityCheck(config, cast(StateStore, store), may_initialise=False)
        return check.unproven(endpoint, now=now)

    return check


def sweep_unplaced(
    stage_of: Callable[[tape_store.BundleRow], Path], rows: list[tape_store.BundleRow], target: str
) -> None:
    """Remove the staging folders that earlier recalls into `target` left because the target was
    not provably its storage when they were judged; called once the target is proven again."""
    for row in rows:
        if (
            row.purpose == "restore"
            and row.state == "failed"
            and row.manifest.get("target") == target
        ):
            shutil.rmtree(stage_of(row), ignore_errors=True)


def marker_guard(store: StoreBase, target: str, root: Path) -> str:
    """The first line of a recall job into `root`: exit 65 unless the target's identity marker
    (with the id the state store recorded) is there. A job that runs elsewhere and later (the
    `sfapi` runner) thus creates nothing below a mount point left bare since its hand-over. A
    target without a recorded marker (a Globus endpoint's mount) gets no line."""
    from engine.identity import load_identities
    from engine.state import StateStore

    known = load_identities(cast(StateStore, store)).get(target)
    if known is None:
        return ""
    marker, wanted = shlex.quote(str(root / MARKER_NAME)), shlex.quote(json.dumps(known.marker_id))
    return (
        f"grep -qF -- {wanted} {marker} 2>/dev/null "
        '|| { echo "BL931 TARGET UNPROVEN"; exit 65; }\n'
    )


def mount_check(config: Config, backends: object) -> StagingCheck:
    """For a Globus endpoint with a local `path` (no marker proves its mount): the collection must
    list every staged file, as the mount shows it (size, whole-second mtime), at the staging
    folder's place below its root. The staging folder's name is unique to the job, so a bare
    mount point or another filesystem at the mount cannot pass. Other targets pass."""

    def check(target: str, stage: Path, paths: list[str]) -> str | None:
        from engine.storage.globus_listing import GlobusStorage

        spec = config.endpoints.get(target)
        if spec is None or spec.kind != "globus" or spec.path is None:
            return None
        storage = backends.storages.get(target)  # type: ignore[attr-defined]
        if not isinstance(storage, GlobusStorage):
            return f"{target}: no Globus listing to check its mount {spec.path} against"
        rel = stage.relative_to(spec.path).as_posix()
        try:
            listed: dict[str, tuple[int, int]] = {}
            for folder in sorted({posixpath.dirname(f"{rel}/{p}") for p in paths}):
                for f in storage.folder_files(folder):
                    listed[f.path] = (f.size, int(f.mtime))
            for p in paths:
                st = (stage / p).stat()
                if listed.get(f"{rel}/{p}") != (st.st_size, int(st.st_mtime)):
                    return (
                        f"{target}: the collection does not list {p!r} as staged at {stage}: "
                        f"is it mounted at {spec.path}?"
                    )
        except (Bl931Error, OSError) as exc:
            return f"{target}: the staged files cannot be checked on the collection: {exc}"
        return None

    return check


def missing_staged(stage: Path, paths: list[str]) -> str | None:
    """Why the staged files cannot all be placed (one is gone), or None: checked before any is
    moved, so a recall is placed whole or not at all (and judging it never raises, which would
    leave `--reconcile --once` waiting on the task)."""
    gone = [p for p in paths if not (stage / p).is_file()]
    if gone:
        return f"{len(gone)} staged file(s) missing at {stage} (e.g. {gone[0]!r})"
    return None

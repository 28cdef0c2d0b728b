"""Writes to SciCat for one scan: the create (with its lifecycle), the datablock, the updates.

Each write names, when SciCat refuses it with a valid session, the setting to change (see
`scicat_refusals`). A dataset is created with its lifecycle in the same request, so no crash can
leave one without it; `PATCH /Datasets/{pid}/datasetlifecycle` merges (a plain `PATCH` carrying
`datasetlifecycle` would replace the sub-document), and `scientificMetadata` is patched whole,
merged with the keys others wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from pydantic import ValidationError
from pyscicat.model import CreateDatasetOrigDatablockDto, DataFile, RawDataset

from engine.catalog import scicat_refusals as refusals
from engine.catalog.base import Location
from engine.catalog.dataset import datablock_body, lifecycle_body, scientific_metadata
from engine.catalog.scicat_http import Conflict
from engine.catalog.scicat_session import Refusal
from engine.errors import TerminalError
from engine.model import Scan

if TYPE_CHECKING:
    from engine.catalog.scicat import ScicatCatalog

log = logging.getLogger(__name__)


class OrigDatablockBody(CreateDatasetOrigDatablockDto):
    """pyscicat's datablock DTO with `chkAlg` as the string the backend expects (int in 0.4.8)."""

    chkAlg: str | None = None


def create_dataset(
    catalog: ScicatCatalog, scan: Scan, body: dict[str, Any], lifecycle: Mapping[str, Any]
) -> tuple[str, dict[str, Any] | None]:
    pid = str(body["pid"])
    try:
        model = RawDataset.model_validate(body)
    except ValidationError as exc:
        fields = "\n".join(f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise TerminalError(f"{scan.id}: the dataset is invalid:\n{fields}") from None
    _check_owner_group(catalog)
    # pyscicat's model has no lifecycle: send it in the same request, so no crash can leave a
    # dataset without it.
    payload = {**model.model_dump(exclude_none=True), "datasetlifecycle": dict(lifecycle)}
    try:
        created = catalog.call(
            "post",
            "Datasets",
            payload,
            operation="create dataset",
            refusal=lambda r: refusals.cannot_create(
                pid, catalog.session.who, catalog.config.owner_group, r
            ),
        )
    except Conflict:
        # Created before a crash or a lost response: adopt it, then complete it.
        adopted = catalog.dataset(pid)
        if adopted is None:
            raise TerminalError(
                f"{scan.id}: SciCat says {pid} exists but does not return it"
            ) from None
        log.info("SciCat: %s existed already (409); adopting it", pid)
        return str(adopted["pid"]), adopted
    except TerminalError as exc:
        if "PID is not following required standards" in exc.message:
            raise refusals.pid_not_accepted(pid, catalog.config.pid_prefix, exc.message) from None
        raise
    pid = str(created["pid"]) if isinstance(created, dict) and "pid" in created else pid
    log.info("SciCat: registered %s as %s", scan.id, pid)
    return pid, None


def _check_owner_group(catalog: ScicatCatalog) -> None:
    """Refuse before creating a dataset the account could then not read (wrong ownerGroup)."""
    account = catalog.account()
    groups = account.get("currentGroups") if account else None
    if isinstance(groups, list) and catalog.config.owner_group not in groups:
        raise refusals.not_in_owner_group(
            catalog.config.owner_group, catalog.session.who, [str(g) for g in groups], None
        )


def _update_refusal(catalog: ScicatCatalog, pid: str) -> Refusal:
    return lambda r: refusals.cannot_update(pid, catalog.config.owner_group, catalog.session.who, r)


def ensure_datablock(catalog: ScicatCatalog, scan: Scan, pid: str, *, fresh: bool) -> None:
    if not scan.files:
        return
    path = f"Datasets/{quote_plus(pid)}/origdatablocks"
    if not fresh:
        blocks = catalog.call(
            "get", path, operation="list datablocks", refusal=_update_refusal(catalog, pid)
        )
        if blocks:
            return
        log.info("SciCat: completing %s (created before its datablock)", pid)
    block = datablock_body(scan)
    model = OrigDatablockBody(
        size=block["size"],
        chkAlg=block["chkAlg"],
        dataFileList=[DataFile(**entry) for entry in block["dataFileList"]],
    )
    catalog.call(
        "post", path, model, operation="create datablock", refusal=_update_refusal(catalog, pid)
    )


def merge_lifecycle(catalog: ScicatCatalog, pid: str, lifecycle: Mapping[str, Any]) -> None:
    # The sub-route merges; `PATCH /Datasets/{pid}` with `datasetlifecycle` would replace it.
    catalog.call(
        "patch",
        f"Datasets/{quote_plus(pid)}/datasetlifecycle",
        dict(lifecycle),
        operation="update lifecycle",
        refusal=_update_refusal(catalog, pid),
    )


def patch_locations(
    catalog: ScicatCatalog,
    scan: Scan,
    pid: str,
    current: Mapping[str, Any],
    locations: Sequence[Location],
) -> None:
    fields = catalog.template.extract(scan.id) if catalog.template else {}
    existing = dict(current.get("scientificMetadata") or {})
    made_for = (existing.get("beamline") or {}).get("value") or catalog.beamline
    ours = scientific_metadata(scan, locations, fields, beamline=str(made_for))
    # A PATCH replaces scientificMetadata whole: keep keys others wrote (and the beamline
    # the dataset was made for: it is how observations find it).
    merged = {**existing, **ours}
    catalog.call(
        "patch",
        f"Datasets/{quote_plus(pid)}",
        {"scientificMetadata": merged},
        operation="update locations",
        refusal=_update_refusal(catalog, pid),
    )
    # The central disk copy goes now: its real purge date is this update's.
    was_on_disk = (current.get("datasetlifecycle") or {}).get("isOnCentralDisk", True)
    pruned_at = catalog.clock.now() if was_on_disk else None
    merge_lifecycle(catalog, pid, lifecycle_body(locations, catalog.config, pruned_at=pruned_at))
    log.info("SciCat: %s now at %s", scan.id, ", ".join(x.endpoint for x in locations) or "nowhere")

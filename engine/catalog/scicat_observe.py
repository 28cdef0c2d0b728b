"""Which of bl931's scans SciCat holds: one listing, and never "nothing" when that is not proven.

bl931's datasets are listed a page at a time by `scientificMetadata.beamline` (an `inq` list: a
bare string would be turned into a Date by the backend's `WherePipe`), and each is matched to its
scan by `scientificMetadata.scan_id` and its pid (the one the state store recorded, else the one
bl931 derives), so another deployment's datasets are never taken for ours.

A listing that holds fewer of the scans the state store recorded as registered proves nothing by
itself: an expired token lists as *anonymous* (published datasets only, `200`). The session is
checked (`/auth/whoami`) and renewed, the listing repeated, and each pid still missing read
directly: only a 404 proves a dataset gone; a 403 is a dataset of another group (needs a person).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engine.catalog.dataset import scan_id_of
from engine.errors import NeedsHumanError

if TYPE_CHECKING:
    from engine.catalog.scicat import ScicatCatalog

log = logging.getLogger(__name__)

# Missing datasets read one by one before the whole observation is declared unknown instead.
MAX_DIRECT_CHECKS = 50


def _list_ours(catalog: ScicatCatalog, beamlines: Collection[str]) -> list[dict[str, Any]]:
    """Every dataset recording one of these beamlines, a page at a time."""
    where = {"scientificMetadata.beamline.value": {"inq": sorted(beamlines)}}
    docs: list[dict[str, Any]] = []
    skip = 0
    while True:
        page = catalog.query(where, skip=skip, limit=catalog.page_size)
        docs.extend(page)
        if len(page) < catalog.page_size:
            return docs
        skip += catalog.page_size


def registered_datasets(
    catalog: ScicatCatalog, wanted: Collection[str]
) -> dict[str, dict[str, Any]]:
    """Scan id → its dataset, for the scans among `wanted` that SciCat holds.

    Raises:
        NeedsHumanError: the listing lacks datasets the state store recorded and the session
            cannot be renewed, too many are missing to read one by one, or one belongs to
            another group.
        TransientError / TerminalError: SciCat could not be read.
    """
    recorded = catalog.pid_book.all()
    beamlines = {s.beamline for s in catalog.pid_book.settings_in_use()} | {catalog.beamline}
    found = _match(catalog, _list_ours(catalog, beamlines), wanted, recorded)
    missing = sorted(s for s in wanted if s in recorded and s not in found)
    if not missing:
        return found
    if catalog.account() is None:
        # An anonymous session lists published datasets only: it proves nothing.
        if not catalog.session.can_login:
            raise NeedsHumanError(
                f"SciCat listed {len(found)} of the {len(found) + len(missing)} datasets the "
                "state store recorded, and the configured token is not accepted (the backend "
                "reads it as anonymous); set a fresh SCICAT_TOKEN, or SCICAT_USERNAME and "
                "SCICAT_PASSWORD so bl931 can log in itself"
            )
        log.warning("SciCat answered an expired session as anonymous; logging in again")
        catalog.session.login()
        found = _match(catalog, _list_ours(catalog, beamlines), wanted, recorded)
        missing = sorted(s for s in wanted if s in recorded and s not in found)
    if len(missing) > MAX_DIRECT_CHECKS:
        raise NeedsHumanError(
            f"SciCat lists {len(missing)} fewer of bl931's datasets than the state store "
            f"recorded as registered (e.g. {recorded[missing[0]]} for {missing[0]}); the "
            "catalog is treated as unknown this pass. Check the account's groups and the "
            "datasets' ownerGroup"
        )
    for scan_id in missing:
        pid = recorded[scan_id]
        doc = catalog.dataset(pid)  # 403 here: another group's dataset (needs a person)
        if doc is None:
            log.warning("SciCat: %s (%s) is gone (404); it will be registered again", pid, scan_id)
        else:
            found[scan_id] = doc
    return found


def _match(
    catalog: ScicatCatalog,
    docs: Sequence[dict[str, Any]],
    wanted: Collection[str],
    recorded: Mapping[str, str],
) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    adopted: dict[str, str] = {}
    for doc in docs:
        scan_id = scan_id_of(doc)
        if scan_id is not None and scan_id in wanted and catalog.is_ours(doc, scan_id, recorded):
            found[scan_id] = doc
            if scan_id not in recorded:  # adopted (back-filled, or made before a crash)
                adopted[scan_id] = str(doc["pid"])
    catalog.pid_book.record_many(adopted, catalog.settings, catalog.clock.now())
    return found

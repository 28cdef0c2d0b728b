"""`[catalog]` config → the `Catalog` to use (or None when cataloguing is off)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from engine.catalog.base import Catalog
from engine.catalog.local import LocalCatalog
from engine.clock import as_clock
from engine.config import CatalogConfig, Config

log = logging.getLogger(__name__)


def resolved_catalog_config(config: Config) -> CatalogConfig:
    """The `[catalog]` section with `source_endpoint` defaulted to the first copy target.

    The source endpoint's path becomes the dataset's `sourceFolder` (CFS in production), so it
    must be the same in every pass and in both catalogs.
    """
    catalog = config.catalog
    if catalog.source_endpoint is not None:
        return catalog
    default = config.copies[0].to if config.copies else config.inventory_endpoint
    return catalog.model_copy(update={"source_endpoint": default})


def build_catalog(
    config: Config,
    environ: Mapping[str, str] | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
) -> Catalog | None:
    """Build the configured catalog.

    Nothing is contacted here: the local file is read on first use and SciCat is logged in to on
    first use, so an outage shows up in a pass (and blocks deletes) rather than at start-up.

    Args:
        config: the validated configuration.
        environ: where `SCICAT_*` variables are read from (default: `os.environ`).

    Returns:
        The catalog, or None for `kind = "none"`.

    Raises:
        ConfigError: `kind = "scicat"` without `SCICAT_URL` or credentials, or a malformed
            `path_template`.
    """
    catalog = resolved_catalog_config(config)
    if catalog.kind == "none":
        log.info('catalog disabled ([catalog] kind = "none")')
        return None
    if catalog.kind == "local":
        return LocalCatalog(
            catalog.path, catalog, beamline=config.beamline.name, clock=as_clock(clock)
        )
    from engine.catalog.scicat import ScicatCatalog

    return ScicatCatalog.from_environment(
        catalog, environ, beamline=config.beamline.name, clock=as_clock(clock)
    )


def local_catalog(config: Config) -> LocalCatalog | None:
    """The local catalog file of this config, if one exists: the source of a SciCat back-fill.

    A beamline that ran with `kind = "local"` and switches to `"scicat"` keeps `path`; this finds
    the documents to back-fill from.
    """
    catalog = resolved_catalog_config(config)
    path = catalog.path.expanduser()
    if not path.is_file():
        return None
    return LocalCatalog(path, catalog, beamline=config.beamline.name)

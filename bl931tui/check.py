"""`bl931tui --check`: a read-only probe of what the config points at, for operators and CI.

Exit 0 when every probed component is reachable and usable (warnings allowed), 1 when one failed,
78 for a configuration error (an invalid file, or missing SciCat variables). Nothing is written:
the state store is opened read-only (when it exists) to know which pids were registered.
"""

from __future__ import annotations

import sys

from engine.catalog.factory import build_catalog, resolved_catalog_config
from engine.catalog.pid_book import keep_pids_in
from engine.config import Config
from engine.state import StateStore


def run_check(config: Config) -> int:
    """Probe the catalog (the one component probed so far) and print one line per check.

    Raises:
        ConfigError: the catalog's configuration is incomplete (exit 78 in `main`).
    """
    print("config: ok")
    catalog_config = resolved_catalog_config(config)
    failed = False
    if catalog_config.kind == "none":
        print('catalog: off ([catalog] kind = "none")')
    elif catalog_config.kind == "local":
        path = catalog_config.path.expanduser()
        if path.parent.is_dir():
            print(f"catalog: ok (local file {path})")
        else:
            print(f"catalog: FAILED: the folder of the local catalog {path} does not exist")
            failed = True
    else:
        failed = _check_scicat(config)
    return 1 if failed else 0


def _check_scicat(config: Config) -> bool:
    from engine.catalog.scicat import ScicatCatalog
    from engine.catalog.scicat_probe import Verdict, probe_scicat

    catalog = build_catalog(config)
    assert isinstance(catalog, ScicatCatalog)
    store = StateStore(config.state.path, readonly=True) if config.state.path.exists() else None
    try:
        if store is not None:
            keep_pids_in(catalog, store)
        results = probe_scicat(catalog)
    finally:
        catalog.close()
        if store is not None:
            store.close()
    for result in results:
        print(f"catalog {result.check}: {result.verdict.value}: {result.message}")
    failed = any(r.verdict is Verdict.FAILED for r in results)
    if failed:
        print(
            "catalog: FAILED (see above; docs/catalog.md lists the SciCat settings)",
            file=sys.stderr,
        )
    return failed

"""`bl931tui --check [--json]`: probe what the config points at, for operators and deploy scripts.

One line per component: the config, each endpoint (reachable, identity, writable:
`engine/endpoint_probe.py`), the catalog and its account (`engine/catalog/scicat_probe.py`).
Exit 0 when every check passed (warnings allowed), 1 when one needs a person, 78 for a
configuration error (raised before anything is probed: an invalid file, missing Globus or SciCat
credentials). The state store is opened read-only (when it exists); markers are never written.
The only writes are the endpoints' probes, removed at once (see `engine/endpoint_probe.py`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from engine.catalog.factory import build_catalog, resolved_catalog_config
from engine.catalog.pid_book import keep_pids_in
from engine.catalog.scicat_probe import ProbeResult, Verdict
from engine.clock import SYSTEM_CLOCK
from engine.config import Config
from engine.endpoint_probe import EndpointReport, probe_globus, probe_local, writable_folder
from engine.reconciler import os_user
from engine.state import StateStore

EXIT_ALL_GOOD, EXIT_NEEDS_PERSON = 0, 1


def run_check(config: Config, *, as_json: bool = False) -> int:
    """Probe every endpoint and the catalog; print one line each (or one JSON document).

    Raises:
        ConfigError: credentials or catalog settings are incomplete (exit 78 in `main`).
    """
    catalog_config = resolved_catalog_config(config)  # a ConfigError before any probe
    endpoints = _probe_endpoints(config)
    catalog = _probe_catalog(config, catalog_config.kind)
    failed = any(e.verdict is Verdict.FAILED for e in endpoints) or any(
        c.verdict is Verdict.FAILED for c in catalog
    )
    code = EXIT_NEEDS_PERSON if failed else EXIT_ALL_GOOD
    source = str(config.source) if config.source is not None else None
    if as_json:
        doc: dict[str, Any] = {
            "config": {"path": source, "verdict": "ok"},
            "endpoints": [e.to_json() for e in endpoints],
            "catalog": [
                {"check": c.check, "verdict": c.verdict.value, "message": c.message}
                for c in catalog
            ],
            "exit": code,
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return code
    print(f"config: ok ({source})" if source else "config: ok")
    for report in endpoints:
        print(report.line())
    for result in catalog:
        print(_catalog_line(result))
    if failed:
        print("check: FAILED (see above; docs/operations.md explains each check)", file=sys.stderr)
    return code


def _probe_endpoints(config: Config) -> list[EndpointReport]:
    from bl931tui.session import readonly_store

    user, now = os_user(), SYSTEM_CLOCK()
    reports: dict[str, EndpointReport] = {}
    with readonly_store(config) as store:
        for name, spec in config.endpoints.items():
            if spec.kind == "local":
                reports[name] = probe_local(config, name, store, user, now)
    globus = [n for n, ep in config.endpoints.items() if ep.kind == "globus"]
    if globus:
        reports.update(_probe_globus(config, globus))
    return [reports[name] for name in config.endpoints if name in reports]


def _probe_globus(config: Config, names: list[str]) -> dict[str, EndpointReport]:
    from engine.storage.globus import build_globus

    backend = build_globus(config)  # ConfigError (78) when credentials are missing
    try:
        client = backend.session.transfer_client(60.0)
        return {
            name: probe_globus(
                name,
                str(config.endpoints[name].collection),
                str(config.endpoints[name].root),
                client,
                backend.session,
            )
            for name in names
        }
    finally:
        backend.close()


def _probe_catalog(config: Config, kind: str) -> list[ProbeResult]:
    if kind == "none":
        return [ProbeResult("catalog", Verdict.OK, 'off ([catalog] kind = "none")')]
    if kind == "local":
        path = resolved_catalog_config(config).path.expanduser()
        if path.parent.is_dir():
            user = os_user()
            why = "the service writes the catalog and its lock file there"
            problem = writable_folder(path.parent, user, why)
            if problem is not None:
                return [ProbeResult("catalog", Verdict.FAILED, problem)]
            return [
                ProbeResult(
                    "catalog", Verdict.OK, f"local file {path}; its folder writable by {user}"
                )
            ]
        return [
            ProbeResult(
                "catalog",
                Verdict.FAILED,
                f"the folder of the local catalog {path} does not exist",
            )
        ]
    return _probe_scicat(config)


def _catalog_line(result: ProbeResult) -> str:
    if result.check == "catalog":  # local or off: one line
        if result.verdict is Verdict.OK and result.message.startswith("off "):
            return f"catalog: {result.message}"
        if result.verdict is Verdict.OK:
            return f"catalog: ok ({result.message})"
        return f"catalog: {result.verdict.value}: {result.message}"
    return f"catalog {result.check}: {result.verdict.value}: {result.message}"


def _probe_scicat(config: Config) -> list[ProbeResult]:
    from engine.catalog.scicat import ScicatCatalog
    from engine.catalog.scicat_probe import probe_scicat

    catalog = build_catalog(config)
    assert isinstance(catalog, ScicatCatalog)
    store = StateStore(config.state.path, readonly=True) if config.state.path.exists() else None
    try:
        if store is not None:
            keep_pids_in(catalog, store)
        return probe_scicat(catalog)
    finally:
        catalog.close()
        if store is not None:
            store.close()

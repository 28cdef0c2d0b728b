"""A read-only probe of the SciCat account bl931 writes with (`--check` and service start-up).

Checks what can be checked without writing anything: that the account logs in and the backend
accepts the session (`/auth/whoami`), that it is in the `ownerGroup` bl931 writes (else SciCat
lets it create datasets it can then neither read nor update), that a pid bl931 owns can be read
(a 403 there is a dataset of another group), and whether `pid_prefix` looks like the site's
`PID_PREFIX` (learnt from the pids of datasets the account can see). That last one fails a new
deployment (nothing registered yet) and is only a warning for an existing one: its pids never
change. Changed catalog settings since datasets were registered are reported as warnings.

The create-with-pid permission (`CREATE_DATASET_WITH_PID_GROUPS`) cannot be read from the API; the
first register names it if it is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from engine.catalog import scicat_refusals as refusals
from engine.catalog.dataset import dataset_pid, scan_id_of
from engine.catalog.pid_book import settings_drift
from engine.catalog.scicat import ScicatCatalog
from engine.errors import Bl931Error

_UUID_TAIL = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
)


class Verdict(StrEnum):
    OK = "ok"
    WARNING = "warning"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    check: str
    verdict: Verdict
    message: str


def site_prefixes(docs: list[dict[str, Any]]) -> set[str]:
    """The pid prefixes of datasets bl931 did not make (server pids are `<PID_PREFIX><uuid>`)."""
    out = set()
    for doc in docs:
        pid = str(doc.get("pid", ""))
        if scan_id_of(doc) is None and _UUID_TAIL.search(pid):
            out.add(_UUID_TAIL.sub("", pid))
    return out


def probe_scicat(catalog: ScicatCatalog) -> list[ProbeResult]:
    """Every check, in order; stops after a failed login (nothing else can be learnt)."""
    results: list[ProbeResult] = []
    config = catalog.config
    try:
        account = catalog.account()
    except Bl931Error as exc:
        return [ProbeResult("login", Verdict.FAILED, exc.message)]
    if account is None:
        return [
            ProbeResult(
                "login",
                Verdict.FAILED,
                "SciCat reads the session as anonymous (/auth/whoami refused it): the token is "
                "expired or invalid; set a fresh SCICAT_TOKEN, or SCICAT_USERNAME and "
                "SCICAT_PASSWORD",
            )
        ]
    name = account.get("username") or catalog.session.who
    results.append(ProbeResult("login", Verdict.OK, f"logged in to {catalog.url} as {name}"))

    groups = account.get("currentGroups")
    if not isinstance(groups, list):
        results.append(ProbeResult("owner group", Verdict.WARNING, "whoami lists no groups"))
    elif config.owner_group in groups:
        results.append(
            ProbeResult("owner group", Verdict.OK, f"the account is in {config.owner_group!r}")
        )
    else:
        message = refusals.not_in_owner_group(
            config.owner_group, catalog.session.who, [str(g) for g in groups], None
        ).message
        results.append(ProbeResult("owner group", Verdict.FAILED, message))

    recorded = catalog.pid_book.all()
    pid = next(iter(recorded.values()), None) or dataset_pid(
        "bl931 --check", prefix=config.pid_prefix, beamline=catalog.beamline
    )
    try:
        found = catalog.dataset(pid)
        seen = "readable" if found is not None else "not there (404), as expected"
        if recorded and found is None:
            results.append(
                ProbeResult("own pid", Verdict.WARNING, f"{pid}, recorded as registered, is gone")
            )
        else:
            results.append(ProbeResult("own pid", Verdict.OK, f"{pid} is {seen}"))
    except Bl931Error as exc:
        results.append(ProbeResult("own pid", Verdict.FAILED, exc.message))

    new_deployment = not recorded
    try:
        sample = catalog.visible_datasets(20)
    except Bl931Error as exc:
        results.append(ProbeResult("list", Verdict.FAILED, exc.message))
        sample = []
    prefixes = site_prefixes(sample)
    ours = config.pid_prefix + "/"
    if not prefixes:
        results.append(
            ProbeResult(
                "pid prefix",
                Verdict.OK,
                f"no other datasets visible to compare {config.pid_prefix!r} with",
            )
        )
    elif ours in prefixes or config.pid_prefix in prefixes:
        results.append(
            ProbeResult("pid prefix", Verdict.OK, f"{config.pid_prefix!r} is the site's")
        )
    else:
        text = (
            f"[catalog] pid_prefix {config.pid_prefix!r} differs from the site's PID_PREFIX as "
            f"seen in its pids ({', '.join(sorted(prefixes))}); with "
            "DATASET_CREATION_VALIDATION_ENABLED the backend refuses pids off its pattern"
        )
        if new_deployment:
            results.append(ProbeResult("pid prefix", Verdict.FAILED, text))
        else:
            results.append(
                ProbeResult(
                    "pid prefix",
                    Verdict.WARNING,
                    text + "; existing pids never change, a new prefix applies to new scans only",
                )
            )
    for line in settings_drift(catalog.pid_book, catalog.settings):
        results.append(ProbeResult("settings", Verdict.WARNING, line))
    return results

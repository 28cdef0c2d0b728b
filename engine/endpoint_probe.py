"""Probe each configured endpoint for `--check`: reachable, its identity, listable, writable.

Each endpoint gets the checks in order, every one run even when an earlier one failed where it
still can, so one report names everything an operator must fix:

- **local**: `reachable` (the root is a directory, a mount point with `mount = true`, and can be
  listed), `identity` (the marker against the state store, as every pass checks it,
  `engine/identity.py`; before the first pass the marker is still to come: a warning), and
  `writable` (a file with the engine's prefix created and removed at once in the root, as the
  user running the check: `os.access` is not enough, root passes it on a read-only mount);
- **globus**: `reachable` (`get_endpoint`: the collection exists and answers), `identity` (the
  configured root is a directory there, listed with the account's consents and identity
  mapping), and `writable` (a probe directory made with `operation_mkdir` and removed by a
  recursive delete task, waited for a few seconds; Transfer has no read-only way to learn
  whether this client may write).

The probes write only those probe names (`ENGINE_TEMP_PREFIX`, which no listing reports) and
never a marker or the state store.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.catalog.scicat_probe import ProbeResult, Verdict
from engine.config import Config
from engine.errors import EndpointUnavailable
from engine.identity import MARKER_NAME, IdentityCheck, missing_root_hint, read_marker
from engine.layout import ENGINE_TEMP_PREFIX
from engine.state import StateStore

if TYPE_CHECKING:
    import globus_sdk

    from engine.storage.globus_auth import GlobusSession

PROBE_PREFIX = f"{ENGINE_TEMP_PREFIX}check-"


@dataclass(frozen=True, slots=True)
class EndpointReport:
    """The checks of one endpoint and what they add up to (the worst verdict)."""

    endpoint: str
    kind: str
    where: str  # `local /data/cfs`, `globus collection <id> "name" root /raw`
    checks: tuple[ProbeResult, ...]

    @property
    def verdict(self) -> Verdict:
        verdicts = {c.verdict for c in self.checks}
        for worst in (Verdict.FAILED, Verdict.WARNING):
            if worst in verdicts:
                return worst
        return Verdict.OK

    def line(self) -> str:
        """`endpoint cfs: ok (local /data/cfs: listed; identity marker …; writable by bl931)`."""
        if self.verdict is Verdict.FAILED:
            failed = "; ".join(
                f"{c.check}: {c.message}" for c in self.checks if c.verdict is Verdict.FAILED
            )
            return f"endpoint {self.endpoint}: FAILED: {failed}"
        words = "; ".join(
            c.message if c.verdict is Verdict.OK else f"{c.check}: {c.message}" for c in self.checks
        )
        return f"endpoint {self.endpoint}: {self.verdict.value} ({self.where}: {words})"

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "kind": self.kind,
            "where": self.where,
            "verdict": self.verdict.value,
            "checks": [
                {"check": c.check, "verdict": c.verdict.value, "message": c.message}
                for c in self.checks
            ],
        }


def probe_local(
    config: Config, name: str, store: StateStore, user: str, now: datetime
) -> EndpointReport:
    """The checks of one local endpoint (see the module docstring).

    Args:
        config: the validated config.
        name: the endpoint's name.
        store: the state store (read-only, or a scratch store before the first pass).
        user: who runs the check (writability is theirs).
        now: the time the identity check is made at.
    """
    spec = config.endpoints[name]
    assert spec.path is not None
    root = spec.path
    checks = [_reachable(config, name, root)]
    if checks[0].verdict is Verdict.FAILED:
        return EndpointReport(name, "local", f"local {root}", tuple(checks))
    checks.append(_identity(config, name, root, store, user, now))
    checks.append(_writable(root, user))
    return EndpointReport(name, "local", f"local {root}", tuple(checks))


def _reachable(config: Config, name: str, root: Path) -> ProbeResult:
    if not root.is_dir():
        return ProbeResult(
            "reachable",
            Verdict.FAILED,
            f"root {root} is missing or not a directory ({missing_root_hint(config, root)})",
        )
    if config.endpoints[name].mount and not os.path.ismount(root):
        return ProbeResult(
            "reachable",
            Verdict.FAILED,
            f"root {root} is not a mount point, and `mount = true` says it must be "
            "(is the filesystem unmounted?)",
        )
    try:
        with os.scandir(root) as entries:
            next(entries, None)
    except OSError as exc:
        return ProbeResult("reachable", Verdict.FAILED, f"cannot list {root}: {exc.strerror}")
    return ProbeResult("reachable", Verdict.OK, "listed")


def _identity(
    config: Config, name: str, root: Path, store: StateStore, user: str, now: datetime
) -> ProbeResult:
    try:
        IdentityCheck(config, store, may_initialise=False).check(name, user=user, now=now)
        marker = read_marker(root)
    except EndpointUnavailable as exc:
        return ProbeResult("identity", Verdict.FAILED, exc.reason)
    except (OSError, ValueError) as exc:
        return ProbeResult(
            "identity", Verdict.FAILED, f"the marker {root / MARKER_NAME} cannot be read: {exc}"
        )
    if marker is None:
        return ProbeResult(
            "identity", Verdict.WARNING, "no marker yet, the service's first pass writes it"
        )
    return ProbeResult("identity", Verdict.OK, f"identity marker {marker.get('id')}")


def writable_folder(folder: Path, user: str, why: str) -> str | None:
    """None if `user` can create (and remove) a file in `folder`, else what went wrong."""
    try:
        handle, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=folder)
    except OSError as exc:
        return f"cannot create a file in {folder}: {exc.strerror} (as {user}; {why})"
    os.close(handle)
    os.unlink(probe)
    return None


def _writable(root: Path, user: str) -> ProbeResult:
    try:
        handle, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=root)
    except OSError as exc:
        return ProbeResult(
            "writable",
            Verdict.FAILED,
            f"cannot create a file in {root}: {exc.strerror} (as {user}; the service writes "
            "copies there and removes pruned files)",
        )
    os.close(handle)
    os.unlink(probe)
    return ProbeResult("writable", Verdict.OK, f"writable by {user}")


def probe_globus(
    name: str,
    collection: str,
    root: str,
    client: globus_sdk.TransferClient,
    session: GlobusSession,
    *,
    wait_seconds: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> EndpointReport:
    """The checks of one Globus endpoint through globus-sdk's `TransferClient` (`client`).

    Args:
        name: the endpoint's name in the config.
        collection: its collection id; `root` the configured root path there.
        client: an authenticated `globus_sdk.TransferClient`.
        session: the `GlobusSession` (consent scopes, error messages without secrets).
        wait_seconds: how long to wait for the probe directory's delete task.
        sleep: how to wait between task polls.
    """
    from engine.storage.globus_auth import translate_error

    def refused(check: str, what: str, exc: Exception) -> ProbeResult:
        return ProbeResult(check, Verdict.FAILED, translate_error(exc, what, session).message)

    where = f"globus collection {collection}"
    try:
        doc = client.get_endpoint(collection)
    except Exception as exc:
        return EndpointReport(
            name, "globus", where, (refused("reachable", f"collection {collection}", exc),)
        )
    where = f'globus collection {collection} "{doc.get("display_name", "")}" root {root}'
    checks = [ProbeResult("reachable", Verdict.OK, "reachable")]
    try:
        session.ensure_scopes(client)
        stat = client.operation_stat(collection, path=root)
        if stat.get("type") != "dir":
            checks.append(
                ProbeResult(
                    "identity",
                    Verdict.FAILED,
                    f"root {root} is not a directory on collection {collection}",
                )
            )
            return EndpointReport(name, "globus", where, tuple(checks))
        client.operation_ls(collection, path=root, limit=1)
    except Exception as exc:
        result = refused("identity", f"listing {root}", exc)
        if getattr(exc, "http_status", None) == 404:
            result = ProbeResult(
                "identity",
                Verdict.FAILED,
                f"root {root} is not a directory on collection {collection} ({result.message})",
            )
        checks.append(result)
        return EndpointReport(name, "globus", where, tuple(checks))
    checks.append(ProbeResult("identity", Verdict.OK, "listed"))
    checks.append(_globus_writable(collection, root, client, session, wait_seconds, sleep))
    return EndpointReport(name, "globus", where, tuple(checks))


def _globus_writable(
    collection: str,
    root: str,
    client: globus_sdk.TransferClient,
    session: GlobusSession,
    wait_seconds: float,
    sleep: Callable[[float], None],
) -> ProbeResult:
    import globus_sdk

    from engine.storage.globus_auth import translate_error

    probe = f"{root.rstrip('/')}/{PROBE_PREFIX}{uuid.uuid4().hex[:12]}"
    try:
        client.operation_mkdir(collection, path=probe)
    except Exception as exc:
        message = translate_error(exc, f"mkdir {probe}", session).message
        return ProbeResult(
            "writable",
            Verdict.FAILED,
            f"cannot make a directory under {root} on {collection}: {message}",
        )
    try:
        data = globus_sdk.DeleteData(
            collection,
            label="bl931 --check: remove the write probe",
            recursive=True,
            ignore_missing=True,
            notify_on_succeeded=False,
            notify_on_failed=False,
            notify_on_inactive=False,
        )
        data.add_item(probe)
        task_id = str(client.submit_delete(data)["task_id"])
        waited = 0.0
        while True:
            status = str(client.get_task(task_id).get("status"))
            if status == "SUCCEEDED":
                return ProbeResult(
                    "writable", Verdict.OK, "writable (probe directory made and removed)"
                )
            if status == "FAILED" or waited >= wait_seconds:
                break
            sleep(0.2)
            waited += 0.2
    except Exception as exc:
        message = translate_error(exc, f"removing {probe}", session).message
        return ProbeResult(
            "writable",
            Verdict.WARNING,
            f"writable, but the probe directory {probe} could not be removed: {message}",
        )
    return ProbeResult(
        "writable",
        Verdict.WARNING,
        f"writable; the probe directory {probe} is being removed by delete task {task_id} "
        f"(status {status})",
    )

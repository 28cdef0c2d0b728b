"""Is this the right filesystem? Endpoint identity for local roots.

An unmounted filesystem leaves an empty mount-point directory that lists exactly like a pruned
tree; a copy "into" it lands on the local disk below, and a delete relying on it relies on
nothing. So a local endpoint's listing proves something only while its identity holds:

- a **marker file** (`.bl931-endpoint.json`) at the root, written by an explicit operator step
  (`bl931tui --init-endpoint NAME`) — or automatically when the state store itself is new, since
  no earlier deployment can then be mistaken for this one — whose id the state store keeps;
- and, with `mount = true`, the root is a mount point whose device id is the one recorded when the
  marker was written.

A missing, unreadable or foreign marker, a root that is no mount point, or a changed device makes
the endpoint *unknown* (a needs-human `EndpointUnavailable`): nothing relies on it, nothing is
copied into it. A store that predates markers never writes one on its own (it could be writing
onto a bare mount point): it asks for `--init-endpoint`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine.config import Config
from engine.errors import Bl931Error, EndpointUnavailable, NeedsHumanError
from engine.model import ErrorClass
from engine.state import StateStore, iso, parse_time
from engine.storage.root_pin import MARKER_NAME
from engine.store.events import write_events

# The marker file (`.bl931-endpoint.json`; the layout never lists engine files), also read back
# by the local mover while a task runs (engine/storage/root_pin.py).


@dataclass(frozen=True, slots=True)
class Identity:
    """What the state store recorded about an endpoint's root when its marker was written."""

    endpoint: str
    marker_id: str
    root: str
    device: int | None
    initialised_by: str
    initialised_at: datetime


def load_identities(store: StateStore) -> dict[str, Identity]:
    """The recorded identities (none from a read-only store still at an older schema)."""
    if not store.has_table("endpoint_identity"):
        return {}
    rows = store.connection().execute("SELECT * FROM endpoint_identity").fetchall()
    return {
        row["endpoint"]: Identity(
            row["endpoint"],
            row["marker_id"],
            row["root"],
            row["device"],
            row["initialised_by"],
            parse_time(row["initialised_at"]) or datetime.min,
        )
        for row in rows
    }


def read_marker(root: Path) -> dict[str, object] | None:
    """The marker's content; None if there is none. Raises OSError/ValueError if unreadable."""
    try:
        text = (root / MARKER_NAME).read_text("utf-8")
    except FileNotFoundError:
        return None
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _unknown(endpoint: str, reason: str) -> EndpointUnavailable:
    return EndpointUnavailable(endpoint, reason, error_class=ErrorClass.NEEDS_HUMAN)


def missing_root_hint(config: Config, root: Path) -> str:
    """What to look at when a root is missing: a path below the config file's folder may have been
    written relative to it (relative paths are taken from there, not from the working folder)."""
    if config.source is not None and root.is_relative_to(config.source.parent):
        return f"unmounted? a relative `path` is taken from the config file's folder, {config.source.parent}"
    return "unmounted?"


class IdentityCheck:
    """Checks local endpoints' identities against the state store, once per call.

    Args:
        config: the validated config (which endpoints are local, which expect a mount).
        store: the state store holding the recorded identities.
        may_initialise: whether markers may be written without an operator (a new store, and a
            caller that writes: never the dry run).
    """

    def __init__(self, config: Config, store: StateStore, *, may_initialise: bool) -> None:
        self.config = config
        self.store = store
        self.may_initialise = may_initialise
        self._identities = load_identities(store)
        # A dry run on a store that does not exist yet: the first pass will write the markers,
        # so an endpoint without one is what a fresh install looks like, not an unknown one.
        self._fresh = store.created_new and not self._identities
        # Tape endpoints' marker checks go through their runner (engine/storage/tape_identity.py):
        # endpoint → check(may_initialise=, user=, now=, fresh=). Set by the reconciler.
        self.tape: dict[str, Callable[..., None]] = {}

    def local_endpoints(self) -> list[str]:
        return [n for n, ep in self.config.endpoints.items() if ep.kind == "local" and ep.path]

    def checked_endpoints(self) -> list[str]:
        """Every endpoint whose identity a pass checks: local roots and tape endpoints."""
        return [*self.local_endpoints(), *(n for n in self.config.endpoints if n in self.tape)]

    def observe(self, endpoint: str, *, user: str, now: datetime) -> None:
        """The check made when a pass observes: a tape endpoint's marker is looked at afresh
        (and written on first use when this pass may write)."""
        if endpoint in self.tape:
            self.tape[endpoint](may_initialise=self.may_initialise, user=user, now=now, fresh=True)
            return
        self.check(endpoint, user=user, now=now)

    def unproven(self, endpoint: str, *, now: datetime, user: str = "bl931") -> str | None:
        """`check` as a reason: why `endpoint` is not provably its storage now, or None."""
        try:
            self.check(endpoint, user=user, now=now)
        except Bl931Error as exc:
            return f"endpoint_identity: {exc}"
        return None

    def check(self, endpoint: str, *, user: str, now: datetime) -> None:
        """Raise `EndpointUnavailable` (needs-human) unless `endpoint` is provably its storage.

        Tape endpoints are checked through their runner (`self.tape`); other endpoints that
        are not local have no marker here (a Globus collection's identity is its collection id
        and root) and always pass.
        """
        spec = self.config.endpoints.get(endpoint)
        if endpoint in self.tape:  # this pass's marker check (or afresh if none passed yet)
            self.tape[endpoint](may_initialise=False, user=user, now=now)
            return
        if spec is None or spec.kind != "local" or spec.path is None:
            return
        root = spec.path
        if not root.is_dir():
            raise _unknown(
                endpoint,
                f"root {root} is missing or not a directory ({missing_root_hint(self.config, root)})",
            )
        if spec.mount and not os.path.ismount(root):
            raise _unknown(
                endpoint,
                f"root {root} is not a mount point, and `mount = true` says it must be "
                "(is the filesystem unmounted?)",
            )
        try:
            marker = read_marker(root)
        except (OSError, ValueError) as exc:
            raise _unknown(
                endpoint, f"the identity marker {root / MARKER_NAME} cannot be read: {exc}"
            ) from exc
        known = self._identities.get(endpoint)
        if known is None:
            if self.may_initialise and self.store.created_new:
                self._identities[endpoint] = self.initialise(endpoint, user=user, now=now)
                return
            if self._fresh:
                return
            raise _unknown(
                endpoint,
                f"no identity is recorded for {endpoint} (a store from before endpoint markers, "
                f"or a new endpoint): check that {root} is the right filesystem, then run "
                f"`bl931tui --init-endpoint {endpoint}`",
            )
        if marker is None:
            raise _unknown(
                endpoint,
                f"the identity marker {root / MARKER_NAME} is missing: is the filesystem "
                "unmounted or replaced? Nothing there is trusted until it is back",
            )
        if marker.get("id") != known.marker_id or marker.get("endpoint") != endpoint:
            raise _unknown(
                endpoint,
                f"the identity marker at {root} belongs to "
                f"{marker.get('endpoint')!r} ({marker.get('id')}), not to {endpoint} "
                f"({known.marker_id}): another storage is mounted there",
            )
        if spec.mount and known.device is not None and os.stat(root).st_dev != known.device:
            raise _unknown(
                endpoint,
                f"root {root} is on device {os.stat(root).st_dev}, not {known.device} as when "
                "its marker was written",
            )

    def initialise(self, endpoint: str, *, user: str, now: datetime) -> Identity:
        """Write (or adopt) the endpoint's marker and record its identity in the store.

        An existing marker of the same endpoint is adopted (e.g. a new state store for an
        existing tree); a marker naming another endpoint is refused: that is another
        endpoint's storage.

        Raises:
            NeedsHumanError: the root is missing, not a mount point when it must be, or holds
                another endpoint's marker.
        """
        spec = self.config.endpoints[endpoint]
        if spec.kind != "local" or spec.path is None:
            raise NeedsHumanError(
                f"{endpoint} is a {spec.kind} endpoint: only local endpoints carry a marker"
            )
        root = spec.path
        if not root.is_dir():
            raise NeedsHumanError(f"{endpoint}: root {root} is missing or not a directory")
        if spec.mount and not os.path.ismount(root):
            raise NeedsHumanError(f"{endpoint}: root {root} is not a mount point (mount = true)")
        try:
            marker = read_marker(root)
        except (OSError, ValueError) as exc:
            raise NeedsHumanError(
                f"{endpoint}: the marker at {root} cannot be read: {exc}"
            ) from exc
        if marker is not None and marker.get("endpoint") != endpoint:
            raise NeedsHumanError(
                f"{endpoint}: {root} carries the marker of endpoint {marker.get('endpoint')!r}; "
                "two endpoints can never be the same storage"
            )
        if marker is None:
            marker = {
                "endpoint": endpoint,
                "id": str(uuid.uuid4()),
                "beamline": self.config.beamline.name,
                "created_at": iso(now),
            }
            _write_marker(root, marker)
        identity = Identity(endpoint, str(marker["id"]), str(root), os.stat(root).st_dev, user, now)
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO endpoint_identity VALUES (?, ?, ?, ?, ?, ?)",
                (
                    endpoint,
                    identity.marker_id,
                    identity.root,
                    identity.device,
                    user,
                    iso(now),
                ),
            )
            write_events(
                conn,
                [
                    (
                        now,
                        "info",
                        "endpoint.initialised",
                        None,
                        None,
                        f"{endpoint}: identity {identity.marker_id} recorded for {root} by {user}",
                        {"endpoint": endpoint, "marker_id": identity.marker_id},
                    )
                ],
            )
        self._identities[endpoint] = identity
        return identity


def _write_marker(root: Path, marker: dict[str, object]) -> None:
    """Write the marker atomically (temporary name, fsync, rename): never half a marker."""
    tmp = root / f"{MARKER_NAME}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(marker, fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / MARKER_NAME)

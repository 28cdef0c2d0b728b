"""Is this the right HPSS directory? The identity of a `kind = "tape"` endpoint.

An unmounted mount point (local runner) or a wrong or emptied HPSS directory (sfapi runner)
answers `hsi ls -R` with nothing: taken at its word, every verified bundle would look missing,
its scans would be bundled again *into* the wrong place, and a prune could then rely on that new
bundle. So, like a local endpoint (engine/identity.py), a tape endpoint's listing proves
something only while its identity holds:

- a **marker** at the endpoint's root: a directory named `.bl931-tape-endpoint.<endpoint>.<id>`,
  created with `hsi mkdir` through the endpoint's runner (so the same check works for the
  local runner and, through the Superfacility API's command utility, for the sfapi runner); its
  id is recorded in the state store (`endpoint_identity`, the table local markers use). The
  name carries the id, so one `hsi ls -l ROOT` proves it, no file has to be read back;
- it is written on first use, only while the state store records *nothing* on that endpoint
  (no bundle in any state, no evidence): an archive bl931 never wrote to cannot be mistaken
  for one it did. Later, or after a state store was rebuilt over a used archive, only the
  operator writes it (`bl931tui --init-endpoint NAME`), after checking the directory;
- every pass checks it (`check`, before the endpoint is listed) and the recursive listing must
  hold it too (`holds`). A missing or foreign marker makes the endpoint *unknown* (a
  needs-human `EndpointUnavailable` and an `endpoint_identity` alert): nothing is judged
  missing there, nothing is bundled into it, no prune relies on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from engine.errors import EndpointUnavailable
from engine.layout import ENGINE_TEMP_PREFIX
from engine.model import ErrorClass
from engine.store.connection import StoreBase, iso
from engine.store.events import write_events

if TYPE_CHECKING:
    from engine.storage.tape import TapeEndpoint

MARKER_PREFIX = f"{ENGINE_TEMP_PREFIX}tape-endpoint."
ROOT_PREFIX = "hpss:"  # `endpoint_identity.root` of a tape identity (a local one is a path)


def _unknown(endpoint: str, reason: str) -> EndpointUnavailable:
    return EndpointUnavailable(endpoint, reason, error_class=ErrorClass.NEEDS_HUMAN)


def marker_path(endpoint: TapeEndpoint, marker_id: str) -> str:
    return f"{endpoint.base.rstrip('/')}/{MARKER_PREFIX}{endpoint.name}.{marker_id}"


def recorded_id(store: StoreBase, endpoint: str) -> str | None:
    """The recorded tape marker id (an identity recorded while the endpoint was a local
    per-file one does not count: its marker is a file, and the kind change is its own step)."""
    if not store.has_table("endpoint_identity"):
        return None
    row = (
        store._conn()
        .execute("SELECT marker_id, root FROM endpoint_identity WHERE endpoint = ?", (endpoint,))
        .fetchone()
    )
    if row is None or not str(row["root"]).startswith(ROOT_PREFIX):
        return None
    return str(row["marker_id"])


def has_records(store: StoreBase, endpoint: str) -> bool:
    """Whether the store records anything on this endpoint (bundles in any state, evidence)."""
    conn = store._conn()
    if (
        store.has_table("tape_bundles")
        and conn.execute(
            "SELECT 1 FROM tape_bundles WHERE endpoint = ? LIMIT 1", (endpoint,)
        ).fetchone()
    ):
        return True
    return bool(
        store.has_table("evidence")
        and conn.execute(
            "SELECT 1 FROM evidence WHERE endpoint = ? LIMIT 1", (endpoint,)
        ).fetchone()
    )


def _markers(endpoint: TapeEndpoint, entries: Mapping[str, int]) -> list[str]:
    own = f"{endpoint.base.rstrip('/')}/{MARKER_PREFIX}"
    return sorted(p for p in entries if p.startswith(own))


def list_root(endpoint: TapeEndpoint) -> dict[str, int]:
    from engine.storage.tape_script import parse_ls

    root = endpoint.base
    done = endpoint.runner.command(["hsi", "-q", f"ls -l {root}"])
    if done.returncode != 0:
        if "No such file" in done.stderr:
            return {}
        raise EndpointUnavailable(
            endpoint.name,
            f"hsi ls {root} failed (exit {done.returncode}): {done.stderr.strip()[-300:]}",
        )
    return parse_ls(done.stdout)


class TapeIdentity:
    """The marker check of one tape endpoint (see the module docstring)."""

    def __init__(self, endpoint: TapeEndpoint) -> None:
        self.endpoint = endpoint
        self.seen = False  # the marker was seen this pass (each last look reuses it)

    def forget(self) -> None:
        """A new pass: the marker seen by an earlier pass proves nothing now (the directory may
        have been unmounted since); the next check looks again."""
        self.seen = False

    def holds(self, store: StoreBase, entries: Mapping[str, int]) -> None:
        """Raise unless a listing of the root (recursive or not) shows the recorded marker, or
        the store records nothing there yet (a fresh endpoint: nothing to misjudge)."""
        ep = self.endpoint
        known = recorded_id(store, ep.name)
        if known is None:
            if has_records(store, ep.name):
                raise _unknown(
                    ep.name,
                    f"no identity is recorded for tape endpoint {ep.name} but the state store "
                    f"holds bundles or evidence there: check that {ep.base} is the right HPSS "
                    f"directory, then run `bl931tui --init-endpoint {ep.name}`",
                )
            return
        if marker_path(ep, known) in entries:
            return
        others = _markers(ep, entries)
        if others:
            raise _unknown(
                ep.name,
                f"{ep.base} carries the identity marker {others[0]}, not "
                f"{marker_path(ep, known)}: another archive is there",
            )
        raise _unknown(
            ep.name,
            f"the identity marker {marker_path(ep, known)} is missing from {ep.base}: is the "
            "HPSS directory unmounted, emptied or replaced? Nothing there is judged missing, "
            "and nothing is bundled into it, until it is back",
        )

    def check(self, store: StoreBase, *, may_initialise: bool, user: str, now: datetime) -> None:
        """One `hsi ls -l ROOT` through the runner; write the marker on first use (see the
        module docstring), else raise unless it is there."""
        entries = list_root(self.endpoint)
        if (
            may_initialise
            and not store.readonly
            and recorded_id(store, self.endpoint.name) is None
            and not has_records(store, self.endpoint.name)
        ):
            self.initialise(store, user=user, now=now, entries=entries)
            return
        self.holds(store, entries)

    def initialise(
        self,
        store: StoreBase,
        *,
        user: str,
        now: datetime,
        entries: Mapping[str, int] | None = None,
    ) -> str:
        """Write (or adopt this endpoint's own existing) marker and record it; return its id."""
        ep = self.endpoint
        if entries is None:
            entries = list_root(ep)
        own = f"{ep.base.rstrip('/')}/{MARKER_PREFIX}{ep.name}."
        found = [p for p in _markers(ep, entries) if p.startswith(own)]
        foreign = [p for p in _markers(ep, entries) if not p.startswith(own)]
        if foreign and not found:
            raise _unknown(
                ep.name, f"{ep.base} carries another endpoint's marker {foreign[0]}: not adopted"
            )
        if found:
            marker_id = found[0][len(own) :]
        else:
            marker_id = str(uuid.uuid4())
            done = ep.runner.command(["hsi", "-q", f"mkdir -p {marker_path(ep, marker_id)}"])
            if done.returncode != 0:
                raise EndpointUnavailable(
                    ep.name,
                    f"hsi mkdir of the identity marker failed (exit {done.returncode}): "
                    f"{done.stderr.strip()[-300:]}",
                )
        with store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO endpoint_identity VALUES (?, ?, ?, ?, ?, ?)",
                (ep.name, marker_id, ROOT_PREFIX + ep.base, None, user, iso(now)),
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
                        f"{ep.name}: identity {marker_id} recorded for HPSS {ep.base} by {user}",
                        {"endpoint": ep.name, "marker_id": marker_id},
                    )
                ],
            )
        return marker_id


def tape_identity_checks(backends: object) -> dict[str, Callable[..., None]]:
    """endpoint → its storage's `check_identity`, for every tape endpoint among `backends`."""
    storages: Mapping[str, object] = getattr(backends, "storages", {})
    kinds: Mapping[str, str] = getattr(backends, "kinds", {})
    out: dict[str, Callable[..., None]] = {}
    for name, storage in storages.items():
        check = getattr(storage, "check_identity", None)
        if kinds.get(name) == "tape" and check is not None:
            out[name] = check
    return out


def forget_tape_checks(backends: object) -> None:
    """At the start of each pass of a long-running process: forget every tape endpoint's marker
    check of the previous pass, so that what the pass does before it observes (re-sending a
    bundle kept back, settling an interrupted one) checks the marker afresh. Without this, a
    bundle whose hand-over failed transiently was sent by the next pass onto an HPSS directory
    unmounted in between (`tests/adversary/test_tape_unmounted_service.py`)."""
    storages: Mapping[str, object] = getattr(backends, "storages", {})
    for storage in storages.values():
        identity = getattr(storage, "identity", None)
        if isinstance(identity, TapeIdentity):
            identity.forget()

"""Evidence belongs to a storage identity, not to an endpoint's name.

Evidence says "the bytes of this scan were verified *on this storage*". An endpoint is a name
in the config; the storage behind it can change — `[endpoints.cfs]` repointed to another
collection or root after a migration, a local path moved to another disk. A migration done
with `cp -p` keeps every path, size and mtime, so the old evidence would still match the new
listing, and a byte corrupted on the way would go unnoticed until the only good copy is pruned.

So every evidence row carries the *storage identity* of the endpoint it was taken on:

- a Globus endpoint: `globus:<collection id>:<root>`;
- a local endpoint: `local:<marker id>:<device>:<path>` — its identity marker (see
  `engine.identity`), the device its root is on, and the root itself. A marker copied along
  with the tree (`cp -a`) does not make the copy the same storage.

Evidence counts only at the identity it was taken on. When an endpoint's identity changes,
every copy verified there before counts as `present` (never `size`: nothing about its bytes was
checked on this storage), so nothing that relies on it is deleted until it is verified again —
by a re-hash where the storage is mounted here (`engine.rehash`), or by a checksum-sync
transfer from another verified holder, which moves no data where the checksums already match.
A `storage_changed` alert (effect `notify`) says so while such copies remain.

A deliberate migration the operator vouches for is adopted explicitly
(`bl931tui --adopt-endpoint NAME --from-identity OLD`): the evidence is re-keyed to the new
identity and an `endpoint.adopted` event records who did it. Rows from before identities were
recorded (NULL) belong to the identity the endpoint had at the first pass that recorded one.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Collection, Mapping
from datetime import datetime

from engine.config import Config, EndpointConfig
from engine.errors import NeedsHumanError, UsageError
from engine.identity import load_identities
from engine.model import Alert, AlertEffect, ClearedBy, Evidence, Replica
from engine.state import StateStore, iso
from engine.store.events import write_events

STORAGE_CHANGED = "storage_changed"


def storage_identity(spec: EndpointConfig, marker_id: str | None) -> str | None:
    """The identity of the storage behind an endpoint, or None if it cannot be told now.

    Args:
        spec: the endpoint's configuration.
        marker_id: a local endpoint's recorded marker id (None: none recorded yet).
    """
    if spec.kind == "tape":
        return f"tape:{spec.runner}:{spec.root if spec.runner == 'sfapi' else spec.path}"
    if spec.kind == "globus":
        root = posixpath.normpath(spec.root or "/")
        return f"globus:{(spec.collection or '').lower()}:{root}"
    if spec.path is None:
        return None
    try:
        device = os.stat(spec.path).st_dev
    except OSError:
        return None  # no root: the endpoint is unknown this pass anyway
    return f"local:{marker_id or 'no-marker'}:{device}:{spec.path}"


class StorageIdentities:
    """Every endpoint's storage identity this pass, and which evidence belongs to it.

    Build it after the endpoints' markers were checked (and, on a new store, written).

    Args:
        config: the validated config.
        store: the state store (read-only stores at an older schema are fine).
    """

    def __init__(self, config: Config, store: StateStore) -> None:
        self.store = store
        markers = {name: ident.marker_id for name, ident in load_identities(store).items()}
        self.current: dict[str, str | None] = {
            name: storage_identity(spec, markers.get(name))
            for name, spec in config.endpoints.items()
        }
        self.recorded: dict[str, str] = {}
        if store.has_table("endpoint_storage"):
            for row in store.connection().execute(
                "SELECT endpoint, identity FROM endpoint_storage"
            ):
                self.recorded[row["endpoint"]] = row["identity"]

    def of(self, endpoint: str) -> str | None:
        """The endpoint's storage identity now."""
        return self.current.get(endpoint)

    def owner(self, endpoint: str, evidence: Evidence) -> str | None:
        """The storage identity `evidence` at `endpoint` was taken on."""
        if evidence.identity is not None:
            return evidence.identity
        return self.recorded.get(endpoint) or self.current.get(endpoint)

    def belongs(self, endpoint: str, evidence: Evidence | None) -> bool:
        """Whether `evidence` was taken on the endpoint's current storage."""
        if evidence is None:
            return False
        current = self.current.get(endpoint)
        return current is not None and self.owner(endpoint, evidence) == current

    def sort(
        self, endpoint: str, evidence: Evidence | None
    ) -> tuple[Evidence | None, Evidence | None]:
        """One copy's evidence as (taken on the current storage, taken on another)."""
        if evidence is None or self.belongs(endpoint, evidence):
            return evidence, None
        return None, self.stamp(endpoint, evidence, self.owner(endpoint, evidence))

    def split(
        self, endpoint: str, evidence: Mapping[str, Evidence]
    ) -> tuple[Mapping[str, Evidence], dict[str, Evidence]]:
        """(evidence taken on the endpoint's current storage, evidence taken on another).

        When all of it was taken here (the steady state), the first is `evidence` itself, not
        a copy of 100k rows."""
        current = self.current.get(endpoint)
        unstamped = self.recorded.get(endpoint) or current  # `owner`, inlined: 100k rows a pass
        elsewhere: dict[str, Evidence] = {}
        for scan, proof in evidence.items():
            owner = proof.identity or unstamped
            if current is None or owner != current:
                elsewhere[scan] = self.stamp(endpoint, proof, owner)
        if not elsewhere:
            return evidence, elsewhere
        here = {scan: proof for scan, proof in evidence.items() if scan not in elsewhere}
        return here, elsewhere

    def stamp(self, endpoint: str, evidence: Evidence, identity: str | None = None) -> Evidence:
        """`evidence` as taken on `identity` (default: the endpoint's current storage)."""
        identity = identity or self.current.get(endpoint)
        return evidence if evidence.identity == identity else evidence.but(identity=identity)

    # ---- recording -------------------------------------------------------------------------
    def record(self, now: datetime, *, unproven: Collection[str] = ()) -> None:
        """Remember each endpoint's identity (a writable pass): the first time, evidence from
        before identities is stamped with it; when it changes, an event says so (what was
        verified on the old storage stays keyed to it, so it no longer counts here).

        Endpoints in `unproven` (their marker or mount check failed this pass) are skipped:
        a bare mount point's device is not a new storage.
        """
        for endpoint, current in self.current.items():
            if current is None or endpoint in unproven:
                continue
            recorded = self.recorded.get(endpoint)
            if recorded == current:
                continue
            self.store.evidence_rewritten()
            with self.store.transaction() as conn:
                stamped = conn.execute(
                    "UPDATE evidence SET identity = ? WHERE endpoint = ? AND identity IS NULL",
                    (recorded or current, endpoint),
                ).rowcount
                conn.execute(
                    "INSERT INTO endpoint_storage(endpoint, identity, since) VALUES (?, ?, ?) "
                    "ON CONFLICT(endpoint) DO UPDATE SET identity = excluded.identity, "
                    "since = excluded.since",
                    (endpoint, current, iso(now)),
                )
                if recorded is None:
                    kind, level = "endpoint.storage_recorded", "info"
                    message = f"{endpoint}: storage identity {current} recorded"
                    if stamped:
                        message += f" (evidence of {stamped} copies from before identities)"
                else:
                    (elsewhere,) = conn.execute(
                        "SELECT count(*) FROM evidence WHERE endpoint = ? AND identity != ?",
                        (endpoint, current),
                    ).fetchone()
                    kind, level = "endpoint.storage_changed", "warning"
                    message = (
                        f"{endpoint}: storage changed from {recorded} to {current}; "
                        f"{elsewhere} copies verified on other storage count as present "
                        "here until re-verified"
                    )
                write_events(
                    conn,
                    [
                        (
                            now,
                            level,
                            kind,
                            None,
                            None,
                            message,
                            {"endpoint": endpoint, "from": recorded, "to": current},
                        )
                    ],
                )
            self.store.evidence_rewritten()
            self.recorded[endpoint] = current

    def remember_task_target(self, submission_id: str, endpoint: str) -> None:
        """Record the storage a copy task writes to, before it is submitted: its evidence
        belongs there even if the config is repointed while the task runs."""
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE tasks SET target_identity = ? WHERE submission_id = ?",
                (self.current.get(endpoint), submission_id),
            )

    def task_target(self, submission_id: str, endpoint: str) -> str | None:
        """The storage a finished copy task wrote to (the endpoint's current one for a task
        submitted before identities were recorded)."""
        row = (
            self.store.connection()
            .execute("SELECT target_identity FROM tasks WHERE submission_id = ?", (submission_id,))
            .fetchone()
        )
        recorded: str | None = row[0] if row is not None else None
        return recorded or self.current.get(endpoint)

    # ---- reporting -------------------------------------------------------------------------
    def alert(self, endpoint: str, replicas: Mapping[str, Replica]) -> Alert | None:
        """The `storage_changed` alert for copies at `endpoint` not yet re-verified here."""
        previous = sorted({r.storage_changed for r in replicas.values() if r.storage_changed})
        if not previous:
            return None
        waiting = sum(1 for r in replicas.values() if r.storage_changed)
        was = ", ".join(previous)
        return Alert(
            STORAGE_CHANGED,
            AlertEffect.NOTIFY,
            f"{endpoint}: its storage is now {self.current.get(endpoint)}, not {was}: {waiting} "
            "copies verified on the old storage count as present until their bytes are "
            "verified again here (re-hashed through a local path, or compared by a "
            "checksum-sync transfer from a verified copy; a restore from tape waits for "
            "approval), and nothing relying on them is deleted meanwhile. If this was a "
            "deliberate migration that you trust kept every byte, run `bl931tui "
            f"--adopt-endpoint {endpoint} --from-identity {previous[0]}` (service stopped)",
            endpoint=endpoint,
            cleared_by=ClearedBy.CONDITION_OR_ACKNOWLEDGEMENT,
        )


def adopt(
    config: Config, store: StateStore, endpoint: str, old: str, *, user: str, now: datetime
) -> tuple[str, int]:
    """Re-key the evidence taken at `endpoint` on storage `old` to its current storage.

    The operator's statement that a migration kept every byte: the copies count as verified
    again without being re-read. Recorded as an `endpoint.adopted` event.

    Returns:
        (the current identity, how many copies' evidence was re-keyed).

    Raises:
        UsageError: no such endpoint.
        NeedsHumanError: the current identity cannot be told, equals `old`, or no evidence is
            kept under `old` (the message lists the identities that do hold evidence).
    """
    if endpoint not in config.endpoints:
        known = ", ".join(sorted(config.endpoints))
        raise UsageError(f"--adopt-endpoint {endpoint!r}: no such endpoint (configured: {known})")
    identities = StorageIdentities(config, store)
    current = identities.of(endpoint)
    if current is None:
        raise NeedsHumanError(
            f"{endpoint}: its current storage cannot be told (is its root mounted, and its "
            "identity marker initialised?)"
        )
    if old == current:
        raise NeedsHumanError(f"{endpoint}: {old} is its current storage; nothing to adopt")
    if current.startswith("tape:") and not old.startswith("tape:"):
        # Per-file objects are not bundle members: engine/tape_legacy.py records them.
        raise NeedsHumanError(
            f"{endpoint}: per-file objects on {old} are adopted as legacy members"
        )
    evidence = store.load_evidence().get(endpoint, {})
    held: dict[str, int] = {}
    for proof in evidence.values():
        owner = identities.owner(endpoint, proof) or "unknown"
        held[owner] = held.get(owner, 0) + 1
    if old not in held:
        kept = ", ".join(f"{ident} ({n} copies)" for ident, n in sorted(held.items())) or "none"
        raise NeedsHumanError(
            f"{endpoint}: no evidence is kept under {old}; evidence at {endpoint} is kept under: "
            f"{kept}"
        )
    store.evidence_rewritten()
    with store.transaction() as conn:
        rekeyed = conn.execute(
            "UPDATE evidence SET identity = ? WHERE endpoint = ? AND "
            "(identity = ? OR (identity IS NULL AND ? = ?))",
            (current, endpoint, old, old, identities.recorded.get(endpoint) or current),
        ).rowcount
        # What is left from before identities keeps the owner it had (the recorded identity
        # changes below).
        conn.execute(
            "UPDATE evidence SET identity = ? WHERE endpoint = ? AND identity IS NULL",
            (identities.recorded.get(endpoint) or current, endpoint),
        )
        conn.execute(
            "INSERT INTO endpoint_storage(endpoint, identity, since) VALUES (?, ?, ?) "
            "ON CONFLICT(endpoint) DO UPDATE SET identity = excluded.identity, "
            "since = excluded.since",
            (endpoint, current, iso(now)),
        )
        write_events(
            conn,
            [
                (
                    now,
                    "warning",
                    "endpoint.adopted",
                    None,
                    None,
                    f"{endpoint}: evidence of {rekeyed} copies re-keyed from {old} to {current} "
                    f"by {user} (a migration vouched for, not re-verified)",
                    {
                        "endpoint": endpoint,
                        "from": old,
                        "to": current,
                        "copies": rekeyed,
                        "by": user,
                    },
                )
            ],
        )
    store.evidence_rewritten()
    return current, rekeyed

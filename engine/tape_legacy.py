"""A per-file HPSS endpoint moved to `kind = "tape"`: refused until an operator's step.

An endpoint that archived every scan as its own file (`kind = "globus"` or `"local"` with
`tape = true`) can be switched to `kind = "tape"` in the config. Its storage identity then
changes (`globus:…`/`local:…` → `tape:…`), and the tape endpoint lists only what its verified
bundles hold: left alone, the per-file objects would look absent — every scan bundled again,
or, worse, reported as copies gone. So while the recorded identity is a per-file one that still
holds evidence, `kind_changed` makes the endpoint unknown for the pass (a needs-human error and
an `endpoint_kind_changed` alert naming the step), nothing is re-keyed, re-archived, or pruned on
its strength.

The step (`bl931tui --adopt-endpoint NAME --from-identity OLD`, service stopped) is
`adopt_legacy`: every object verified under OLD is looked up once (`hsi ls -l -R` of the tape
root, one HPSS session), and each scan whose files are all there at their verified sizes
becomes a *legacy member*: a `tape_bundles` row of purpose `legacy` (the object's HPSS path,
state `verified`) with its scan as a `tape_members` row whose files are `hsi cput`-like members.
Its evidence is re-keyed to the tape identity (same level, checksum, task and time; a signature
over the tape endpoint's listing of it). From then on the tape endpoint lists it like any
per-file member, and the last look before a CFS prune re-checks it with `hsi ls` (presence and
size). Objects missing or of another size are not adopted (they stay under OLD, so the scans are
bundled afresh); an older version kept at the plain path is not adopted either (its files are
not known here). Nothing is re-archived unless the operator asks for it (`--rearchive`: the new
identity is recorded, nothing re-keyed, the endpoint's remembered replicas are forgotten — the
operator's choice, not copies that vanished — and every scan is bundled afresh).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.config import Config
from engine.errors import NeedsHumanError
from engine.evidence_identity import StorageIdentities
from engine.model import Alert, AlertEffect, ClearedBy, Evidence, FileStat, Level
from engine.state import StateStore, iso
from engine.storage.base import listing_signature
from engine.storage.tape_script import parse_ls
from engine.store import tape as tape_store
from engine.store.events import write_events
from engine.tape_versions import rename

KIND_CHANGED = "endpoint_kind_changed"
LEGACY = "legacy"


def _recorded(store: StateStore, endpoint: str) -> str | None:
    if not store.has_table("endpoint_storage"):
        return None
    row = (
        store.connection()
        .execute("SELECT identity FROM endpoint_storage WHERE endpoint = ?", (endpoint,))
        .fetchone()
    )
    return None if row is None else str(row[0])


def kind_changed(config: Config, store: StateStore) -> tuple[dict[str, str], list[Alert]]:
    """Tape endpoints whose recorded storage is a per-file one still holding evidence: endpoint
    → why it is unknown this pass, and one alert each."""
    refused: dict[str, str] = {}
    alerts: list[Alert] = []
    for name, spec in config.endpoints.items():
        if spec.kind != "tape":
            continue
        old = _recorded(store, name)
        if old is None or old.startswith("tape:"):
            continue
        (copies,) = (
            store.connection()
            .execute(
                "SELECT count(*) FROM evidence WHERE endpoint = ? "
                "AND (identity = ? OR identity IS NULL)",
                (name, old),
            )
            .fetchone()
        )
        if not copies:
            continue
        why = (
            f'{name} is now kind = "tape", but {copies} copies were verified there as per-file '
            f"objects on {old}; it is unknown for every action (nothing is archived to it or "
            f"pruned relying on it) until an operator runs `bl931tui --adopt-endpoint {name} "
            f"--from-identity {old}` (service stopped) to record them as legacy members, or adds "
            "`--rearchive` to bundle every scan afresh instead"
        )
        refused[name] = why
        alerts.append(
            Alert(
                KIND_CHANGED,
                AlertEffect.UNKNOWN_ENDPOINT,
                why,
                endpoint=name,
                cleared_by=ClearedBy.CONDITION,
            )
        )
    return refused, alerts


def needs_legacy_step(config: Config, endpoint: str, old: str) -> bool:
    """Whether adopting `old` at `endpoint` is the per-file → tape step (not a plain re-key)."""
    spec = config.endpoints.get(endpoint)
    return spec is not None and spec.kind == "tape" and not old.startswith("tape:")


@dataclass(frozen=True, slots=True)
class LegacyResult:
    current: str
    members: int
    missing: tuple[str, ...]
    older_versions: tuple[str, ...]
    rearchive: bool


def _hpss_sizes(config: Config, endpoint: str) -> tuple[str, dict[str, int]]:
    """(the tape root, HPSS path → size) from one `hsi ls -l -R` of the root."""
    from engine.clock import SYSTEM_CLOCK
    from engine.storage.tape_build import _runner

    spec = config.endpoints[endpoint]
    base = (spec.root or "/") if spec.runner == "sfapi" else "/"
    runner = _runner(config, endpoint, None, SYSTEM_CLOCK)
    try:
        done = runner.command(["hsi", "-q", f"ls -l -R {base}"])
    finally:
        runner.close()
    if done.returncode != 0:
        raise NeedsHumanError(
            f"{endpoint}: cannot list HPSS to find the per-file objects (hsi ls exit "
            f"{done.returncode}): {done.stderr.strip()[-300:]}; nothing adopted"
        )
    return base, parse_ls(done.stdout)


def adopt_legacy(
    config: Config,
    store: StateStore,
    endpoint: str,
    old: str,
    *,
    user: str,
    now: datetime,
    rearchive: bool = False,
) -> LegacyResult:
    """Record the per-file objects verified under `old` as legacy members (module docstring).

    Raises:
        NeedsHumanError: no evidence is kept under `old`, or HPSS cannot be listed.
    """
    identities = StorageIdentities(config, store)
    current = identities.of(endpoint)
    assert current is not None and current.startswith("tape:")
    evidence = {
        key: proof
        for key, proof in store.load_evidence().get(endpoint, {}).items()
        if identities.owner(endpoint, proof) == old
    }
    if not evidence:
        raise NeedsHumanError(f"{endpoint}: no evidence is kept under {old}; nothing to adopt")
    adopted: list[tuple[str, Evidence, dict[str, Any], list[dict[str, Any]]]] = []
    missing: list[str] = []
    older: list[str] = []
    if not rearchive:
        base, sizes = _hpss_sizes(config, endpoint)
        scans = store.load_scans()
        for key, proof in sorted(evidence.items()):
            scan = scans.get(key) or scans.get(key.rpartition(".v")[0])
            if scan is None or proof.level < Level.CHECKSUM or proof.value != scan.checksum:
                older.append(key)
                continue
            members: list[dict[str, Any]] = []
            for f in scan.files:
                listed_as = rename(f.path, scan.id, key)
                hpss_path = posixpath.join(base, listed_as)
                members.append(
                    {
                        "scan": scan.id,
                        "path": f.path,
                        "listed_as": listed_as,
                        "size": f.size,
                        "mtime": int(f.mtime),
                        "checksum": f.checksum,
                        "via": "cput",
                        "hpss_path": hpss_path,
                    }
                )
            if any(sizes.get(m["hpss_path"]) != m["size"] for m in members):
                missing.append(key)
                continue
            detail: dict[str, Any] = {
                "bundle": posixpath.join(base, key),
                "job_id": proof.task_id,
                "verified_at": proof.verified_at.isoformat(),
                "crc": None,
                "cput": [m["hpss_path"] for m in members],
                "files": members,
                "legacy_from": old,
            }
            signature = listing_signature(
                [
                    FileStat(rename(m["listed_as"], key, scan.id), m["size"], m["mtime"])
                    for m in members
                ]
            )
            new = proof.but(identity=current, signature=signature, how=LEGACY)
            adopted.append((key, new, detail, members))
    for key, new, detail, members in adopted:
        bundle = detail["bundle"]
        tape_store.add_bundle(
            store,
            tape_store.BundleRow(
                endpoint,
                bundle,
                LEGACY,
                0,
                f"legacy:{endpoint}",
                LEGACY,
                None,
                LEGACY,
                "verified",
                None,
                None,
                {
                    "bundle": bundle,
                    "group": LEGACY,
                    "endpoint": endpoint,
                    "algorithm": new.algorithm,
                    "scans": {members[0]["scan"]: new.value},
                    "kept_as": {members[0]["scan"]: key},
                    "members": members,
                    "legacy_from": old,
                },
                new.verified_at,
            ),
        )
        assert new.value is not None
        tape_store.add_members(store, endpoint, bundle, [(key, new.value, detail)])
        store.record_evidence(key, endpoint, new)
    store.evidence_rewritten()
    store._forget(replicas=True)
    with store.transaction() as conn:
        if rearchive:
            # The operator chose not to count the per-file objects: they are not copies that
            # vanished (no missing-fraction freeze), just no longer this endpoint's copies.
            conn.execute("DELETE FROM replicas WHERE endpoint = ?", (endpoint,))
        conn.execute(
            "INSERT INTO endpoint_storage(endpoint, identity, since) VALUES (?, ?, ?) "
            "ON CONFLICT(endpoint) DO UPDATE SET identity = excluded.identity, "
            "since = excluded.since",
            (endpoint, current, iso(now)),
        )
        what = (
            "nothing re-keyed: every scan is bundled afresh (--rearchive)"
            if rearchive
            else f"{len(adopted)} per-file objects recorded as legacy members, "
            f"{len(missing)} missing or of another size, {len(older)} older versions left"
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
                    f"{endpoint}: moved from {old} to {current} by {user}: {what}",
                    {
                        "endpoint": endpoint,
                        "from": old,
                        "to": current,
                        "legacy_members": len(adopted),
                        "missing": missing[:100],
                        "rearchive": rearchive,
                        "by": user,
                    },
                )
            ],
        )
    store.evidence_rewritten()
    return LegacyResult(current, len(adopted), tuple(missing), tuple(older), rearchive)

# Over 400 lines: split pending: issue 15 items 1-2 (every shared value type lives here today).
"""The values the reconciler reasons about.

Everything here is a frozen dataclass or an enum: the planner takes these values and returns a
`Plan`, with no I/O and no clock. Scan ids are POSIX paths relative to the inventory endpoint's
root; the same relative path locates the scan's copy on every other endpoint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any, ClassVar, NamedTuple

from engine.evidence import Evidence as Evidence  # re-exported: a shared value
from engine.file_identity import KEEP, Identity, WithIdentity, given
from engine.listing import FileStat as FileStat  # re-exported: a listed file is a shared value
from engine.replica import Replica as Replica  # re-exported: the planner's input per replica


class Level(IntEnum):
    """How well a replica is known to match the acquisition (the verification ladder)."""

    ABSENT = 0
    PRESENT = 1  # listed, but the size differs or some files are missing
    SIZE = 2  # every file listed with the inventory's size
    CHECKSUM = 3  # checksums matching the acquisition were computed or verified by a transfer

    @classmethod
    def parse(cls, word: str) -> Level:
        return cls[word.upper()]

    @property
    def word(self) -> str:
        # Read per replica per pass (metrics): a table, not the enum's slow `name` lookup.
        return _LEVEL_WORDS[self]


_LEVEL_WORDS = {level: level.name.lower() for level in Level}


class ActionKind(StrEnum):
    COPY = "copy"
    DELETE = "delete"
    REGISTER = "register"
    UPDATE_CATALOG = "update_catalog"


class ErrorClass(StrEnum):
    """How a failure should be handled: retried, shown to a person, or given up on."""

    TRANSIENT = "transient"
    NEEDS_HUMAN = "needs_human"
    TERMINAL = "terminal"


@dataclass(frozen=True, slots=True, init=False, repr=False)
class ScanFile(WithIdentity):
    """One file of a scan as the inventory recorded it (path relative to the endpoint root).

    `inode` and `ctime_ns` are the file's identity when `checksum` was computed (see
    `FileStat`); None in records made before it was kept, or where it cannot be seen. A checksum
    is reused only while both match. Kept packed as one `identity` (`engine.file_identity`).
    """

    path: str
    size: int
    mtime: float
    checksum: str
    identity: Identity = None
    _SHOWN: ClassVar[tuple[str, ...]] = ("path", "size", "mtime", "checksum", "inode", "ctime_ns")

    def __init__(
        self,
        path: str,
        size: int,
        mtime: float,
        checksum: str,
        inode: int | None = KEEP,
        ctime_ns: int | None = KEEP,
        identity: Identity = None,
    ) -> None:
        setter = object.__setattr__
        setter(self, "path", path)
        setter(self, "size", size)
        setter(self, "mtime", mtime)
        setter(self, "checksum", checksum)
        setter(self, "identity", given(identity, inode, ctime_ns))


@dataclass(frozen=True, slots=True)
class Scan:
    """A unit of acquisition: one file, or one directory of files.

    `checksum` is the file's checksum for a file scan, and a digest over the sorted
    (path, checksum) pairs of its files for a directory scan, so that any change to any file
    gives the scan a new checksum (and a new version).
    """

    id: str
    files: tuple[ScanFile, ...]
    acquired_at: datetime
    checksum_algorithm: str
    checksum: str
    version: int = 1
    is_directory: bool = False

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def file_count(self) -> int:
        return len(self.files)


def scan_digest(algorithm: str, files: tuple[ScanFile, ...] | list[ScanFile]) -> str:
    """The checksum of a directory scan: one digest over its files' own checksums."""
    digest = hashlib.new(algorithm)
    for f in sorted(files, key=lambda f: f.path):
        digest.update(f.path.encode("utf-8", "surrogateescape"))
        digest.update(b"\0")
        digest.update(f.checksum.encode())
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class EndpointObservation:
    """What one endpoint answered in this pass.

    `ok` is False when its listing failed: every replica there is then *unknown* (not absent).
    `previously_present` are the scans the store last saw there; `expected_absent` are those the
    engine itself deleted, so their absence is not counted as missing.
    """

    endpoint: str
    ok: bool
    replicas: Mapping[str, Replica] = field(default_factory=dict)
    error: str | None = None
    # A set, or the keys of the store's rows (a view: not a copy of 100k ids per endpoint).
    previously_present: Set[str] = frozenset()
    expected_absent: frozenset[str] = frozenset()
    observed_at: datetime | None = None  # None: listed in this pass; else an older, reused listing
    # The scans this pass's listing answered for (None: every scan). A service pass lists only
    # part of a Globus endpoint (engine/incremental/remote_slice.py): the replicas it did not
    # list are in `replicas` as last seen, with when that was in `carried`; not missing.
    listed: frozenset[str] | None = None
    carried: Mapping[str, datetime] = field(default_factory=dict)

    def level(self, scan: str) -> Level:
        replica = self.replicas.get(scan)
        return replica.level if replica is not None else Level.ABSENT

    def baseline(self) -> int:
        """How many scans seen here before, not deleted by the engine, this pass listed (the
        missing fraction's denominator; counted over the stored keys, not a copy of them)."""
        previously = self.previously_present
        if self.listed is not None:
            previously = self.listed & previously
        return len(previously) - len(self.expected_absent & previously)

    def missing(self) -> frozenset[str]:
        """Scans seen here before, not deleted by the engine, listed now and not found."""
        if not self.ok:
            return frozenset()
        replicas, deleted, listed = self.replicas, self.expected_absent, self.listed
        return frozenset(
            scan
            for scan in self.previously_present
            if scan not in replicas and scan not in deleted and (listed is None or scan in listed)
        )


@dataclass(frozen=True, slots=True)
class CatalogView:
    """The catalog's state for a pass: registered scans and the locations recorded for each."""

    enabled: bool
    ok: bool = True
    error: str | None = None
    locations: Mapping[str, frozenset[str]] = field(default_factory=dict)
    error_class: ErrorClass = ErrorClass.TRANSIENT  # of `error`, when the catalog is not ok
    # Scans the state store recorded as registered that the catalog no longer holds (and whose
    # loss no operator accepted): while any, the catalog is unknown for every action.
    lost: frozenset[str] = frozenset()

    @property
    def usable(self) -> bool:
        """Readable and holding every registration the state store knows of."""
        return self.ok and not self.lost

    def registered(self, scan: str) -> bool:
        return scan in self.locations


@dataclass(frozen=True, slots=True)
class InFlight:
    """An action submitted and not finished (copy tasks read from `source`)."""

    action_id: str
    kind: ActionKind
    scan: str
    source: str | None
    target: str | None


@dataclass(frozen=True, slots=True)
class Failure:
    """The last failure of an action and when it may be tried again (None: not until a person acts)."""

    action_id: str
    error_class: ErrorClass
    message: str
    retry_at: datetime | None


@dataclass(frozen=True, slots=True)
class Hold:
    scan: str
    reason: str
    placed_by: str
    placed_at: datetime
    expires_at: datetime | None = None


def action_id(
    kind: ActionKind, scan: str, checksum: str, source: str | None, target: str | None
) -> str:
    """A deterministic id: the same action on the same scan content has the same id in every pass."""
    key = "\x1f".join([kind.value, scan, checksum, source or "", target or ""])
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]


class Action(NamedTuple):
    """One planned action. A NamedTuple rather than a frozen dataclass: plans hold hundreds of
    thousands of these and blocked entries, and tuple construction is several times cheaper."""

    id: str
    kind: ActionKind
    scan: str
    source: str | None
    target: str | None
    bytes: int
    requires_approval: bool
    reason: str
    approved: bool = False
    # For a copy onto a verified older version: that version's checksum (the copy replaces it).
    replaces: str | None = None
    # For a copy: the scan's name at the target / at the source when not its own path (a
    # versioned name on write-once tape, beside an older version: engine/tape_versions.py).
    target_name: str | None = None
    source_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "kind": self.kind.value,
            "scan": self.scan,
            "source": self.source,
            "target": self.target,
            "bytes": self.bytes,
            "requires_approval": self.requires_approval,
            "approved": self.approved,
            "reason": self.reason,
        }
        if self.replaces is not None:
            out["replaces"] = self.replaces
        if self.target_name is not None:
            out["target_name"] = self.target_name
        if self.source_name is not None:
            out["source_name"] = self.source_name
        return out


class Blocked(NamedTuple):
    """What is wanted but not allowed now, and why (`reason_code` is stable, `reason` is prose)."""

    scan: str
    kind: ActionKind
    endpoint: str | None
    reason_code: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "scan": self.scan,
            "kind": self.kind.value,
            "endpoint": self.endpoint,
            "reason_code": self.reason_code,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class EndpointError:
    endpoint: str
    message: str
    error_class: ErrorClass = ErrorClass.TRANSIENT

    def to_json(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "message": self.message, "class": self.error_class.value}


class AlertEffect(StrEnum):
    """What an alert does to the engine while it stands."""

    FREEZE_DELETES = "freeze_deletes"  # no delete anywhere (e.g. replicas vanished)
    UNKNOWN_ENDPOINT = "unknown_endpoint"  # the endpoint is unknown for every action
    NOTIFY = "notify"  # nothing blocked; a person should look (e.g. foreign files)


class ClearedBy(StrEnum):
    """What ends an alert."""

    CONDITION = "condition"  # only the condition going away (e.g. the marker is back)
    ACKNOWLEDGEMENT = "acknowledgement"  # only an approver's acknowledgement
    CONDITION_OR_ACKNOWLEDGEMENT = "condition_or_acknowledgement"


@dataclass(frozen=True, slots=True)
class Alert:
    """A condition a person must know about, with what it blocks and what clears it.

    `id` is stable while the same condition stands (code, endpoint, scan), so an operator can
    acknowledge it by id; `since` is when it was first raised (filled in from the state store).
    """

    code: str
    effect: AlertEffect
    message: str
    endpoint: str | None = None
    scan: str | None = None
    cleared_by: ClearedBy = ClearedBy.CONDITION
    since: datetime | None = None

    @property
    def id(self) -> str:
        key = "\x1f".join([self.code, self.endpoint or "", self.scan or ""])
        return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "code": self.code,
            "endpoint": self.endpoint,
            "scan": self.scan,
            "effect": self.effect.value,
            "since": self.since.isoformat() if self.since else None,
            "cleared_by": self.cleared_by.value,
            "message": self.message,
        }


class Problem(str):
    """Something the inventory could not take in this pass: the message, naming its scan.

    A `str` (the message) so that code and logs that handle problems as text keep working.
    """

    scan: str

    def __new__(cls, scan: str, message: str) -> Problem:
        problem = super().__new__(cls, message)
        problem.scan = scan
        return problem

    def to_json(self) -> dict[str, Any]:
        return {"scan": self.scan, "message": str(self)}


class Outcome(IntEnum):
    """How a report is classed; the exit code of `--dry-run` is the most serious one present."""

    SETTLED = 0  # nothing to do but wait for dates or operators' standing decisions
    NEEDS_PERSON = 1  # something failed, an alert stands, or work waits for a person
    PENDING = 2  # work is planned, in flight, or will come by itself

    @property
    def rank(self) -> int:
        return {Outcome.SETTLED: 0, Outcome.PENDING: 1, Outcome.NEEDS_PERSON: 2}[self]


# Blocked reason codes by outcome class. Settled: an intended state. Needs a person: a failure
# or a standing condition nothing will clear by itself. Any other code is work pending.
SETTLED_CODES = frozenset({"retention_not_reached", "on_hold", "rejected", "export_controlled"})
NEEDS_PERSON_CODES = frozenset(
    {
        "needs_attention",
        "failed",
        "endpoint_unknown",
        "catalog_unavailable",
        "observation_stale",
        "missing_fraction_exceeded",
        "source_missing",
        "foreign_files",
        "same_storage",
        "version_conflict",
    }
)


def blocked_outcome(reason_code: str) -> Outcome:
    if reason_code in SETTLED_CODES:
        return Outcome.SETTLED
    if reason_code in NEEDS_PERSON_CODES:
        return Outcome.NEEDS_PERSON
    return Outcome.PENDING


@dataclass(frozen=True, slots=True)
class Plan:
    """The difference between desired and actual placement: a value, like a Terraform plan."""

    as_of: datetime
    actions: tuple[Action, ...]
    # A tuple, or the planner's compact `engine.blocked_entries.BlockedEntries` (equal to it).
    blocked: Sequence[Blocked]
    errors: tuple[EndpointError, ...] = ()
    in_flight: tuple[InFlight, ...] = ()
    alerts: tuple[str, ...] = ()
    alert_details: tuple[Alert, ...] = ()
    problems: tuple[Problem, ...] = ()
    export_controlled: tuple[tuple[str, str], ...] = ()  # (scan, what flagged it)

    FORMAT_VERSION = 1

    def outcome(self) -> Outcome:
        """The most serious class present (DESIGN's exit-code table): a person, work, settled."""
        if self.errors or self.alerts or self.alert_details or self.problems:
            return Outcome.NEEDS_PERSON
        worst = Outcome.PENDING if self.actions or self.in_flight else Outcome.SETTLED
        for blocked in self.blocked:
            outcome = blocked_outcome(blocked.reason_code)
            if outcome is Outcome.NEEDS_PERSON:
                return outcome
            if outcome.rank > worst.rank:
                worst = outcome
        return worst

    def with_findings(
        self,
        *,
        alerts: tuple[Alert, ...] = (),
        problems: tuple[Problem, ...] = (),
        errors: tuple[EndpointError, ...] = (),
    ) -> Plan:
        """This plan with alerts, inventory problems and errors found outside the planner."""
        return replace(
            self,
            alerts=self.alerts + tuple(a.message for a in alerts),
            alert_details=self.alert_details + alerts,
            problems=self.problems + problems,
            errors=self.errors + errors,
        )

    def summary(self) -> dict[str, int]:
        counts = {kind.value: 0 for kind in ActionKind}
        for action in self.actions:
            counts[action.kind.value] += 1
        counts["blocked"] = len(self.blocked)
        counts["awaiting_approval"] = sum(
            1 for a in self.actions if a.requires_approval and not a.approved
        )
        counts["in_flight"] = len(self.in_flight)
        return counts

    @property
    def digest(self) -> str:
        """A digest of what the plan would do; independent of `as_of` and of errors' wording."""
        body = json.dumps(
            {
                "actions": [a.to_json() for a in self.actions],
                "blocked": [b.to_json() for b in self.blocked],
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        return "sha256:" + hashlib.sha256(body.encode("utf-8", "surrogateescape")).hexdigest()

    def plan_digest_short(self) -> str:
        return self.digest[:19] + "…"

    @property
    def in_sync(self) -> bool:
        return not self.actions and not self.in_flight

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.FORMAT_VERSION,
            "as_of": self.as_of.isoformat(),
            "plan_digest": self.digest,
            "summary": self.summary(),
            "actions": [a.to_json() for a in self.actions],
            "blocked": [b.to_json() for b in self.blocked],
            "errors": [e.to_json() for e in self.errors],
            "in_flight": [
                {
                    "id": f.action_id,
                    "kind": f.kind.value,
                    "scan": f.scan,
                    "source": f.source,
                    "target": f.target,
                }
                for f in self.in_flight
            ],
            "alerts": list(self.alerts),
            "alert_details": [a.to_json() for a in self.alert_details],
            "problems": [p.to_json() for p in self.problems],
            "export_controlled": [{"scan": s, "source": src} for s, src in self.export_controlled],
            "outcome": self.outcome().name.lower(),
        }

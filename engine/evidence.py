"""`Evidence`: why a replica is believed to hold the acquisition's bytes.

A service holds one per verified copy (200k at 100k scans copied to two endpoints). Of its
eight facts only two differ from scan to scan: the checksum (`value`) and the listing's
`signature`. The other six — level, algorithm, task, time, how, storage identity — are the
same for every copy one transfer, copy or re-hash verified, so they live together in one
shared `EvidenceSource`: 56 bytes per evidence instead of 96 (issue 15's memory target).
Each still reads, compares, hashes, prints and `dataclasses.replace`s as a field.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.model import Level


@dataclass(frozen=True, slots=True)
class EvidenceSource:
    """What a batch of evidence shares: how, when and where it was taken."""

    level: Level
    algorithm: str | None
    task_id: str | None
    verified_at: datetime
    how: str = ""
    identity: str | None = None


_SOURCES: dict[EvidenceSource, EvidenceSource] = {}
_SOURCES_LIMIT = 4096  # sources of many batches: the table stays small (a miss costs a copy)


def _shared(source: EvidenceSource) -> EvidenceSource:
    kept = _SOURCES.get(source)
    if kept is None:
        if len(_SOURCES) >= _SOURCES_LIMIT:
            _SOURCES.clear()
        kept = _SOURCES[source] = source
    return kept


_KEEP: Any = object()  # a fact not given to `Evidence(...)`: kept from `source`


@dataclass(frozen=True, slots=True, init=False, repr=False)
class Evidence:
    """Why a replica is believed to hold the acquisition's bytes.

    `signature` fingerprints the replica's listing (paths, sizes, whole-second mtimes) when the
    evidence was taken; evidence only counts while the listing still has that signature, and
    only at the storage it was taken on: `identity` is the endpoint's storage identity then
    (`engine.evidence_identity`; None for evidence from before identities were recorded).
    `how` is "transfer", "copy", "rehash" or "inventory".
    """

    value: str | None
    signature: str
    source: EvidenceSource

    def __init__(
        self,
        level: Level = _KEEP,
        algorithm: str | None = _KEEP,
        value: str | None = _KEEP,
        task_id: str | None = _KEEP,
        verified_at: datetime = _KEEP,
        signature: str = _KEEP,
        how: str = _KEEP,
        identity: str | None = _KEEP,
        *,
        source: EvidenceSource | None = None,
    ) -> None:
        if value is _KEEP or signature is _KEEP:
            raise TypeError("Evidence needs a value and a signature")
        shared = (level, algorithm, task_id, verified_at, how, identity)
        if source is None:
            if _KEEP in (level, algorithm, task_id, verified_at):
                raise TypeError("Evidence needs a level, algorithm, task_id and verified_at")
            source = EvidenceSource(
                level,
                algorithm,
                task_id,
                verified_at,
                "" if how is _KEEP else how,
                None if identity is _KEEP else identity,
            )
        elif any(fact is not _KEEP for fact in shared):
            facts: list[Any] = [
                getattr(source, name) if fact is _KEEP else fact
                for name, fact in zip(_SOURCE_FIELDS, shared, strict=True)
            ]
            source = EvidenceSource(*facts)
        setter = object.__setattr__
        setter(self, "value", value)
        setter(self, "signature", signature)
        setter(self, "source", _shared(source))

    def but(
        self,
        *,
        signature: str = _KEEP,
        how: str = _KEEP,
        identity: str | None = _KEEP,
    ) -> Evidence:
        """This evidence with the facts given changed (`dataclasses.replace`, as typed)."""
        return Evidence(
            value=self.value,
            signature=self.signature if signature is _KEEP else signature,
            how=how,
            identity=identity,
            source=self.source,
        )

    @property
    def level(self) -> Level:
        return self.source.level

    @property
    def algorithm(self) -> str | None:
        return self.source.algorithm

    @property
    def task_id(self) -> str | None:
        return self.source.task_id

    @property
    def verified_at(self) -> datetime:
        return self.source.verified_at

    @property
    def how(self) -> str:
        return self.source.how

    @property
    def identity(self) -> str | None:
        return self.source.identity

    def __repr__(self) -> str:
        return (
            f"Evidence(level={self.level!r}, algorithm={self.algorithm!r}, value={self.value!r}, "
            f"task_id={self.task_id!r}, verified_at={self.verified_at!r}, "
            f"signature={self.signature!r}, how={self.how!r}, identity={self.identity!r})"
        )


_SOURCE_FIELDS = ("level", "algorithm", "task_id", "verified_at", "how", "identity")


def _frozen(evidence: Evidence, name: str, value: object = None) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


# Any assignment fails as a frozen dataclass's field assignment does, the facts read from the
# source included.
Evidence.__setattr__ = _frozen  # type: ignore[method-assign,assignment]
Evidence.__delattr__ = _frozen  # type: ignore[method-assign,assignment]

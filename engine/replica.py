"""`Replica`: a scan as observed at one endpoint in this pass.

A service holds one per replica at every endpoint (300k at 100k scans on three endpoints).
Most carry only what was listed and verified; the seven facts about older versions, other bytes,
moved storage, unverified copies and versioned names are rare, so they live together in one
`ReplicaDetails` (None when all are their defaults): 88 bytes a replica instead of 136 (issue
15's memory target). Each still reads, compares, prints and `dataclasses.replace`s as a field.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

if TYPE_CHECKING:
    from engine.model import Evidence, Level


@dataclass(frozen=True, slots=True)
class ReplicaDetails:
    """A replica's rare facts (see `Replica`'s properties for each)."""

    note: str = ""
    older_version: str | None = None
    differs: bool = False
    older_unproven: bool = False
    storage_changed: str | None = None
    found_unverified: bool = False
    name: str | None = None


_PLAIN = ReplicaDetails()
T = TypeVar("T")


class _Detail(Generic[T]):
    """A replica's rare fact, read from its details (the default when it has none)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, replica: None, owner: type) -> _Detail[T]: ...

    @overload
    def __get__(self, replica: Replica, owner: type) -> T: ...

    def __get__(self, replica: Replica | None, owner: type) -> T | _Detail[T]:
        if replica is None:
            return self
        return getattr(replica.details or _PLAIN, self.name)


_DETAILS: tuple[str, ...] = ReplicaDetails.__slots__  # the detail fields' names, in order
_KEEP: Any = object()  # a detail not given to `Replica(...)`


@dataclass(frozen=True, slots=True, init=False, repr=False, eq=False)
class Replica:
    """A scan as observed at one endpoint in this pass.

    Equal to any replica (of any subclass: `engine.observe.assess.Assessed`) with the same
    fields; what a subclass adds is never compared.
    """

    scan: str
    endpoint: str
    level: Level
    size: int
    files: int
    evidence: Evidence | None = None
    # The rare facts, None when all are their defaults (so equal replicas compare equal).
    details: ReplicaDetails | None = field(default=None)

    def __init__(
        self,
        scan: str,
        endpoint: str,
        level: Level,
        size: int,
        files: int,
        evidence: Evidence | None = None,
        note: str = _KEEP,
        older_version: str | None = _KEEP,
        differs: bool = _KEEP,
        older_unproven: bool = _KEEP,
        storage_changed: str | None = _KEEP,
        found_unverified: bool = _KEEP,
        name: str | None = _KEEP,
        *,
        details: ReplicaDetails | None = None,
    ) -> None:
        setter = object.__setattr__
        setter(self, "scan", scan)
        setter(self, "endpoint", endpoint)
        setter(self, "level", level)
        setter(self, "size", size)
        setter(self, "files", files)
        setter(self, "evidence", evidence)
        # A fact not given is kept from `details` (what `dataclasses.replace` passes), else
        # its default.
        was = details or _PLAIN
        given = (
            note,
            older_version,
            differs,
            older_unproven,
            storage_changed,
            found_unverified,
            name,
        )
        if any(value is not _KEEP for value in given):
            facts: list[Any] = [
                getattr(was, key) if value is _KEEP else value
                for key, value in zip(_DETAILS, given, strict=True)
            ]
            was = ReplicaDetails(*facts)
        setter(self, "details", None if was == _PLAIN else was)

    def but(
        self,
        *,
        level: Level | None = None,
        evidence: Evidence | None = _KEEP,
        note: str = _KEEP,
        older_version: str | None = _KEEP,
        differs: bool = _KEEP,
        older_unproven: bool = _KEEP,
        storage_changed: str | None = _KEEP,
        found_unverified: bool = _KEEP,
        name: str | None = _KEEP,
    ) -> Replica:
        """This replica with the facts given changed (`dataclasses.replace`, as typed)."""
        return Replica(
            self.scan,
            self.endpoint,
            self.level if level is None else level,
            self.size,
            self.files,
            self.evidence if evidence is _KEEP else evidence,
            note,
            older_version,
            differs,
            older_unproven,
            storage_changed,
            found_unverified,
            name,
            details=self.details,
        )

    def _fields(self) -> tuple[object, ...]:
        return (
            self.scan,
            self.endpoint,
            self.level,
            self.size,
            self.files,
            self.evidence,
            self.details,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Replica):
            return NotImplemented
        return self is other or self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={getattr(self, k)!r}" for k in (*_HEAD, *_DETAILS))
        return f"Replica({shown})"

    # The checksum of an older version of the scan this replica still holds, verified when it
    # was copied and unchanged since (None: it holds no verified older version). Overwriting
    # it is a destructive action (a *replace*), never a plain copy.
    older_version: ClassVar[_Detail[str | None]] = _Detail()
    note: ClassVar[_Detail[str]] = _Detail()
    # Files of the scan listed here were re-hashed and hold other bytes than this version (an
    # older version whose evidence was lost, rot, a user's file): a copy over them is a replace.
    differs: ClassVar[_Detail[bool]] = _Detail()
    # True when the copy only *may* still hold `older_version`: its listing changed since that
    # version was verified into it (an even older version's leftovers, a replace cut short, a
    # change by hand). It is protected like a copy that does, but never relied on as a
    # verified copy of that version.
    older_unproven: ClassVar[_Detail[bool]] = _Detail()
    # The storage identity this copy was verified on, when the endpoint's storage has changed
    # since (a migration, a repointed config): the copy counts as `present` until re-verified.
    storage_changed: ClassVar[_Detail[str | None]] = _Detail()
    # Listed with the right sizes, but bl931 holds no evidence for it (a copy a person made
    # before bl931 was installed, or whose record was lost): `present` until its bytes are
    # re-hashed or copied again with checksum verification, whatever a rule's `verify` says.
    found_unverified: ClassVar[_Detail[bool]] = _Detail()
    # Where this copy of the current version is kept when not at the scan's own path: its
    # versioned name on write-once tape (engine/tape_versions.py), beside an older version.
    name: ClassVar[_Detail[str | None]] = _Detail()


_HEAD = ("scan", "endpoint", "level", "size", "files", "evidence")


def _frozen(replica: Replica, name: str, value: object = None) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


# Any assignment fails as a frozen dataclass's field assignment does (its own `__setattr__`
# fails with a TypeError for names that are not fields, such as the details read above).
Replica.__setattr__ = _frozen  # type: ignore[method-assign,assignment]
Replica.__delattr__ = _frozen  # type: ignore[method-assign,assignment]

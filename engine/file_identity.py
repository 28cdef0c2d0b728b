"""A file's identity (inode, ctime in ns) kept as one value by `FileStat` and `ScanFile`.

Both are held for every file at every endpoint (400k at 100k one-file scans on three
endpoints). Kept as two ints they cost two objects and two slots each; packed into one int
(`ctime_ns << 64 | inode`) one object and one slot: ~32 bytes less per file, 13 MB at 100k
(issue 15's memory target). The packing is exact: what does not fit it (an inode of 2^64 or
more, a negative ctime, only one of the two known) is kept as the `(inode, ctime_ns)` pair, and
two identities are equal exactly when both their inodes and their ctimes are.
"""

from __future__ import annotations

from typing import Any, ClassVar

_INODE_BITS = 64
_INODE_MASK = (1 << _INODE_BITS) - 1

Identity = int | tuple[int | None, int | None] | None
KEEP: Any = object()  # an identity part not given to a constructor: kept from `identity`


def pack(inode: int | None, ctime_ns: int | None) -> Identity:
    """One value for the pair (None when neither is known)."""
    if inode is None and ctime_ns is None:
        return None
    if (
        isinstance(inode, int)
        and isinstance(ctime_ns, int)
        and 0 <= inode <= _INODE_MASK
        and ctime_ns >= 0
    ):
        return (ctime_ns << _INODE_BITS) | inode
    return (inode, ctime_ns)


def inode_of(identity: Identity) -> int | None:
    if identity is None:
        return None
    if type(identity) is int:
        return identity & _INODE_MASK
    return identity[0]  # type: ignore[index]


def ctime_of(identity: Identity) -> int | None:
    if identity is None:
        return None
    if type(identity) is int:
        return identity >> _INODE_BITS
    return identity[1]  # type: ignore[index]


def given(identity: Identity, inode: int | None, ctime_ns: int | None) -> Identity:
    """The identity a constructor was given: `identity` (from `dataclasses.replace`), with the
    parts given by name (not `KEEP`) put in its place."""
    if inode is KEEP and ctime_ns is KEEP:
        return identity
    return pack(
        inode_of(identity) if inode is KEEP else inode,
        ctime_of(identity) if ctime_ns is KEEP else ctime_ns,
    )


class WithIdentity:
    """`inode` and `ctime_ns`, read from the `identity` a `FileStat` or `ScanFile` keeps."""

    __slots__ = ()
    identity: Identity
    _SHOWN: ClassVar[
        tuple[str, ...]
    ] = ()  # the fields a repr names, in order, as the dataclass did

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._SHOWN)
        return f"{type(self).__name__}({shown})"

    @property
    def inode(self) -> int | None:
        return inode_of(self.identity)

    @property
    def ctime_ns(self) -> int | None:
        return ctime_of(self.identity)

"""A read-only mapping: a settled pass's mapping with a few entries added on top.

A delta pass (engine/incremental/delta.py) adds a thousand new scans to what a settled pass
saw about a hundred thousand; copying each of those maps (scans, every endpoint's replicas and
listing) to add the new entries cost more than everything else the pass did. `Overlay` reads
through to the settled mapping instead, which nobody changes while the overlay is in use (the
settled pass's observation is only read, and is dropped once a pass finds new scans).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import chain
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Overlay(Mapping[K, V]):
    """`base` with `added` on top (an entry of `added` wins), without copying `base`."""

    __slots__ = ("_added", "_base", "_len")
    _base: Mapping[K, V]
    _added: dict[K, V]
    _len: int

    def __init__(self, base: Mapping[K, V], added: Mapping[K, V]) -> None:
        if isinstance(base, Overlay) and not base._added:
            base = base._base
        self._base = base
        self._added = dict(added)
        self._len = len(base) + sum(1 for key in self._added if key not in base)

    def __getitem__(self, key: K) -> V:
        try:
            return self._added[key]
        except KeyError:
            return self._base[key]

    def get(self, key: K, default: V | None = None) -> V | None:  # type: ignore[override]
        found = self._added.get(key, _MISSING)
        if found is _MISSING:
            return self._base.get(key, default)
        return found  # type: ignore[return-value]

    def __contains__(self, key: object) -> bool:
        return key in self._added or key in self._base

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[K]:
        added = self._added
        return chain((key for key in self._base if key not in added), added)

    @property
    def added(self) -> Mapping[K, V]:
        """The entries put on top of the base."""
        return self._added


_MISSING = object()

__all__ = ["Overlay"]

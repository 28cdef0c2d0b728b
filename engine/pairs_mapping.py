"""A read-only mapping whose pairs are read straight from where it keeps them.

`collections.abc.Mapping` makes `items()` and `values()` look every key up again; the compact
per-scan maps (`engine.scan_rows.RowMap`, `engine.incremental.folder_listings.FolderListings`)
can hand their pairs out directly, which matters when a pass walks 100k of them.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from typing import Any, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class PairsMapping(Mapping[K, V]):
    """A `Mapping` whose `_pairs()` yields every (key, value): keys, items and values use it."""

    __slots__ = ()

    def _pairs(self) -> Iterator[tuple[K, V]]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[K]:
        return (key for key, _ in self._pairs())

    def items(self) -> ItemsView[K, V]:
        return _Items(self)

    def values(self) -> ValuesView[V]:
        return _Values(self)


class _Items(ItemsView[K, V]):
    _mapping: PairsMapping[K, V]

    def __iter__(self) -> Iterator[tuple[K, V]]:
        return self._mapping._pairs()


class _Values(ValuesView[V]):
    _mapping: PairsMapping[Any, V]

    def __iter__(self) -> Iterator[V]:
        return (value for _, value in self._mapping._pairs())

"""A read-only mapping that finds one value (`_find`) and hands out its pairs directly.

The compact per-scan maps (`engine.scan_rows.RowMap`, `engine.store.mark_table.EndpointMarks`,
`engine.catalog.doc_index.DocIndex`, `engine.incremental.folder_listings.FolderListings`) each
know how to find one value and how to walk their pairs; look-ups, membership, keys, items and
values follow from those two. `collections.abc.Mapping` would look every key up again for
`items()` and `values()`, which matters when a pass walks 100k of them.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from typing import Any, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class PairsMapping(Mapping[K, V]):
    """A `Mapping` made of `_find(key)` (the value, None when absent: no value is None) and
    `_pairs()` (every key and value)."""

    __slots__ = ()

    def _find(self, key: object) -> V | None:
        raise NotImplementedError

    def _pairs(self) -> Iterator[tuple[K, V]]:
        raise NotImplementedError

    def get(self, key: K, default: V | None = None) -> V | None:  # type: ignore[override]
        found = self._find(key)
        return default if found is None else found

    def __getitem__(self, key: K) -> V:
        found = self._find(key)
        if found is None:
            raise KeyError(key)
        return found

    def __contains__(self, key: object) -> bool:
        return self._find(key) is not None

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

"""Small helpers of the tape mover (engine/storage/tape.py): a task item as a scan, member
names under a kept-as name, and the actions a bundle's results belong to."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.model import Scan
from engine.storage.base import ItemResult
from engine.store.connection import StoreBase


def _renamed(path: str, scan: str, name: str) -> str:
    return path if name == scan else name + path[len(scan) :]


def _item_scan(item: Any) -> Scan:
    from datetime import UTC

    newest = max((f.mtime for f in item.files), default=0.0)
    return Scan(
        item.scan,
        tuple(item.files),
        datetime.fromtimestamp(newest, UTC),
        item.checksum_algorithm,
        item.whole_checksum() or "",
        is_directory=item.recursive,
    )


def _items_by_scan(store: StoreBase, submission: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in store._conn().execute(
        "SELECT action_id, scan FROM task_items WHERE submission_id = ?", (submission,)
    ):
        out.setdefault(r["scan"], []).append(r["action_id"])
    return out


def _with_action(result: ItemResult, action_id: str) -> ItemResult:
    from dataclasses import replace

    return replace(result, action_id=action_id)

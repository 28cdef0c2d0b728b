"""Swap an endpoint's root under a running local task, for one child `bl931tui`, loaded through
PYTHONPATH by `tests/adversary/test_root_swaps.py`. Production code is not touched: the hooks
wrap the local mover's own calls (`place_file`, `_delete_item`), which run in its worker thread
after the executor handed the task over, i.e. after every identity check the pass made.

- `BL931_UNMOUNT_AFTER_PLACE=DIR`: right after the first file the local mover placed below DIR,
  DIR is moved to `DIR.away` and an empty DIR is made in its place (the filesystem unmounted
  while the task runs, its bare mount point left). With `BL931_SWAP_MARKER=FILE`, FILE (another
  endpoint's identity marker) is copied into the new DIR: another filesystem mounted there.
- `BL931_SWAP_BEFORE_DELETE=DIR`: right before the local mover deletes its first scan below DIR,
  DIR is moved to `DIR.away` and a copy of its whole tree is put in its place, carrying the
  marker FILE of `BL931_SWAP_MARKER` instead of its own (another filesystem holding the same
  files, e.g. a backup of it, mounted there); without `BL931_SWAP_MARKER`, DIR is left bare.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

_AFTER_PLACE = os.environ.get("BL931_UNMOUNT_AFTER_PLACE", "")
_BEFORE_DELETE = os.environ.get("BL931_SWAP_BEFORE_DELETE", "")
_MARKER = os.environ.get("BL931_SWAP_MARKER", "")
_MARKER_NAME = ".bl931-endpoint.json"
_lock = threading.Lock()
_done: set[str] = set()


def _swap(root: Path, *, keep_tree: bool) -> None:
    away = Path(f"{root}.away")
    os.rename(root, away)
    if keep_tree:
        shutil.copytree(away, root)
        (root / _MARKER_NAME).unlink(missing_ok=True)
    else:
        root.mkdir()
    if _MARKER:
        shutil.copy2(_MARKER, root / _MARKER_NAME)


def _once(key: str) -> bool:
    with _lock:
        if key in _done:
            return False
        _done.add(key)
        return True


if _AFTER_PLACE or _BEFORE_DELETE:
    from engine.storage import local_mover

    if _AFTER_PLACE:
        _place = local_mover.place_file
        _root = Path(_AFTER_PLACE)

        def _place_then_unmount(source: Path, target: Path, *args: Any, **kw: Any) -> Any:
            placed = _place(source, target, *args, **kw)
            if Path(target).is_relative_to(_root) and _once("place"):
                _swap(_root, keep_tree=False)
            return placed

        local_mover.place_file = _place_then_unmount

    if _BEFORE_DELETE:
        _delete = local_mover.LocalMover._delete_item
        _droot = Path(_BEFORE_DELETE)

        def _swap_then_delete(self: Any, task: Any, item: Any) -> Any:
            if self._roots.get(task.request.target) == _droot and _once("delete"):
                _swap(_droot, keep_tree=bool(_MARKER))
            return _delete(self, task, item)

        local_mover.LocalMover._delete_item = _swap_then_delete  # type: ignore[method-assign]

"""`safe_path` for many paths below one endpoint root, without resolving the root each time.

`safe_path` resolves the root and then the whole candidate with `os.path.realpath`: about
twenty `lstat` calls per file on a deep mount, 0.12 ms each time — a quarter of the bookkeeping
of a pass that hashes a thousand new scans. `RootPaths` resolves the root once and, for each
path, checks that the root still names that very directory (one `stat` of the root, one `lstat`
of its resolved path: an unmount, a re-pointed symlink or a renamed ancestor changes one of
them, and the root is resolved again) and then `lstat`s only the components below it. Any
symlink below the root is refused, as `safe_path` refuses it (and with its message); anything
unusual (a component missing, not a folder, unreadable) falls back to `safe_path` itself, so
the answer is never looser than `safe_path`'s.

`LocalStorage.resolve` uses it (the inventory walk's checksums, `stat_scan`); the deletes and
the last look's re-hash call `safe_path` directly.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from engine.errors import UnsafePath
from engine.storage.localfs import check_relpath, safe_path

_Ident = tuple[int, int]


class RootPaths:
    """Checked paths below one root (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._real: str | None = None
        self._ident: _Ident | None = None

    def path(self, relpath: str) -> Path:
        """`root / relpath`, refused exactly when `safe_path(root, relpath)` refuses it.

        Raises:
            UnsafePath: the path is malformed, or passes a symlink below the root.
        """
        check_relpath(relpath)
        real = self._resolved()
        if real is None:
            return safe_path(self.root, relpath)
        here = real
        for part in relpath.split("/"):
            here = os.path.join(here, part)
            try:
                mode = os.lstat(here).st_mode
            except OSError:
                return safe_path(self.root, relpath)  # missing or unreadable: the slow check
            if stat.S_ISLNK(mode):
                safe_path(self.root, relpath)  # raises with the resolved target named
                raise UnsafePath(f"{relpath!r} goes through a symlink; symlinks are never followed")
        return self.root / relpath

    def _resolved(self) -> str | None:
        """The root's resolved path, resolved again if the root no longer names that folder;
        None if the root cannot be stat'ed (the caller takes the slow path)."""
        try:
            now = _ident(os.stat(self.root))
            if self._real is not None and self._ident == now == _ident(os.lstat(self._real)):
                return self._real
            real = os.path.realpath(self.root)
            if _ident(os.lstat(real)) != now:
                return None  # it moved while resolved: no shortcut this time
        except OSError:
            return None
        self._real, self._ident = real, now
        return real


def _ident(st: os.stat_result) -> _Ident:
    return (st.st_dev, st.st_ino)


__all__ = ["RootPaths"]

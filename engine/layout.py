"""How files group into scans, identically on every endpoint.

A scan is either one file (`scan = "file"`) or every file below one directory at a fixed
`depth` (`scan = "directory"`). Include/exclude patterns are globs over the path relative to the
endpoint root: `*` and `?` stay within one path component, `**/` spans any number of them. An
exclude that matches a directory excludes everything below it (so `**/.*` hides dot-folders too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.config import InventoryConfig

# Temporary names the engine writes while copying; never part of any scan.
ENGINE_TEMP_PREFIX = ".bl931-"

# Paths whose include/exclude verdict is remembered (a few bytes each; ~2x a large beamline).
_MEMO_LIMIT = 2_000_000


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Translate a `**`-aware glob into an anchored regular expression over POSIX paths."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape("["))
                i += 1
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _either(patterns: tuple[re.Pattern[str], ...]) -> re.Pattern[str] | None:
    """One regex matching where any of `patterns` matches (one call per path instead of n)."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{rx.pattern})" for rx in patterns), re.DOTALL)


@dataclass(frozen=True)
class ScanLayout:
    unit: str = "file"  # "file" | "directory"
    depth: int = 1
    include: tuple[str, ...] = ("**/*",)
    exclude: tuple[str, ...] = ()

    @cached_property
    def _include(self) -> tuple[re.Pattern[str], ...]:
        return tuple(glob_to_regex(p) for p in self.include)

    @cached_property
    def _exclude(self) -> tuple[re.Pattern[str], ...]:
        return tuple(glob_to_regex(p) for p in self.exclude)

    def excluded(self, relpath: str) -> bool:
        """True if the path, or any folder above it, matches an exclude (or is an engine temp)."""
        parts = relpath.split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if parts[i - 1].startswith(ENGINE_TEMP_PREFIX):
                return True
            if any(rx.match(prefix) for rx in self._exclude):
                return True
        return False

    def accepts(self, relpath: str) -> bool:
        """Does this file belong to some scan?"""
        if self.excluded(relpath):
            return False
        return any(rx.match(relpath) for rx in self._include)

    def scan_of(self, relpath: str, *, folders_checked: bool = False) -> str | None:
        """The scan id a file belongs to, or None if it belongs to none.

        `folders_checked`: the caller is a walk that already skipped every folder
        `walk_prunes` named, so no folder above the file is excluded and only the path itself
        is tested. Same answer; it keeps a 100k-file listing well under a second.
        """
        if folders_checked:
            # Every listing of every endpoint asks this for the same paths each pass.
            memo = self._accepted_memo
            accepted = memo.get(relpath)
            if accepted is None:
                if len(memo) >= _MEMO_LIMIT:
                    memo.clear()  # bounded: paths of long-deleted scans are not kept forever
                accepted = memo[relpath] = self._accepts_itself(relpath)
        else:
            accepted = self.accepts(relpath)
        if not accepted:
            return None
        if self.unit == "file":
            return relpath
        parts = relpath.split("/")
        if len(parts) <= self.depth:
            return None  # a file above the scan depth belongs to no scan
        return "/".join(parts[: self.depth])

    @cached_property
    def _accepted_memo(self) -> dict[str, bool]:
        return {}

    @cached_property
    def _exclude_any(self) -> re.Pattern[str] | None:
        return _either(self._exclude)

    @cached_property
    def _include_any(self) -> re.Pattern[str] | None:
        return _either(self._include)

    def _accepts_itself(self, relpath: str) -> bool:
        if relpath.rpartition("/")[2].startswith(ENGINE_TEMP_PREFIX):
            return False
        if self._exclude_any is not None and self._exclude_any.match(relpath):
            return False
        return self._include_any is not None and self._include_any.match(relpath) is not None

    def walk_prunes(self, reldir: str) -> bool:
        """May a walk skip this folder entirely? (It is excluded, so nothing below counts.)"""
        return bool(reldir) and self.excluded(reldir)

    @classmethod
    def from_config(cls, inventory: InventoryConfig) -> ScanLayout:
        return cls(
            unit=inventory.scan,
            depth=inventory.depth,
            include=tuple(inventory.include),
            exclude=tuple(inventory.exclude),
        )

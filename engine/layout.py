"""How files group into scans, identically on every endpoint.

A scan is either one file (`scan = "file"`) or every file below one directory at a fixed
`depth` (`scan = "directory"`). Include/exclude patterns are globs over the path relative to the
endpoint root, translated by `wcmatch` (the dialect is documented in docs/watcher.md): `*`, `?`
and `[...]` stay within one path component, a component `**` spans any number of them. An
exclude that matches a directory excludes everything below it (so `**/.*` hides dot-folders too).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from wcmatch import glob as wcglob

if TYPE_CHECKING:
    from engine.config import InventoryConfig

# Temporary names the engine writes while copying; never part of any scan.
ENGINE_TEMP_PREFIX = ".bl931-"

# Paths whose include/exclude verdict is remembered: the names a burst of new scans asks about
# on every endpoint. Folders read again ask only about names they did not list before
# (engine/incremental/dirs.py), so the memo need not hold every scan (3.8 MB at 100k, issue 15).
_MEMO_LIMIT = 1 << 14


# The glob dialect of include/exclude patterns and done markers, translated by wcmatch:
# `**` as a whole component spans folders (GLOBSTAR), `*`/`?`/`[...]` match a leading dot too
# (DOTGLOB, so `**/*` includes dot-files unless an exclude hides them), POSIX paths and case on
# every platform (FORCEUNIX, CASE). No braces, extglobs or `!` negation: `{`, `(`, `+`, `@` and a
# leading `!` are literal characters.
GLOB_FLAGS = wcglob.GLOBSTAR | wcglob.DOTGLOB | wcglob.FORCEUNIX | wcglob.CASE


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Translate an include/exclude glob into an anchored regular expression over POSIX paths.

    `.match(path)` answers for the whole path (like `fullmatch`), so callers may combine several
    of these with `|` and keep one regex call per path.
    """
    (regex,), _ = wcglob.translate(pattern, flags=GLOB_FLAGS)
    return re.compile(_true_end_anchors(regex))


def _true_end_anchors(regex: str) -> str:
    """`$` → `\\Z` outside character classes.

    wcmatch anchors with `$` (it calls `fullmatch` itself), and guards `.`/`..` components with
    `(?:$|/)`; `$` also matches before a final newline, and a file name may end with one.
    """
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(regex):
        char = regex[i]
        if char == "\\":
            out.append(regex[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if regex.startswith("^", i + 1):  # a negation, never the class's closing bracket
                out.append("[^")
                i += 2
                continue
        elif char == "$":
            char = r"\Z"
        out.append(char)
        i += 1
    return "".join(out)


def _either(patterns: list[str]) -> re.Pattern[str] | None:
    """One regex matching where any of the globs matches (one call per path instead of n)."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{glob_to_regex(p).pattern})" for p in patterns), re.DOTALL)


class GlobSet:
    """Does a path match any of several globs? One or two regex calls per path.

    A glob `**/NAME` (NAME one component, not `**`) matches exactly the paths whose last
    component matches NAME, so those globs are tested against the file name alone: the default
    includes and excludes are all of that form, and the name alone is several times faster to
    match than the whole path (the translation guards every folder it spans).
    """

    def __init__(self, patterns: tuple[str, ...]) -> None:
        by_name = [p[3:] for p in patterns if _name_at_any_depth(p)]
        whole = [p for p in patterns if not _name_at_any_depth(p)]
        self._by_name = _either(by_name)
        self._whole = _either(whole)

    def match(self, relpath: str) -> bool:
        if self._by_name is not None and self._by_name.match(relpath.rpartition("/")[2]):
            return True
        return self._whole is not None and self._whole.match(relpath) is not None


def _name_at_any_depth(pattern: str) -> bool:
    name = pattern[3:]
    return pattern.startswith("**/") and "/" not in name and name not in {"", "**"}


@dataclass(frozen=True)
class ScanLayout:
    unit: str = "file"  # "file" | "directory"
    depth: int = 1
    include: tuple[str, ...] = ("**/*",)
    exclude: tuple[str, ...] = ()

    @cached_property
    def _include(self) -> GlobSet:
        return GlobSet(self.include)

    @cached_property
    def _exclude(self) -> GlobSet:
        return GlobSet(self.exclude)

    def excluded(self, relpath: str) -> bool:
        """True if the path, or any folder above it, matches an exclude (or is an engine temp)."""
        parts = relpath.split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if parts[i - 1].startswith(ENGINE_TEMP_PREFIX):
                return True
            if self._exclude.match(prefix):
                return True
        return False

    def accepts(self, relpath: str) -> bool:
        """Does this file belong to some scan?"""
        if self.excluded(relpath):
            return False
        return self._include.match(relpath)

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
        return sys.intern("/".join(parts[: self.depth]))  # one id object per scan (compact)

    @cached_property
    def _accepted_memo(self) -> dict[str, bool]:
        return {}

    def _accepts_itself(self, relpath: str) -> bool:
        if relpath.rpartition("/")[2].startswith(ENGINE_TEMP_PREFIX):
            return False
        return not self._exclude.match(relpath) and self._include.match(relpath)

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

"""Export control: an export-controlled scan never leaves the site.

An endpoint marked `offsite = true` is outside the facility (e.g. NERSC). A scan is
export-controlled when the acquisition watcher says so (`--notify PATH --export-control`, the
`notify_new_scan` flow) or when a `[export_control] controlled` glob matches it. For such a scan:

- no copy into an off-site endpoint is planned: it is blocked with `export_controlled`, a settled
  state (the policy forbids it; nothing is waiting);
- no delete relies on an off-site copy: a delete whose `delete_requires` names an off-site
  endpoint is blocked with `export_controlled` too, so the on-site copy is kept.

With an `[export_control]` section configured, a scan goes off-site only once its flag is known:
a notify (with or without `--export-control`), or a `controlled` / `cleared` glob that matches.
Until then its off-site copies (and deletes relying on them) wait as `export_control_unknown`.
"Controlled" always wins: a controlled rule over a notify without the flag, a notify with the
flag over a `cleared` rule, and a flag once given over any later notify without it.

Globs use the inventory's dialect (engine/layout.py) over the scan path relative to the
inventory root; a glob matching a folder above the scan covers the scan (as excludes do).
This module is pure: the flags from notifies come in as values (engine/scan_hints.py keeps
them in the state store).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, field_validator

from engine.layout import GlobSet, glob_to_regex

CONTROLLED = "export_controlled"  # settled: the policy forbids the copy
UNKNOWN = "export_control_unknown"  # pending: waits for a notify or a deciding rule

# (reason code, source) of a scan whose off-site copies are held back; None: none is.
ExportFact = tuple[str, str] | None


class ExportControlConfig(BaseModel):
    """`[export_control]`: path rules deciding whether a scan is export-controlled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    controlled: tuple[str, ...] = ()  # globs: these scans are export-controlled
    cleared: tuple[str, ...] = ()  # globs: these scans are not (unless a notify flags them)

    @field_validator("controlled", "cleared")
    @classmethod
    def _globs(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            if not pattern or pattern.startswith("/"):
                raise ValueError(
                    f"glob {pattern!r}: give a pattern relative to the inventory root "
                    "(e.g. 'proprietary/**')"
                )
            try:
                glob_to_regex(pattern)
            except Exception as exc:  # wcmatch raises several kinds for a malformed glob
                raise ValueError(f"glob {pattern!r} is not valid: {exc}") from None
        return patterns


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a scan is export-controlled (None: not known yet) and what decided it."""

    controlled: bool | None
    source: str  # "notify", "rule <glob>", "default" (no [export_control] section), ""


class _Rules:
    """Globs compiled once: which of them matches a scan or a folder above it."""

    def __init__(self, globs: tuple[str, ...]) -> None:
        self.any = GlobSet(globs)
        self.each = [(glob, glob_to_regex(glob)) for glob in globs]
        self._folders: dict[str, str | None] = {}  # folder → its verdict (many scans share one)
        self._scans: dict[str, str | None] = {}  # scan → its verdict (a few MB at 100k scans)

    def _here(self, path: str) -> str | None:
        if not self.any.match(path):
            return None
        if len(self.each) == 1:
            return self.each[0][0]
        return next((g for g, rx in self.each if rx.match(path)), self.each[0][0])

    def _folder(self, folder: str) -> str | None:
        if folder in self._folders:
            return self._folders[folder]
        parent, _, _ = folder.rpartition("/")
        found = self._here(folder) or (self._folder(parent) if parent else None)
        self._folders[folder] = found
        return found

    def first(self, scan: str) -> str | None:
        """A glob matching the scan or a folder above it (the scan first, then the nearest
        folder), or None."""
        if scan in self._scans:
            return self._scans[scan]
        folder = scan.rpartition("/")[0]
        found = self._here(scan) or (self._folder(folder) if folder else None)
        if len(self._scans) >= 2_000_000:
            self._scans.clear()  # bounded: scans long gone are not kept forever
        self._scans[scan] = found
        return found


@functools.lru_cache(maxsize=8)
def _compiled(globs: tuple[str, ...]) -> _Rules:
    """The same rules from pass to pass keep their compiled globs and their answers."""
    return _Rules(globs)


@dataclass
class ExportControl:
    """The export-control facts of one pass.

    Args:
        offsite: endpoints marked `offsite = true`.
        rules: the `[export_control]` section, or None when it is not configured.
        flags: scan → the flag its notifies gave (True once any notify flagged it).
    """

    offsite: frozenset[str] = frozenset()
    rules: ExportControlConfig | None = None
    flags: Mapping[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rules = self.rules
        self._controlled = _compiled(rules.controlled) if rules and rules.controlled else None
        self._cleared = _compiled(rules.cleared) if rules and rules.cleared else None
        self._verdicts: dict[str, Verdict] = {}

    @property
    def active(self) -> bool:
        """Whether anything can hold a scan back (some endpoint is off-site)."""
        return bool(self.offsite)

    def verdict(self, scan: str) -> Verdict:
        known = self._verdicts.get(scan)
        if known is not None:
            return known
        flag = self.flags.get(scan)
        rules = self.rules
        verdict: Verdict
        if flag:
            verdict = Verdict(True, "notify")
        elif self._controlled is not None and (glob := self._controlled.first(scan)):
            verdict = Verdict(True, f"rule {glob}")
        elif flag is False:
            verdict = Verdict(False, "notify")
        elif self._cleared is not None and (glob := self._cleared.first(scan)):
            verdict = Verdict(False, f"rule {glob}")
        elif rules is not None:
            verdict = Verdict(None, "")
        else:
            verdict = Verdict(False, "default")
        self._verdicts[scan] = verdict
        return verdict

    def fact(self, scan: str) -> ExportFact:
        """What holds the scan's off-site copies back (code, source), or None: the planner's
        per-scan fact (scans with equal facts are planned alike)."""
        if not self.offsite:
            return None
        verdict = self.verdict(scan)
        if verdict.controlled:
            return CONTROLLED, verdict.source
        if verdict.controlled is None:
            return UNKNOWN, ""
        return None

    def flagged(self, scans: Iterable[str]) -> tuple[tuple[str, str], ...]:
        """(scan, source) of every export-controlled scan among `scans`, in order."""
        if not self.flags and (self.rules is None or self._controlled is None):
            return ()
        out = []
        for scan in sorted(scans):
            verdict = self.verdict(scan)
            if verdict.controlled:
                out.append((scan, verdict.source))
        return tuple(out)


def copy_blocker(fact: ExportFact, offsite: frozenset[str], target: str) -> tuple[str, str] | None:
    """Why a copy into `target` may not be planned for a scan with this fact, or None."""
    if fact is None or target not in offsite:
        return None
    code, source = fact
    if code == CONTROLLED:
        return code, f"export-controlled ({source}): never copied to off-site endpoint {target}"
    return code, (
        f"{target} is off-site: waits until the scan's export control is known (a --notify "
        "from the acquisition watcher, or an [export_control] rule that matches it)"
    )


def delete_blocker(
    fact: ExportFact, offsite: frozenset[str], requires: Iterable[str]
) -> tuple[str, str] | None:
    """Why a delete relying on copies at `requires` may not be planned, or None: the copy it
    keeps is never given up for an off-site one of an export-controlled (or undecided) scan."""
    if fact is None:
        return None
    outside = [name for name in requires if name in offsite]
    if not outside:
        return None
    code, source = fact
    names = ", ".join(outside)
    if code == CONTROLLED:
        return code, (
            f"export-controlled ({source}): kept here, since the delete would rely on the "
            f"off-site copy at {names}"
        )
    return code, (
        f"the delete relies on the off-site copy at {names}: waits until the scan's export "
        "control is known"
    )

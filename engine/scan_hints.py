"""What the acquisition watcher says about a scan: it is complete, and export-controlled or not.

A hint comes from `bl931tui --notify PATH [--export-control]` or the `notify_new_scan` flow
(the splash_flows dispatcher's signature). It is kept in the state store's `scan_hints` table,
so a hint given while no service runs is used by the next pass, whoever runs it:

- *completion*: the scan's listing signature when the hint was recorded. The inventory walk
  accepts the scan as complete before `quiet_seconds` while its listing still has that
  signature (as for the live watcher's declarations); a scan that changed since is judged
  afresh;
- *export control*: the flag (engine/export_control.py). It is sticky: once a notify flagged a
  scan, a later notify without the flag does not clear it.

Only the store's owner writes hints (engine/notify.py hands them over); a hint never copies
anything by itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from engine.config import Config
from engine.errors import Bl931Error, UnsafePath, UsageError
from engine.export_control import ExportControl
from engine.layout import ScanLayout
from engine.state import StateStore, iso
from engine.storage.local import LocalStorage


class UnknownScanPath(UsageError):
    """A notified path that is no scan of the inventory endpoint (exit 64)."""


@dataclass(frozen=True, slots=True)
class Hint:
    """One notify, resolved: the scan it names and its signature now (None: not listed here)."""

    scan: str
    path: str
    export_controlled: bool
    signature: str | None


def _inventory_roots(config: Config) -> list[str]:
    endpoint = config.endpoints[config.inventory.endpoint]
    roots = []
    if endpoint.path is not None:
        roots.append(os.path.normpath(endpoint.path))
        resolved = os.path.normpath(os.path.realpath(endpoint.path))
        if resolved not in roots:
            roots.append(resolved)
    if endpoint.root:
        roots.append(os.path.normpath(endpoint.root))
    return roots


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escaped(name: str) -> str:
    """A name as text anyone can read: undecodable bytes (surrogate escapes) as `\\xNN`."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def relative_scan_path(config: Config, path: str) -> str:
    """`path` relative to the inventory root: an absolute path under the inventory endpoint's
    local `path` (or its Globus `root`), or a path already relative to that root.

    Raises:
        UnknownScanPath: the path is outside the inventory endpoint, or climbs out with `..`.
    """
    name = config.inventory.endpoint
    text = path.strip()
    if not text:
        raise UnknownScanPath("--notify: the path is empty")
    if not _is_utf8(text):
        # The walk leaves such a scan out as a problem (engine/inventory/walk.py): the state
        # store, the catalog and Globus all need text.
        raise UnknownScanPath(
            f"--notify {escaped(path)}: the name is not valid UTF-8, so the inventory walk "
            "leaves it out as a problem (no scan); rename it to include it"
        )
    if os.path.isabs(text):
        normal = os.path.normpath(text)
        for root in _inventory_roots(config):
            if normal == root:
                break
            if normal.startswith(root.rstrip("/") + "/"):
                return normal[len(root.rstrip("/")) + 1 :]
        roots = " or ".join(_inventory_roots(config)) or "(no path)"
        raise UnknownScanPath(
            f"--notify {path}: not under the inventory endpoint {name} ({roots}); give a path "
            "below its root, or one relative to it"
        )
    parts = PurePosixPath(text).parts
    if ".." in parts:
        raise UnknownScanPath(f"--notify {path}: a path may not climb out of the root with '..'")
    return "/".join(p for p in parts if p not in (".", ""))


def scan_of_path(config: Config, path: str) -> str:
    """The scan id a notified path names (a file of the scan, or a directory scan's folder).

    Raises:
        UnknownScanPath: not under the inventory endpoint, or no scan there by the layout.
    """
    relative = relative_scan_path(config, path)
    layout = ScanLayout.from_config(config.inventory)
    scan = layout.scan_of(relative) if relative else None
    depth = len(relative.split("/"))
    if scan is None and layout.unit == "directory" and depth == layout.depth:
        scan = None if layout.excluded(relative) else relative
    if scan is None:
        raise UnknownScanPath(
            f"--notify {path}: {relative or '(the root)'} is no scan of the inventory endpoint "
            f"{config.inventory.endpoint} (scan = {layout.unit!r}, depth {layout.depth}; "
            "excluded, or not matched by [inventory] include)"
        )
    return scan


def resolve(config: Config, path: str, export_controlled: bool) -> Hint:
    """The hint a notify gives: its scan and, on a local inventory, the scan's signature now.

    On a local inventory the path is judged as the walk judges it: a path through a symlink
    (a linked file or folder, pointing inside the root or out of it) is no scan, since the walk
    never follows one; nor is a scan with a file whose name is not valid UTF-8 (the walk
    reports it as a problem).

    Raises:
        UnknownScanPath: see `scan_of_path`; also a local scan that is not there, a path
            through a symlink, or a file name that is not valid UTF-8.
    """
    scan = scan_of_path(config, path)
    endpoint = config.endpoints[config.inventory.endpoint]
    signature = None
    if endpoint.path is not None:
        layout = ScanLayout.from_config(config.inventory)
        storage = LocalStorage(config.inventory.endpoint, endpoint.path)
        try:
            storage.resolve(relative_scan_path(config, path))  # the notified file itself
            listing = storage.stat_scan(layout, scan)
        except UnsafePath as exc:
            raise UnknownScanPath(
                f"--notify {path}: no scan of the inventory endpoint "
                f"{config.inventory.endpoint} (the walk never follows a symlink): {exc}"
            ) from None
        except (Bl931Error, OSError, ValueError):
            listing = None  # the root is not mounted now: the walk judges the scan itself
            endpoint_missing = True
        else:
            endpoint_missing = False
        if listing is None and not endpoint_missing:
            raise UnknownScanPath(
                f"--notify {path}: no scan {scan!r} at {endpoint.path} (nothing there yet?)"
            )
        if listing is not None:
            odd = next((f.path for f in listing.files if not _is_utf8(f.path)), None)
            if odd is not None:
                raise UnknownScanPath(
                    f"--notify {path}: the name of its file {escaped(odd)} is not valid "
                    f"UTF-8, so the inventory walk leaves scan {scan} out as a problem; "
                    "rename the file"
                )
            signature = listing.signature
    return Hint(scan, path, export_controlled, signature)


class ScanHints:
    """The `scan_hints` table of one state store."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def record(self, hint: Hint, *, by: str, via: str, now: datetime) -> bool:
        """Keep the hint (the flag is sticky) and log an event. Returns the scan's flag now."""
        with self.store.transaction() as conn:
            conn.execute(
                """INSERT INTO scan_hints(scan, path, export_controlled, signature,
                                          notified_at, notified_by, via)
                   VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(scan) DO UPDATE SET
                       path = excluded.path,
                       export_controlled = max(export_controlled, excluded.export_controlled),
                       signature = excluded.signature,
                       notified_at = excluded.notified_at,
                       notified_by = excluded.notified_by,
                       via = excluded.via""",
                (
                    hint.scan,
                    hint.path,
                    int(hint.export_controlled),
                    hint.signature,
                    iso(now),
                    by,
                    via,
                ),
            )
            flag = bool(
                conn.execute(
                    "SELECT export_controlled FROM scan_hints WHERE scan = ?", (hint.scan,)
                ).fetchone()[0]
            )
        words = "export-controlled" if flag else "not export-controlled"
        self.store.event(
            now,
            "scan.notified",
            f"notified by {by} ({via}): {hint.scan} is complete and {words}",
            scan=hint.scan,
            data={"path": hint.path, "export_controlled": flag, "via": via},
        )
        return flag

    def _rows(self, column: str) -> list[tuple[str, object]]:
        if not self.store.has_table("scan_hints"):
            return []  # a read-only store at an older schema
        sql = f"SELECT scan, {column} FROM scan_hints"
        return [(r[0], r[1]) for r in self.store.connection().execute(sql)]

    def flags(self) -> dict[str, bool]:
        return {scan: bool(flag) for scan, flag in self._rows("export_controlled")}

    def signatures(self) -> dict[str, str]:
        return {scan: str(sig) for scan, sig in self._rows("signature") if sig is not None}


def export_control_for(config: Config, store: StateStore) -> ExportControl:
    """This pass's export-control facts: the config's rules and the store's flags."""
    offsite = frozenset(name for name, ep in config.endpoints.items() if ep.offsite)
    flags = ScanHints(store).flags() if offsite or config.export_control else {}
    return ExportControl(offsite, config.export_control, flags)


def declared_complete(
    store: StateStore, live: Callable[[], Mapping[str, str]] | None
) -> dict[str, str] | None:
    """Scan → signature of the scans declared complete: by notifies, and by the live watcher."""
    declared = ScanHints(store).signatures()
    if live is not None:
        declared.update(live())
    return declared or None

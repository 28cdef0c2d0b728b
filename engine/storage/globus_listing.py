"""`GlobusStorage`: observing a Globus collection with `operation_ls`, one call per directory.

Listing cost is what makes a pass cheap or expensive on Globus, so a pass lists only the
directories that can answer for the scans it cares about (the parents of the `wanted` scan ids,
plus recursion into directory scans), never one call per scan, and caches each directory for
the rest of the pass (`begin_pass()` opens a pass with a fresh cache, `end_pass()` closes it;
outside a pass each call lists afresh).

A listing either answers completely or raises `EndpointUnavailable`: a directory with more
entries than one call returns is paged with `offset` until the service's `total` is reached,
and an answer that stops short is an error, never a silently shorter list. A missing
subdirectory means "no scans there" only once the endpoint root itself has been listed.
"""

from __future__ import annotations

import logging
import posixpath
import threading
from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any

import globus_sdk
from globus_sdk import MISSING

from engine.errors import Bl931Error, EndpointUnavailable
from engine.layout import ScanLayout
from engine.listing import listing_of
from engine.model import ErrorClass, FileStat
from engine.storage.base import ScanListing
from engine.storage.globus_auth import GlobusSession, translate_error
from engine.storage.globus_mount import MountedTree

log = logging.getLogger(__name__)

LS_LIMIT = 100_000  # Transfer's maximum entries per operation_ls call
DEFAULT_LIST_TIMEOUT = 60.0
TAPE_LIST_TIMEOUT = 600.0  # HPSS listings wait on the tape system's metadata server

Entry = dict[str, Any]


class _NotFound(Exception):
    """A directory that does not exist (distinct from one that failed to list)."""


def parse_mtime(text: str) -> float:
    """`last_modified` ("YYYY-MM-DD HH:MM:SS+00:00") as a POSIX timestamp."""
    return datetime.fromisoformat(text).timestamp()


def join(root: str, relpath: str) -> str:
    """The collection path of `relpath` below the endpoint `root`."""
    return posixpath.join(root.rstrip("/") or "/", relpath) if relpath else (root or "/")


class GlobusStorage:
    """Read access to one endpoint on a Globus collection (implements `Storage`).

    Args:
        name: the endpoint's name in the config.
        collection: the collection UUID.
        root: the tree's root path on the collection; a scan id is appended to it.
        session: the shared authenticated session.
        tape: an HPSS collection (longer timeouts).
        timeout: seconds per listing call (default 60, 600 on tape).
        page_limit: entries requested per `operation_ls` call (at most 100,000).
        mount: the same tree mounted here (`path`), through which checksums are computed.
    """

    def __init__(
        self,
        name: str,
        collection: str,
        root: str,
        session: GlobusSession,
        *,
        tape: bool = False,
        timeout: float | None = None,
        page_limit: int = LS_LIMIT,
        mount: MountedTree | None = None,
    ) -> None:
        self.name = name
        self.mount = mount
        self.collection = collection
        self.root = root
        self.tape = tape
        self.timeout = timeout or (TAPE_LIST_TIMEOUT if tape else DEFAULT_LIST_TIMEOUT)
        self.page_limit = min(page_limit, LS_LIMIT)
        self._session = session
        self._client = session.transfer_client(self.timeout)
        self._cache: dict[str, list[Entry]] = {}
        self._pass_open = False
        self._lock = threading.Lock()
        self.ls_calls = 0

    def begin_pass(self) -> None:
        """Start a pass: forget cached listings, then keep each one until `end_pass`.

        Without an open pass, every `list_scans` call lists afresh (the cache then only spares
        repeats within that call), so a caller that never calls this never sees stale data.
        """
        with self._lock:
            self._cache.clear()
            self._pass_open = True

    def end_pass(self) -> None:
        """Close the pass: later calls list afresh."""
        with self._lock:
            self._cache.clear()
            self._pass_open = False

    # ------------------------------------------------------------------ Storage protocol

    def list_scans(
        self, layout: ScanLayout, wanted: Collection[str] | None = None
    ) -> dict[str, ScanListing]:
        """List scans: everything below the root, or just what answers for `wanted`.

        With `wanted`, the parent directory of each wanted scan is listed once; for directory
        scans, only the wanted scan directories found there are walked. Other scans found in
        the same directories are returned too (the protocol allows more).

        Raises:
            EndpointUnavailable: some directory could not be listed completely.
        """
        with self._lock:
            if not self._pass_open:
                self._cache.clear()
        try:
            return _group(layout, self._collect(layout, wanted))
        except _NotFound as gone:
            raise EndpointUnavailable(
                self.name, f"{gone} on {self._where} vanished while it was being listed"
            ) from None

    def _collect(self, layout: ScanLayout, wanted: Collection[str] | None) -> list[FileStat]:
        files: list[FileStat] = []
        if wanted is None:
            try:
                self._ls("", cached=True)
            except _NotFound:
                raise self._root_missing() from None
            files.extend(self._walk(layout, "", cached=True))
        else:
            wanted_set = set(wanted)
            parents = sorted({posixpath.dirname(s) for s in wanted_set})
            for parent in parents:
                entries = self._ls_or_absent(parent, cached=True)
                for entry in entries:
                    relpath = posixpath.join(parent, entry["name"]) if parent else entry["name"]
                    if entry.get("type") == "file" and layout.unit == "file":
                        files.append(_stat(relpath, entry))
                    elif (
                        entry.get("type") == "dir"
                        and layout.unit == "directory"
                        and relpath in wanted_set
                        and not layout.walk_prunes(relpath)
                    ):
                        files.extend(self._walk(layout, relpath, cached=True))
        return files

    def stat_scan(self, layout: ScanLayout, scan: str) -> ScanListing | None:
        """A fresh, uncached listing of one scan (None if absent), for re-checks before deletes."""
        if layout.unit == "file":
            parent = posixpath.dirname(scan)
            entries = self._ls_or_absent(parent, cached=False, name=posixpath.basename(scan))
            files = [
                _stat(scan, e)
                for e in entries
                if e.get("type") == "file" and posixpath.join(parent, e["name"]) == scan
            ]
        else:
            try:
                files = list(self._walk(layout, scan, cached=False))
            except _NotFound:
                self._require_root()
                files = []
        listing = _group(layout, files).get(scan)
        return listing

    def folder_files(self, reldir: str) -> list[FileStat]:
        """A fresh, uncached listing of the files directly in one folder (paths relative to the
        root; none if the folder is missing). Used to prove a mount shows this collection."""
        return [
            _stat(posixpath.join(reldir, e["name"]), e)
            for e in self._ls_or_absent(reldir, cached=False)
            if e.get("type") == "file"
        ]

    def checksum_files(self, listing: ScanListing, algorithm: str) -> dict[str, str] | None:
        """Checksums through the local mount, if the endpoint has one (`globus_mount`).

        Transfer has no checksum-at-rest call; without a mount this returns None and the
        evidence comes from verified transfers only.

        Raises:
            EndpointUnavailable: the mount does not show the listed files, or cannot be read.
        """
        if self.mount is None:
            return None
        return self.mount.checksum_files(listing, algorithm)

    # ------------------------------------------------------------------ listing

    def _walk(self, layout: ScanLayout, reldir: str, *, cached: bool) -> Iterator[FileStat]:
        """Every accepted file below `reldir`, skipping excluded folders."""
        stack = [reldir]
        while stack:
            current = stack.pop()
            for entry in self._ls(current, cached=cached):
                relpath = posixpath.join(current, entry["name"]) if current else entry["name"]
                kind = entry.get("type")
                if kind == "dir":
                    if not layout.walk_prunes(relpath):
                        stack.append(relpath)
                elif kind == "file":
                    yield _stat(relpath, entry)

    def _ls_or_absent(self, reldir: str, *, cached: bool, name: str | None = None) -> list[Entry]:
        """A directory's entries (only `name`, if given), or [] if it is missing below a root
        that does exist."""
        try:
            if name is not None and "," not in name:
                # One scan of a large directory: Transfer filters on the name (`name:=`), so
                # one entry comes back instead of the whole directory (never cached).
                return self._ls_remote(reldir, name=name)
            return self._ls(reldir, cached=cached)
        except _NotFound:
            if reldir:
                self._require_root(cached=cached)
                return []
            raise self._root_missing() from None

    def _require_root(self, *, cached: bool = True) -> None:
        try:
            self._ls("", cached=cached)
        except _NotFound:
            raise self._root_missing() from None

    def _root_missing(self) -> EndpointUnavailable:
        """The endpoint root is not on the collection: a wrong `root`, or storage missing
        behind the collection. No pass fixes that by itself."""
        return EndpointUnavailable(
            self.name,
            f"root {self.root} does not exist on {self._where}: check the collection and "
            f"`root` of [endpoints.{self.name}]",
            error_class=ErrorClass.NEEDS_HUMAN,
        )

    @property
    def _where(self) -> str:
        return self._session.name_of(self.collection)

    def _ls(self, reldir: str, *, cached: bool) -> list[Entry]:
        if cached:
            with self._lock:
                hit = self._cache.get(reldir)
            if hit is not None:
                return hit
        entries = self._ls_remote(reldir)
        if cached:
            with self._lock:
                self._cache[reldir] = entries
        return entries

    def _ls_remote(self, reldir: str, *, name: str | None = None) -> list[Entry]:
        """Every entry of one directory (or only `name`), paging with `offset` at the maximum
        page size (each page makes Transfer read the directory again); never a partial
        answer."""
        path = join(self.root, reldir)
        try:
            self._session.wait_out(self.collection, f"listing {path}")
        except Bl931Error as exc:
            raise EndpointUnavailable(self.name, f"{self._where}: {exc}") from None
        self._session.ensure_scopes(self._client)
        entries: list[Entry] = []
        while True:
            try:
                self.ls_calls += 1
                page = self._client.operation_ls(
                    self.collection,
                    path=path,
                    limit=self.page_limit,
                    offset=len(entries),
                    filter=f"name:={name}" if name is not None else MISSING,
                )
            except globus_sdk.GlobusAPIError as exc:
                self._session.note_retry_after(
                    self.collection, exc, f"listing {path} on {self._where}"
                )
                if exc.http_status == 404 and exc.code in (
                    "ClientError.NotFound",
                    "NotFound",
                    "ClientError.NotFound.PathNotFound",
                ):
                    raise _NotFound(path) from None
                raise self._unavailable(exc, path) from exc
            except Exception as exc:
                raise self._unavailable(exc, path) from exc
            try:
                data, total = _checked_page(page)
            except ValueError as exc:
                # A garbled answer (a proxy's page, a changed API) is a failed listing: its
                # scans become unknown, never absent.
                raise EndpointUnavailable(
                    self.name, f"listing {path} on {self._where}: malformed answer: {exc}"
                ) from None
            entries.extend(data)
            if total is None:
                # Without a total, only a page shorter than requested proves the end.
                if len(data) < self.page_limit:
                    return entries
            elif len(entries) >= int(total):
                return entries
            if not data:
                raise EndpointUnavailable(
                    self.name,
                    f"listing {path} on {self._where} stopped at {len(entries)} of "
                    f"{total} entries (partial answer)",
                )

    def _unavailable(self, exc: BaseException, path: str) -> EndpointUnavailable:
        error: Bl931Error = translate_error(exc, f"listing {path}", self._session)
        return EndpointUnavailable(
            self.name, f"{self._where}: {error.message}", error_class=error.error_class
        )


def _checked_page(page: Any) -> tuple[list[Entry], int | None]:
    """The entries and `total` of one `operation_ls` page, after checking their shape.

    Raises:
        ValueError: the page is not the documented `file_list` shape (says what is wrong).
    """
    try:
        data = page.get("DATA", [])
        total = page.get("total")
    except (AttributeError, TypeError):  # a response whose body is not a JSON object
        raise ValueError("the answer is not a JSON object") from None
    if not isinstance(data, list):
        raise ValueError(f"DATA is {type(data).__name__}, not a list")
    for entry in data:
        if not isinstance(entry, dict):
            raise ValueError(f"an entry is {type(entry).__name__}, not an object")
        name = entry.get("name")
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise ValueError(f"entry name {name!r} is not a plain file name")
        if entry.get("type") == "file":
            size = entry.get("size")
            if size is not None and (not isinstance(size, int) or size < 0):
                raise ValueError(f"{name!r}: size {size!r} is not a byte count")
            try:
                parse_mtime(entry["last_modified"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(
                    f"{name!r}: last_modified {entry.get('last_modified')!r} is not a time"
                ) from None
    if total is not None and (not isinstance(total, int) or isinstance(total, bool)):
        raise ValueError(f"total {total!r} is not a count")
    return data, total


def _stat(relpath: str, entry: Entry) -> FileStat:
    return FileStat(
        path=relpath, size=int(entry.get("size") or 0), mtime=parse_mtime(entry["last_modified"])
    )


def _group(layout: ScanLayout, files: list[FileStat]) -> dict[str, ScanListing]:
    by_scan: dict[str, list[FileStat]] = {}
    for stat in files:
        scan = layout.scan_of(stat.path)
        if scan is not None:
            by_scan.setdefault(scan, []).append(stat)
    return {
        scan: listing_of(scan, tuple(sorted(stats, key=lambda f: f.path)))
        for scan, stats in by_scan.items()
    }

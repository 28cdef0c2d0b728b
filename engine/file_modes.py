"""Who may write the files decisions rest on: the state store, its socket, the local catalog.

Only the service user writes the state store. It is created mode 0640 — the owner writes, the
`[approval] readers_group` (or, without one, the file's group) reads, others nothing — and its
WAL files follow it. Operators' decisions reach the store through the service's socket, which
the readers group may connect to (0660).

A file these rest on that someone other than its owner could write — a store, a catalog or a
folder holding them that is group- or world-writable, a socket others may connect to — would
let that someone forge approvals, evidence or registrations. It is reported at start-up (a
needs-human error naming the path and its mode) instead of being used.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
from pathlib import Path

from engine.config import Config
from engine.errors import NeedsHumanError
from engine.state import StateStore

STORE_MODE = 0o640
SOCKET_MODE = 0o660
WAL_SUFFIXES = ("-wal", "-shm")


class UnsafePermissions(NeedsHumanError):
    """Files bl931 trusts are writable by someone other than their owner."""

    def __init__(self, findings: list[str]) -> None:
        super().__init__(
            "refusing to use files others may write (fix the modes, then start again):\n  "
            + "\n  ".join(findings)
        )
        self.findings = findings


def group_id(name: str | None) -> int | None:
    """The gid of `[approval] readers_group` (None when not configured).

    Raises:
        NeedsHumanError: the group does not exist on this host.
    """
    if name is None:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise NeedsHumanError(
            f"[approval] readers_group {name!r}: no such group on this host"
        ) from None


def prepare_store(path: Path, readers_group: str | None) -> None:
    """Create the state store's file 0640 (before SQLite does, whatever the umask) if missing."""
    gid = group_id(readers_group)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, STORE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, STORE_MODE)
        if gid is not None:
            os.fchown(fd, -1, gid)
    finally:
        os.close(fd)


def secure_store(path: Path, readers_group: str | None) -> None:
    """The owner's store and WAL files: mode 0640, group `readers_group` (run while open)."""
    gid = group_id(readers_group)
    for file in (path, *(Path(f"{path}{suffix}") for suffix in WAL_SUFFIXES)):
        with contextlib.suppress(FileNotFoundError):
            if file.stat().st_uid != os.geteuid():
                continue  # not ours to change; `unsafe_writers` reports it if it matters
            os.chmod(file, STORE_MODE)
            if gid is not None:
                os.chown(file, -1, gid)


def owned_store(config: Config) -> StateStore:
    """The state store opened by its owner, for writing: created 0640 (group `readers_group`)
    if new, and its files kept so."""
    group = config.approval.readers_group
    prepare_store(config.state.path, group)
    store = StateStore(config.state.path)
    try:
        secure_store(config.state.path, group)
    except BaseException:
        store.close()
        raise
    return store


def mode_words(mode: int) -> str:
    return f"mode {stat.S_IMODE(mode):04o}"


def unsafe_writers(path: Path, *, group_may_write: bool = False) -> str | None:
    """Who other than the owner may write `path` (a file, socket or folder), or None.

    Group write is harmless only for the owner's own user-private group (a group named after
    the owner with no other members), or where the group is meant to write (`group_may_write`:
    connecting to a socket needs write permission).
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    mode = info.st_mode
    if mode & stat.S_IWOTH:
        return f"{path} is {mode_words(mode)}: every user may write it"
    if mode & stat.S_IWGRP and not group_may_write and not _private_group(info):
        return (
            f"{path} is {mode_words(mode)} with group {_group_words(info.st_gid)}: "
            "its members may write it"
        )
    return None


def _private_group(info: os.stat_result) -> bool:
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
        group = grp.getgrgid(info.st_gid)
    except KeyError:
        return False
    return group.gr_name == owner and set(group.gr_mem) <= {owner}


def _group_words(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return f"gid {gid}"


def startup_findings(config: Config, socket_path: Path | None = None) -> list[str]:
    """Every file a service would trust that others may write, in words naming path and mode."""
    store = config.state.path
    paths = [store.parent, store, *(Path(f"{store}{suffix}") for suffix in WAL_SUFFIXES)]
    if config.catalog.kind == "local":
        paths += [config.catalog.path.parent, config.catalog.path]
    findings = [f for p in dict.fromkeys(paths) if (f := unsafe_writers(p)) is not None]
    if socket_path is not None:
        finding = unsafe_writers(socket_path, group_may_write=True)
        if finding is not None:
            findings.append(finding)
    return findings


def check_startup(config: Config, socket_path: Path | None = None) -> None:
    """Raise `UnsafePermissions` if a file the service trusts may be written by others."""
    findings = startup_findings(config, socket_path)
    if findings:
        raise UnsafePermissions(findings)

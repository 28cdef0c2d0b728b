"""Crash and interference hooks for one child `bl931tui`, loaded through PYTHONPATH.

Each hook is off unless its variable is set, and production code is not touched: the hooks wrap
the same calls (`LocalMover.submit`, `GlobusMover.submit`, `os.unlink`) a real crash or a real
user would interrupt.

- `BL931_CRASH_IN_DELETE_SUBMIT=N` (local mover): a delete task is handed to the mover, its
  worker unlinks N files, then the process dies (`os._exit(137)`, like SIGKILL: no cleanup).
  The executor never learns the task id, so the task stays `preparing` in the state store.
  N = 0 dies before the worker starts.
- `BL931_CRASH_IN_GLOBUS_DELETE=before|after`: the process dies right before the delete task
  reaches Transfer, or right after Transfer accepted it (the answer is lost).
- `BL931_WRITE_DURING_DELETE=DIR::NAME`: the first time anything is unlinked directly inside
  DIR, a user's file NAME is written there first (a user working in the folder while a prune runs).
- `BL931_CRASH_AT_DELETE=STEP`: death right after one persisted step of the first delete task
  (`delete_steps.py`: prepared, some_unlinked, all_unlinked, submitted, before_receipt).
- `BL931_DENY_UNLINK=SUFFIX`: unlinking a path that ends with SUFFIX fails with EACCES, as a
  file in a folder the service user may not write would (tests run as root, where `chmod`
  cannot deny anything). With `BL931_UNMOUNT_ON_DENY=DIR`, DIR is moved away (to DIR.away) at
  that moment too, as if its filesystem were unmounted while the task ran.
- `BL931_HANG_MID_COPY=1`: the first local copy writes its first chunk into its temporary file
  and then never writes again (the thread blocks forever), so a test can kill the process while
  that copy is certainly in progress, however fast the machine is.
"""

from __future__ import annotations

import os
import time
from typing import Any

_CRASH_LOCAL = os.environ.get("BL931_CRASH_IN_DELETE_SUBMIT")
_CRASH_GLOBUS = os.environ.get("BL931_CRASH_IN_GLOBUS_DELETE")
_WRITE = os.environ.get("BL931_WRITE_DURING_DELETE")


def _die() -> None:
    os._exit(137)


if _WRITE:
    _folder, _, _name = _WRITE.partition("::")
    _real_unlink = os.unlink
    _written = False

    def _parent_of(path: Any, dir_fd: int | None) -> str:
        if dir_fd is not None:  # shutil.rmtree unlinks names relative to an open folder
            return os.readlink(f"/proc/self/fd/{dir_fd}")
        return os.path.dirname(os.path.abspath(os.fspath(path)))

    def _unlink_with_user(path: Any, *args: Any, dir_fd: int | None = None, **kw: Any) -> None:
        global _written
        if not _written and _parent_of(path, dir_fd) == os.path.abspath(_folder):
            _written = True
            with open(os.path.join(_folder, _name), "wb") as out:
                out.write(b"a user's analysis, never copied anywhere")
        _real_unlink(path, *args, dir_fd=dir_fd, **kw)

    os.unlink = _unlink_with_user

_DENY = os.environ.get("BL931_DENY_UNLINK")
if _DENY:
    import errno

    _unlink_before_deny = os.unlink

    def _unlink_or_deny(path: Any, *args: Any, **kw: Any) -> None:
        if os.fspath(path).endswith(_DENY):
            away = os.environ.get("BL931_UNMOUNT_ON_DENY")
            if away and os.path.isdir(away):
                os.rename(away, away + ".away")
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        _unlink_before_deny(path, *args, **kw)

    os.unlink = _unlink_or_deny

if _CRASH_LOCAL is not None:
    from engine.storage import local_mover

    _unlinks_before_crash = int(_CRASH_LOCAL)
    _local_submit = local_mover.LocalMover.submit

    def _submit_then_die(self: Any, request: Any) -> str:
        if request.kind != "delete":
            return str(_local_submit(self, request))
        if _unlinks_before_crash == 0:
            _die()
        inner_unlink = os.unlink
        done = [0]

        def _counting_unlink(path: Any, *args: Any, **kw: Any) -> None:
            inner_unlink(path, *args, **kw)
            done[0] += 1
            if done[0] >= _unlinks_before_crash:
                _die()

        os.unlink = _counting_unlink
        _local_submit(self, request)
        time.sleep(30)  # never return: the executor must not record the task active
        _die()
        raise AssertionError("unreachable")

    local_mover.LocalMover.submit = _submit_then_die  # type: ignore[method-assign]

if _CRASH_GLOBUS in ("before", "after"):
    from engine.storage import globus_mover

    _globus_submit = globus_mover.GlobusMover.submit

    def _globus_submit_then_die(self: Any, request: Any) -> str:
        if request.kind != "delete":
            return str(_globus_submit(self, request))
        if _CRASH_GLOBUS == "after":
            _globus_submit(self, request)
        _die()
        raise AssertionError("unreachable")

    globus_mover.GlobusMover.submit = _globus_submit_then_die  # type: ignore[method-assign]

# `BL931_CRASH_AFTER_ACTIVE_DELETE=N` (local mover): the delete task is recorded `active` first
# (the worker waits for that), then the worker unlinks N files and the process dies: the next
# process finds an active task its mover no longer knows (`lost`), cut part-way.
_CRASH_ACTIVE = os.environ.get("BL931_CRASH_AFTER_ACTIVE_DELETE")
if _CRASH_ACTIVE is not None:
    import threading

    from engine import state as _state
    from engine.storage import local_mover as _local_mover

    _recorded_active = threading.Event()
    _update_task = _state.StateStore.update_task

    def _update_then_signal(self: Any, submission_id: str, now: Any, **fields: Any) -> None:
        _update_task(self, submission_id, now, **fields)
        if fields.get("status") == "active":
            _recorded_active.set()

    _state.StateStore.update_task = _update_then_signal  # type: ignore[method-assign]
    _active_submit = _local_mover.LocalMover.submit

    def _submit_delete_then_die_mid_way(self: Any, request: Any) -> str:
        if request.kind != "delete":
            return str(_active_submit(self, request))
        limit = int(_CRASH_ACTIVE)
        inner_unlink = os.unlink
        done = [0]

        def _unlink_after_active(path: Any, *args: Any, **kw: Any) -> None:
            _recorded_active.wait(60)
            inner_unlink(path, *args, **kw)
            done[0] += 1
            if done[0] >= limit:
                _die()

        os.unlink = _unlink_after_active
        return str(_active_submit(self, request))

    _local_mover.LocalMover.submit = _submit_delete_then_die_mid_way  # type: ignore[method-assign]

if os.environ.get("BL931_CRASH_AT_DELETE"):
    import delete_steps  # noqa: F401  (installs its hooks on import)

if os.environ.get("BL931_HANG_MID_COPY"):
    import threading

    from engine.storage import localfs as _localfs

    _real_write_all = _localfs._write_all
    _hung = threading.Lock()

    def _write_then_hang(fd: int, chunk: Any) -> None:
        _real_write_all(fd, chunk)
        if _hung.acquire(blocking=False):  # the first copy to write anything stops here
            threading.Event().wait()

    _localfs._write_all = _write_then_hang

"""Fault injection for chaos runs, loaded by a child `bl931tui` through PYTHONPATH.

Only active when `BL931_CHAOS_FAULTS` is set (e.g. `enospc:0.3,eacces:0.2`): writes into the
engine's temporary files fail with ENOSPC ("disk full") and creating them fails with EACCES, at
the given rates, drawn from a generator seeded by `BL931_CHAOS_SEED`. Production code is not
touched; the faults arrive through the same `os` / `tempfile` calls a real disk would fail in.
"""

from __future__ import annotations

import errno
import os
import random
import tempfile
from typing import Any

_SPEC = os.environ.get("BL931_CHAOS_FAULTS", "")
_TEMP_PREFIX = ".bl931-"

if _SPEC:
    _rates = {name: float(rate) for name, _, rate in (p.partition(":") for p in _SPEC.split(","))}
    _rng = random.Random(os.environ.get("BL931_CHAOS_SEED", "0"))
    _write = os.write
    _mkstemp = tempfile.mkstemp

    def _is_engine_temp(fd: int) -> bool:
        try:
            return os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(_TEMP_PREFIX)
        except OSError:
            return False

    def _chaos_write(fd: int, data: Any) -> int:
        if _is_engine_temp(fd) and _rng.random() < _rates.get("enospc", 0.0):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return _write(fd, data)

    def _chaos_mkstemp(*args: Any, **kwargs: Any) -> Any:
        prefix = kwargs.get("prefix") or ""
        if str(prefix).startswith(_TEMP_PREFIX) and _rng.random() < _rates.get("eacces", 0.0):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), kwargs.get("dir"))
        return _mkstemp(*args, **kwargs)

    os.write = _chaos_write
    tempfile.mkstemp = _chaos_mkstemp

if os.environ.get("BL931_CRASH_AT_DELETE"):
    # Death right after a chosen step of a delete (crash_inject/, also on PYTHONPATH).
    import delete_steps  # noqa: F401  (installs its hooks on import)

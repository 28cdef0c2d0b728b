"""Give the memory a pass freed back to the operating system.

A pass that observes everything builds a fresh observation and plan and then drops the one it
replaces: CPython frees those objects, but glibc's allocator keeps the freed pages of its heap
(the large tables of dicts with 100,000s of entries live there) mapped in the process, so the
service's RSS stays at the pass's peak. `malloc_trim(0)` hands free pages back. It costs a walk
of the allocator's free lists (milliseconds at 100k scans), so it runs after passes that
replaced the observation, never after a quiet pass, which allocates next to nothing.

On a C library without `malloc_trim` (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def _find_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into this process
    except OSError:  # pragma: no cover - every CPython on Linux can open itself
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _find_trim()


def release_free_heap() -> bool:
    """Return the C heap's free pages to the OS; whether this C library can."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True

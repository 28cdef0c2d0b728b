"""Checksums of files, computed as fast as `md5sum` computes them.

Hashing is CPU-bound once the bytes are in memory, so what matters is not to add Python
overhead per byte: one large buffer per thread is filled with `readinto` (no new bytes object
per read) and handed to `hashlib` as a memoryview (no copy). hashlib releases the GIL while it
hashes a large buffer, so several threads can checksum different files in parallel.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

CHUNK_SIZE = 4 * 1024 * 1024

_local = threading.local()


def read_buffer() -> memoryview:
    """This thread's reusable read buffer (allocated once per thread, `CHUNK_SIZE` bytes).

    Shared with the local mover, which copies through the same buffer it hashes from.
    """
    buffer: memoryview | None = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = memoryview(bytearray(CHUNK_SIZE))
        _local.buffer = buffer
    return buffer


def new_digest(algorithm: str) -> hashlib._Hash:
    """A fresh hash object; raises ValueError for an algorithm hashlib does not know."""
    return hashlib.new(algorithm)


def file_checksum(
    path: Path | str,
    algorithm: str,
    *,
    progress: Callable[[int], None] | None = None,
) -> str:
    """The hex digest of a file's bytes.

    Args:
        path: the file to read; the caller has already checked that the path is safe.
        algorithm: a hashlib name such as "md5" or "sha256".
        progress: called with the number of bytes just hashed, for live progress displays.

    Returns:
        The lowercase hex digest.

    Raises:
        OSError: the file cannot be opened or read (FileNotFoundError if it vanished).
    """
    digest = new_digest(algorithm)
    buffer = read_buffer()
    with open(path, "rb", buffering=0) as stream:
        _advise_sequential(stream.fileno())
        while count := stream.readinto(buffer):
            digest.update(buffer[:count])
            if progress is not None:
                progress(count)
    return digest.hexdigest()


def checksums_equal(left: str, right: str) -> bool:
    """Compare two hex digests; case differs between tools (Globus, md5sum, SciCat)."""
    return left.strip().lower() == right.strip().lower()


def _advise_sequential(fd: int) -> None:
    """Tell the kernel we read front to back, so it reads ahead generously."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):  # advisory only: some filesystems refuse it
            advise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)

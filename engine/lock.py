"""One reconciler per state store: an advisory lock file beside it.

`fcntl.flock` is released by the kernel when the process dies, so a crashed service never leaves
a stale lock behind; the file's content (pid, host, since) only serves to name the holder.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from types import TracebackType

from engine.clock import SYSTEM_CLOCK, Clock
from engine.errors import StateLocked


class OwnerLock:
    def __init__(self, state_path: Path, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = Path(str(state_path) + ".lock")
        self._clock = clock
        self._fd: int | None = None

    def holder(self) -> dict[str, object] | None:
        try:
            text = self.path.read_text("utf-8")
            data = json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def acquire(self) -> OwnerLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Owner-only: anyone who can open the file could take the lock and keep the service
        # from starting.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_uid == os.geteuid():
                os.fchmod(fd, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.holder() or {}
            raise StateLocked(
                f"another bl931 reconciler owns {self.path.with_suffix('')} "
                f"(pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                f"since {holder.get('since', '?')}); stop it first or use the TUI read-only"
            ) from None
        os.ftruncate(fd, 0)
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": self._clock.now().isoformat(timespec="seconds"),
        }
        os.write(fd, json.dumps(record).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OwnerLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

"""Running the real service (`bl931tui --reconcile`) as a child process and waiting on it.

Waits poll a condition (a log line, a file, a row in the state store) with a deadline
(`tests.waiting.wait_for`, the one wait of the tests); nothing sleeps for a fixed time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.waiting import wait_for

__all__ = ["ServiceProcess", "metrics_port", "sample", "wait_for"]

CLI = [sys.executable, "-m", "bl931tui"]


class ServiceProcess:
    """`bl931tui --reconcile …` in the background, its stderr captured in a file."""

    def __init__(
        self,
        config: Path,
        *args: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [*CLI, "--config", str(config), "--reconcile", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def wait_log(self, pattern: str, *, count: int = 1, timeout: float = 30.0) -> str:
        """Wait until `pattern` (a regex) has matched `count` times; returns the log."""

        def seen() -> str | None:
            if self.proc.poll() is not None and len(re.findall(pattern, self.log())) < count:
                raise AssertionError(
                    f"service exited ({self.proc.returncode}) before {pattern!r}:\n{self.log()}"
                )
            text = self.log()
            return text if len(re.findall(pattern, text)) >= count else None

        return wait_for(seen, timeout=timeout, what=f"{pattern!r} x{count} in the service log")

    def passes(self) -> int:
        return len(re.findall(r"pass done in", self.log()))

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def metrics_port(service: ServiceProcess) -> int:
    """The port the service logged it serves metrics on (it was started with port 0)."""
    text = service.wait_log(r"metrics on http://127\.0\.0\.1:\d+/metrics")
    match = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", text)
    assert match is not None
    return int(match.group(1))


def sample(text: str, name: str, **labels: str) -> float | None:
    """One sample's value from a Prometheus text exposition (None if absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', label_text))
        if found == labels:
            return float(value)
    return None

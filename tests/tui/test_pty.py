"""The real `bl931tui` in a pseudo-terminal: it paints, takes keys, quits, and leaves on SIGHUP."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.tui.conftest import MakeScenario

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs a Linux pty")


class Terminal:
    """A child process on a pty of a fixed size; what it wrote is kept as text."""

    def __init__(self, argv: list[str], *, env: dict[str, str], size: tuple[int, int]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: size the terminal, then become bl931tui
            cols, rows = size
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execvpe(argv[0], argv, env)
        self.pid, self.fd = pid, fd
        self.output = ""
        self.status: int | None = None

    def read_until(self, needle: str, timeout: float = 20.0) -> bool:
        """Read what the app writes until `needle` appears (True) or it stops (False)."""
        deadline = time.monotonic() + timeout
        while needle not in self.output and time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    return needle in self.output
                if not chunk:
                    break
                self.output += chunk.decode("utf-8", "replace")
        return needle in self.output

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait(self, timeout: float = 20.0) -> int | None:
        """The exit code once the child ends (draining output so it never blocks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
            self.read_until("\0never\0", timeout=0.2)
        return None

    def close(self) -> None:
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path / "home"),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    env.update(extra)
    return env


def test_real_tui_paints_filters_and_quits(make_scenario: MakeScenario, tmp_path: Path) -> None:
    scenario = make_scenario("awaiting_approval")
    config = scenario.store_path.parent.parent / "bl931.toml"
    term = Terminal(
        [sys.executable, "-m", "bl931tui", "--config", str(config), "--no-mouse"],
        env=_env(tmp_path, NO_COLOR="1"),
        size=(120, 30),
    )
    try:
        assert term.read_until("showing 8 of 8 scans"), term.output[-2000:]
        assert "awaiting approval" in term.output
        term.send("/")
        assert term.read_until("awaiting:approval"), term.output[-2000:]  # the filter's hint
        term.send("state:hold")
        assert term.read_until("showing 1 of 8 scans"), term.output[-2000:]
        term.output = ""
        term.send("\x1b")  # esc clears the filter and returns to the table
        assert term.read_until("showing 8 of 8 scans"), term.output[-2000:]
        term.send("q")
        assert term.wait() == 0
    finally:
        term.close()


def test_real_tui_leaves_cleanly_on_sighup(make_scenario: MakeScenario, tmp_path: Path) -> None:
    scenario = make_scenario("fresh")
    config = scenario.store_path.parent.parent / "bl931.toml"
    term = Terminal(
        [sys.executable, "-m", "bl931tui", "--config", str(config), "--read-only"],
        env=_env(tmp_path),
        size=(80, 24),
    )
    try:
        assert term.read_until("READ-ONLY"), term.output[-2000:]
        assert term.read_until("showing 8 of 8"), term.output[-2000:]
        os.kill(term.pid, signal.SIGHUP)
        assert term.wait() == 0
    finally:
        term.close()


def test_real_tui_rejects_then_takes_the_rejection_back(
    make_scenario: MakeScenario, tmp_path: Path
) -> None:
    """Through a real terminal, without colour: mark a prune (a glyph and a count), reject it
    (the dialog names it), find it under the rejected, un-reject it; both recorded with the
    OS user, the rejection's withdrawal as an event."""
    import sqlite3

    from engine.reconciler import os_user

    scenario = make_scenario("awaiting_approval")
    config = scenario.store_path.parent.parent / "bl931.toml"
    term = Terminal(
        [sys.executable, "-m", "bl931tui", "--config", str(config), "--no-mouse"],
        env=_env(tmp_path, NO_COLOR="1"),
        size=(80, 24),
    )
    target = next(s for s in scenario.scans if "S0004_argon_EXAFS" in s.id)
    try:
        assert term.read_until("showing 8 of 8 scans"), term.output[-2000:]
        term.send("a")
        assert term.read_until("◷ delete 7 scans from dtn"), term.output[-2000:]
        term.send(" ")
        assert term.read_until("1 marked"), term.output[-2000:]
        assert "●" in term.output
        term.send("x")
        assert term.read_until("Reject 1 delete from dtn"), term.output[-2000:]
        assert term.read_until("S0004_argon_EXAFS.h5 · dtn · 2.5 MB"), term.output[-2000:]
        term.send("\t\r")  # Cancel has the focus; Reject is next
        assert term.read_until("⊘ rejected: delete 1 scan from dtn"), term.output[-2000:]
        with sqlite3.connect(scenario.store_path) as conn:
            decided = conn.execute("SELECT action_id, decision, decided_by FROM approvals")
            ((rejected, decision, by),) = decided.fetchall()
        assert (decision, by) == ("reject", os_user())
        term.output = ""
        term.send("\t")  # the groups: awaiting approval, then the rejected one
        assert term.read_until("u un-rejects"), term.output[-2000:]
        term.send("u")
        assert term.read_until("Un-reject 1 delete from dtn"), term.output[-2000:]
        term.send("\t\r")
        assert term.read_until("◷ delete 7 scans from dtn"), term.output[-2000:]
        with sqlite3.connect(scenario.store_path) as conn:
            assert conn.execute("SELECT count(*) FROM approvals").fetchone() == (0,)
            events = conn.execute(
                "SELECT scan, action_id, message FROM events WHERE kind = 'action.unrejected'"
            ).fetchall()
        assert events == [(target.id, rejected, f"rejection withdrawn by {os_user()}")]
        term.send("q")
        assert term.wait() == 0
    finally:
        term.close()

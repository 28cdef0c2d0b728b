"""Shared fixtures: local workspaces and the real CLI run as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.config import Config
from engine.workspace import LocalWorkspace, create_workspace
from tests.engine_world import Engine, open_engine

CLI = [sys.executable, "-m", "bl931tui"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-passes",
        type=int,
        default=None,
        help="passes of the service chaos run (default 30, or $BL931_CHAOS_PASSES; full: 200)",
    )


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never read the developer's own ~/.config/bl931 or ./bl931.toml."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_cli() -> RunCli:
    """Run `bl931tui` for real, in a child process, and return its completed process."""

    def run(
        *args: str, config: Path | None = None, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [*CLI, *(["--config", str(config)] if config else []), *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    return run


@pytest.fixture
def workspace(tmp_path: Path) -> LocalWorkspace:
    """A local beamline whose retention has already passed for any scan written now."""
    return create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0)


MakeEngine = Callable[..., Engine]


@pytest.fixture
def make_engine() -> Iterator[MakeEngine]:
    """`open_engine(config, ...)` (tests/engine_world.py), every engine closed at teardown."""
    opened: list[Engine] = []

    def make(config: Config, **kwargs: Any) -> Engine:
        engine = open_engine(config, **kwargs)
        opened.append(engine)
        return engine

    yield make
    for engine in reversed(opened):
        engine.close()


@pytest.fixture
def quick_sdk_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """globus-sdk's own two retries sleep 10 ms instead of up to 5 s (wall time)."""
    from globus_sdk.transport import RetryConfig

    from engine.storage.globus_auth import GlobusSession

    monkeypatch.setattr(
        GlobusSession,
        "_retry_config",
        lambda self: RetryConfig(max_retries=self._max_retries, max_sleep=0.01),
    )

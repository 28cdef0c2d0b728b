"""TUI fixtures: scenario stores under tmp_path, and a helper that waits for the app to settle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tui.scenarios import Scenario, build

MakeScenario = Callable[..., Scenario]


@pytest.fixture
def make_scenario(tmp_path: Path) -> MakeScenario:
    """Build a named scenario (see tests/tui/scenarios.py) in this test's temp dir."""

    def make(name: str, **kwargs: object) -> Scenario:
        return build(tmp_path / name, name, **kwargs)  # type: ignore[arg-type]

    return make

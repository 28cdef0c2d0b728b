"""One real local Prefect server (Prefect's own test harness, SQLite) for the whole session:
it takes several seconds to start, so every flow test shares it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

# Prefect keeps its profile and local results under PREFECT_HOME; never the developer's.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bl931-prefect-home-"))
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

prefect_testing = pytest.importorskip("prefect.testing.utilities")


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    with prefect_testing.prefect_test_harness(server_startup_timeout=90):
        yield

"""Scenario fixtures for the catalog tests: configs, a local catalog, a fake SciCat."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from engine.catalog.scicat import ScicatCatalog
from engine.config import CatalogConfig
from engine.model import Scan
from engine.secrets import Secret
from tests.fakes.scans import make_scan
from tests.fakes.scicat_api import FakeScicat


@pytest.fixture
def catalog_config() -> CatalogConfig:
    return CatalogConfig(
        kind="local",
        source_endpoint="cfs",
        path_template="{proposal}/{user}/{scan}",
        access_groups=("als-9.3.1-staff",),
        data_format="NeXus/HDF5",
        principal_investigator="Jane PI",
    )


@pytest.fixture
def scan_factory() -> Callable[..., Scan]:
    return make_scan


@pytest.fixture
def fake_scicat() -> Iterator[FakeScicat]:
    """A fake SciCat backend on 127.0.0.1 (expired tokens answer 401 SESSION_EXPIRED)."""
    with FakeScicat() as fake:
        yield fake


@pytest.fixture
def scicat_with_password(
    fake_scicat: FakeScicat, catalog_config: CatalogConfig
) -> Callable[..., ScicatCatalog]:
    """Build a ScicatCatalog logging in as the fake's `ingestor` user (optionally with a token)."""

    def build(*, token: str | None = None, page_size: int = 1000) -> ScicatCatalog:
        return ScicatCatalog(
            catalog_config.model_copy(update={"kind": "scicat"}),
            url=fake_scicat.base_url,
            token=Secret(token) if token else None,
            username=Secret("ingestor"),
            password=Secret(fake_scicat.users["ingestor"]),
            beamline="9.3.1",
            timeout_seconds=5,
            page_size=page_size,
        )

    return build

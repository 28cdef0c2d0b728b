"""Scenario fixtures for the catalog tests: configs, a local catalog, a fake SciCat."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fakes.scans import make_scan

from engine.config import CatalogConfig
from engine.model import Scan


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

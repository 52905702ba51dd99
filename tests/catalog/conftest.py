"""A small real lake for the catalog tests: synthetic rasters of real metadata rows, ingested.

The pairs are drawn from the official metadata.parquet (many countries, tiles, seasons), so the
Items carry real names, dates and footprints; ingest builds their catalog before publishing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog.api import create_app
from catalog.request import SearchRequest
from catalog.search import Catalog
from catalog.server import running
from lake.config import StoreSpec
from tests.catalog.helpers import LAKE
from tests.support.lakes import TestLake


@pytest.fixture(scope="session")
def catalog_lake(build_lake: Callable[..., TestLake]) -> TestLake:
    """N_PAIRS real metadata rows (LMDB + BigEarthNet.txt), ingested (release r1, 16 per shard)."""
    return build_lake(LAKE)


@pytest.fixture(scope="session")
def source(catalog_lake: TestLake) -> Path:
    """The synthetic source of the catalog's lake."""
    return catalog_lake.source


@pytest.fixture(scope="session")
def lake_spec(catalog_lake: TestLake) -> StoreSpec:
    """The catalog's lake."""
    return catalog_lake.spec


@pytest.fixture(scope="session")
def cat(lake_spec: StoreSpec) -> Iterator[Catalog]:
    """The release's catalog, open."""
    with Catalog(lake_spec) as c:
        yield c


@pytest.fixture(scope="session")
def all_items(cat: Catalog) -> list[dict[str, Any]]:
    """Every Item of the release (dicts), in id order."""
    return cat.search(SearchRequest(limit=None)).items()


@pytest.fixture(scope="session")
def api_url(cat: Catalog) -> Iterator[str]:
    """The STAC API of the release, served by uvicorn in a thread on a free port."""
    with running(create_app(cat)) as url:
        yield url

"""A small real lake for the catalog tests: synthetic rasters of real metadata rows, ingested.

The pairs are drawn from the official metadata.parquet (many countries, tiles, seasons), so the
Items carry real names, dates and footprints; ingest builds their catalog before publishing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog.api import create_app
from catalog.request import SearchRequest
from catalog.search import Catalog
from catalog.server import running
from lake.config import StoreSpec, store_spec
from pipelines.cluster import ClusterSpec
from pipelines.ingest import ingest
from pipelines.sources.open import open_source
from pipelines.synth import synthesize
from tests.catalog.helpers import N_PAIRS, OPTIONS


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic source of N_PAIRS real metadata rows (LMDB + BigEarthNet.txt)."""
    out = tmp_path_factory.mktemp("catalog-src") / "src"
    synthesize(N_PAIRS, out, fmt="lmdb", seed=11, progress=False)
    return out


@pytest.fixture(scope="session")
def lake_spec(source: Path, tmp_path_factory: pytest.TempPathFactory) -> StoreSpec:
    """The source ingested into a local lake (release r1, 16 pairs per shard)."""
    spec = store_spec(str(tmp_path_factory.mktemp("catalog-lake") / "lake"), environ={})
    ingest(open_source(source), spec, OPTIONS, ClusterSpec("sync"))
    return spec


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

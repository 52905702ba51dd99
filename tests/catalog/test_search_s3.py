"""The catalog of a lake on the embedded S3 endpoint: ingest builds it there, search reads it
through DuckDB's httpfs with the lake's secret, and the API serves it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pystac_client import Client

import catalog
from catalog.api import create_app
from catalog.build import verify_catalog
from catalog.search import Catalog
from catalog.server import running
from lake.config import StoreSpec
from lake.errors import QueryError
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.ingest import ingest
from pipelines.local.s3 import EmbeddedS3
from pipelines.sources.open import open_source
from tests.catalog.helpers import N_PAIRS, OPTIONS, RELEASE
from tests.conftest import s3_spec_for
from tests.support.stac import validate

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def own_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedS3]:
    """An endpoint of our own: rclone caches listings of the shared one, and other tests copy
    lakes into its folder behind its back, which a listing cached by us would hide."""
    with EmbeddedS3(tmp_path_factory.mktemp("catalog-s3") / "data", buckets=["lake"]) as server:
        yield server


@pytest.fixture(scope="module")
def s3_lake(source: Path, own_s3: EmbeddedS3) -> StoreSpec:
    spec = s3_spec_for(own_s3)
    ingest(open_source(source), spec, OPTIONS, ClusterSpec("sync"))
    return spec


@pytest.fixture(scope="module")
def s3_cat(s3_lake: StoreSpec) -> Iterator[Catalog]:
    with Catalog(s3_lake) as c:
        yield c


def test_the_catalog_on_s3_is_the_same_bytes_as_on_disk(
    s3_lake: StoreSpec, lake_spec: StoreSpec
) -> None:
    from lake.reader import open_lake

    def stac_objects(spec: StoreSpec) -> dict[str, str]:
        m = open_lake(spec).current.manifest["objects"]
        return {o["path"]: o["sha256"] for o in m if o["path"].startswith("stac/")}

    assert stac_objects(s3_lake) == stac_objects(lake_spec)
    assert verify_catalog(s3_lake, RELEASE).n_items == N_PAIRS


def test_search_on_s3_matches_local(s3_cat: Catalog, cat: Catalog) -> None:
    queries = [
        {"bbox": [-12.0, 35.0, 32.0, 71.0], "datetime": "2017-06/2017-12"},
        {"filter": "a_contains(labels, ('Pastures')) OR country = 'Portugal'"},
        {"sortby": "-datetime", "limit": 9},
        {"ids": [i.id for i in catalog.search(cat, limit=3).items]},
    ]
    for query in queries:
        remote = [i.id for i in catalog.search(s3_cat, **query).items]
        local = [i.id for i in catalog.search(cat, **query).items]
        assert remote == local and remote, query


def test_items_on_s3_validate_and_point_into_the_bucket(
    s3_cat: Catalog, s3_lake: StoreSpec
) -> None:
    items = catalog.search(s3_cat, limit=5).items
    for item in items:
        assert validate(item.to_dict(transform_hrefs=False)) == []
        assert item.assets["s2_10m"].href.startswith(s3_lake.url + "/patches/")


def test_paging_on_s3(s3_cat: Catalog) -> None:
    token, seen = None, []
    while True:
        page = catalog.search(s3_cat, limit=25, token=token)
        seen += [i.id for i in page.items]
        token = page.extra_fields.get("next_token")
        if not token:
            break
    assert len(seen) == len(set(seen)) == N_PAIRS


def test_bad_input_on_s3(s3_lake: StoreSpec) -> None:
    with pytest.raises(QueryError, match="unknown property 'colour'"):
        catalog.search(s3_lake, filter="colour = 'red'")


def test_the_api_serves_an_s3_lake(s3_cat: Catalog) -> None:
    with running(create_app(s3_cat)) as url:
        client = Client.open(url)
        got = [i.id for i in client.search(filter="season = 'Summer'", limit=4).items()]
        assert got == [i.id for i in catalog.search(s3_cat, filter="season = 'Summer'").items]
        assert requests.get(f"{url}/search?bbox=1,2", timeout=30).status_code == 400

"""The lakes the command tests run on: the SQL tests' and the catalog tests' (the same recipes,
so the same lakes as those suites, built once per session)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from catalog.search import Catalog
from lake.config import StoreSpec
from pipelines.local.s3 import EmbeddedS3
from tests.catalog.helpers import LAKE as CATALOG_LAKE
from tests.conftest import s3_spec_for
from tests.lake.sql.helpers import LAKE as SQL_LAKE
from tests.support.lakes import LakeRecipe, TestLake, upload_lake


@pytest.fixture(scope="session")
def built(build_lake: Callable[[LakeRecipe], TestLake]) -> TestLake:
    """The SQL tests' lake: one release of 40 synthetic pairs and their text."""
    return build_lake(SQL_LAKE)


@pytest.fixture(scope="session")
def built_s3(built: TestLake, s3_server: EmbeddedS3) -> StoreSpec:
    """The SQL tests' lake on the embedded S3 endpoint."""
    return upload_lake(built, s3_spec_for(s3_server, f"sql-cli-{uuid.uuid4().hex[:8]}"))


@pytest.fixture(scope="session")
def lake_spec(build_lake: Callable[[LakeRecipe], TestLake]) -> StoreSpec:
    """The catalog tests' lake."""
    return build_lake(CATALOG_LAKE).spec


@pytest.fixture(scope="session")
def cat(lake_spec: StoreSpec) -> Iterator[Catalog]:
    """The catalog of that lake's release, open."""
    with Catalog(lake_spec) as c:
        yield c

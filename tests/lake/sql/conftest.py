"""The SQL tests' lake, on disk and on the embedded S3 endpoint (built once per session)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from lake.config import StoreSpec
from pipelines.local.s3 import EmbeddedS3
from tests.conftest import s3_spec_for
from tests.lake.sql.helpers import LAKE
from tests.support.lakes import LakeRecipe, TestLake, upload_lake


@pytest.fixture(scope="session")
def built(build_lake: Callable[[LakeRecipe], TestLake]) -> TestLake:
    """A lake with one release of 40 synthetic pairs and their text."""
    return build_lake(LAKE)


@pytest.fixture(scope="session")
def built_s3(built: TestLake, s3_server: EmbeddedS3) -> StoreSpec:
    """The same lake on the embedded S3 endpoint (uploaded through S3)."""
    return upload_lake(built, s3_spec_for(s3_server, f"sql-{uuid.uuid4().hex[:8]}"))

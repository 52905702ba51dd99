"""The loader tests' lake, on disk and on an S3 endpoint of its own (built once per session)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator

import pytest

from lake.config import StoreSpec
from pipelines.local.s3 import EmbeddedS3
from tests.conftest import s3_spec_for
from tests.lake.loader.helpers import LAKE
from tests.support.lakes import TestLake


@pytest.fixture(scope="session")
def loader_lake(build_lake: Callable[..., TestLake]) -> TestLake:
    """96 synthetic pairs with their text, 16 pairs per shard."""
    return build_lake(LAKE)


@pytest.fixture(scope="session")
def loader_lake_s3(
    loader_lake: TestLake, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreSpec]:
    """The same lake on an S3 endpoint of its own.

    The lake is copied into the served folder before rclone starts, so rclone's listing cache
    cannot hide it (a copy behind a running server's back would be invisible to listings).
    """
    prefix = f"loader-{uuid.uuid4().hex[:8]}"
    data = tmp_path_factory.mktemp("loader-s3") / "data"
    shutil.copytree(loader_lake.root, data / "lake" / prefix)
    with EmbeddedS3(data, buckets=["lake"]) as server:
        yield s3_spec_for(server, prefix)

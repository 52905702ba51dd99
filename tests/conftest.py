"""Shared fixtures: the real shared data, the embedded S3 endpoint, a lake on every backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lake.config import StoreSpec, store_spec
from pipelines.local.s3 import EmbeddedS3
from tests.support.lakes import LakeRecipe, TestLake, build

pytest_plugins = ["tests.support.leaks"]

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data" / "bigearthnet-v2"
METADATA = DATA / "metadata.parquet"
SAMPLE = DATA / "sample"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedS3]:
    """A real S3 endpoint (rclone serve s3) on loopback for the whole session."""
    with EmbeddedS3(tmp_path_factory.mktemp("s3") / "data", buckets=["lake"]) as server:
        yield server


def s3_spec_for(server: EmbeddedS3, prefix: str | None = None) -> StoreSpec:
    """A spec for a fresh prefix of the test bucket."""
    e = server.endpoint
    return store_spec(
        f"s3://lake/{prefix or uuid.uuid4().hex[:12]}",
        endpoint_url=e.endpoint_url,
        key=e.key,
        secret=e.secret,
        region=e.region,
        environ={},
    )


@pytest.fixture
def s3_spec(s3_server: EmbeddedS3) -> StoreSpec:
    """A lake on the embedded S3 endpoint, under a fresh prefix."""
    return s3_spec_for(s3_server)


@pytest.fixture(params=["file", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def any_spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    """A lake location on each storage backend (the conformance tests run on all of them)."""
    if request.param == "file":
        return store_spec(str(tmp_path / "lake"), environ={})
    if request.param == "memory":
        return store_spec(f"memory://lake-{uuid.uuid4().hex[:8]}", environ={})
    return s3_spec_for(request.getfixturevalue("s3_server"))


@pytest.fixture(scope="session")
def build_lake(tmp_path_factory: pytest.TempPathFactory) -> Callable[[LakeRecipe], TestLake]:
    """The one way to get a test lake: ``build_lake(LakeRecipe(pairs, seed, ...))``.

    Each distinct recipe is built once per session; suites that ask for the same recipe share
    the lake, so a test that damages or writes into it must work on ``copy_lake``.
    """
    built: dict[LakeRecipe, TestLake] = {}

    def get(recipe: LakeRecipe) -> TestLake:
        if recipe not in built:
            base = tmp_path_factory.mktemp(f"lake-{recipe.pairs}-{recipe.seed}")
            built[recipe] = build(recipe, base)
        return built[recipe]

    return get

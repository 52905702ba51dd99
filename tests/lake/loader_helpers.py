"""A small lake for the loader tests, on disk and on the embedded S3 endpoint, and helpers.

Session-scoped: built once (synthesize + ingest of 96 pairs in 6 shards of 16, about 5 s).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lake.config import StoreSpec, store_spec
from pipelines.cluster import ClusterSpec
from pipelines.embedded_s3 import EmbeddedS3
from pipelines.ingest import IngestOptions, ingest
from pipelines.sources.open import open_source
from pipelines.synth import synthesize
from tests.conftest import s3_spec_for

RELEASE = "r1"
N_PAIRS = 96
PER_SHARD = 16


@dataclass(frozen=True)
class LoaderLake:
    """The test lake.

    Attributes:
        spec: The local lake.
        root: Its folder.
    """

    spec: StoreSpec
    root: Path


@pytest.fixture(scope="session")
def loader_lake(tmp_path_factory: pytest.TempPathFactory) -> LoaderLake:
    """96 synthetic pairs with their text, 16 pairs per shard."""
    base = tmp_path_factory.mktemp("loader")
    synthesize(N_PAIRS, base / "src", fmt="lmdb", seed=23)
    spec = store_spec(str(base / "lake"), environ={})
    opts = IngestOptions(
        release=RELEASE, samples_per_shard=PER_SHARD, scan_batch=32, progress=False
    )
    ingest(open_source(base / "src"), spec, opts, ClusterSpec("sync"))
    return LoaderLake(spec, base / "lake")


@pytest.fixture(scope="session")
def loader_lake_s3(
    loader_lake: LoaderLake, tmp_path_factory: pytest.TempPathFactory
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


def copy_lake(lake: LoaderLake, dest: Path) -> StoreSpec:
    """A private copy of the test lake (for tests that damage it)."""
    shutil.copytree(lake.root, dest)
    return store_spec(str(dest), environ={})


def ids(samples: Iterable[dict[str, Any]]) -> list[str]:
    """The patch ids of samples, in order."""
    return [s["patch_id"] for s in samples]


def batch_ids(batches: Iterable[dict[str, Any]]) -> list[str]:
    """The patch ids of batches, flattened in order."""
    return [pid for b in batches for pid in b["patch_id"]]

"""A small ingested lake for the SQL tests, on disk and served by the embedded S3 endpoint.

Fixtures here are imported by the ``test_sql*`` modules; each module gets its own copy of a
fixture, so the lake is cached per session here and built once (synthesize + ingest, about 5 s).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lake.config import StoreSpec, store_spec
from lake.storage import filesystem
from pipelines.cluster import ClusterSpec
from pipelines.embedded_s3 import EmbeddedS3
from pipelines.ingest import IngestOptions, ingest
from pipelines.sources.open import open_source
from pipelines.synth import synthesize
from tests.conftest import s3_spec_for

RELEASE = "r1"
N_PAIRS = 40


@dataclass(frozen=True)
class Built:
    """The test lake.

    Attributes:
        spec: The local lake.
        root: Its folder.
        source: The synthetic source folder (with ``BigEarthNet.txt.parquet``).
    """

    spec: StoreSpec
    root: Path
    source: Path


_CACHE: dict[str, Any] = {}


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A lake with one release of 40 synthetic pairs and their text."""
    key = f"built:{tmp_path_factory.getbasetemp()}"
    if key not in _CACHE:
        _CACHE[key] = _build(tmp_path_factory.mktemp("sql"))
    result: Built = _CACHE[key]
    return result


def _build(base: Path) -> Built:
    synthesize(N_PAIRS, base / "src", fmt="lmdb", seed=11)
    spec = store_spec(str(base / "lake"), environ={})
    opts = IngestOptions(release=RELEASE, samples_per_shard=16, scan_batch=16, progress=False)
    ingest(open_source(base / "src"), spec, opts, ClusterSpec("sync"))
    return Built(spec, base / "lake", base / "src")


def copy_lake(built: Built, dest: Path) -> StoreSpec:
    """A private copy of the test lake (for tests that write into it)."""
    shutil.copytree(built.root, dest)
    return store_spec(str(dest), environ={})


@pytest.fixture(scope="session")
def built_s3(built: Built, s3_server: EmbeddedS3) -> Iterator[StoreSpec]:
    """The same lake on the embedded S3 endpoint (uploaded through S3)."""
    key = f"s3:{s3_server.directory}"
    if key not in _CACHE:
        spec = s3_spec_for(s3_server, f"sql-{uuid.uuid4().hex[:8]}")
        filesystem(spec).put(f"{built.root}/", spec.root, recursive=True)
        _CACHE[key] = spec
    yield _CACHE[key]

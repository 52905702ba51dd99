"""A small lake for the pipeline jobs' tests (stats, export, verify): built once, copied per test.

Import the fixtures into a test module (``from tests.pipelines.jobs_helpers import jobs_lake``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from lake.config import StoreSpec, store_spec
from lake.reader import open_lake
from pipelines.cluster import ClusterSpec
from pipelines.ingest import IngestOptions, ingest
from pipelines.sources.open import open_source
from pipelines.stats import BANDS
from pipelines.synth import synthesize

N_PAIRS = 48
PER_SHARD = 2
RELEASE = "r1"
THREADS = ClusterSpec("threads", 2)


def build_lake(source: Path, spec: StoreSpec, release: str = RELEASE) -> None:
    """Ingest a synthetic source into a lake (small shards: many tasks)."""
    opts = IngestOptions(
        release=release, samples_per_shard=PER_SHARD, scan_batch=16, progress=False
    )
    ingest(open_source(source), spec, opts, THREADS)


@pytest.fixture(scope="session")
def jobs_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic source of ``N_PAIRS`` pairs (with text)."""
    out = tmp_path_factory.mktemp("jobs") / "src"
    synthesize(N_PAIRS, out, seed=11, progress=False)
    return out


@pytest.fixture(scope="session")
def jobs_lake_pristine(jobs_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lake folder, never changed (copy it with :func:`jobs_lake`)."""
    root = tmp_path_factory.mktemp("jobs") / "lake"
    build_lake(jobs_source, store_spec(str(root), environ={}))
    return root


@pytest.fixture
def jobs_lake(jobs_lake_pristine: Path, tmp_path: Path) -> StoreSpec:
    """A private copy of the small lake (tests may amend or damage it)."""
    root = tmp_path / "lake"
    shutil.copytree(jobs_lake_pristine, root)
    return store_spec(str(root), environ={})


def numpy_stats(spec: StoreSpec, release: str | None = None) -> dict[tuple[str, str, str], dict]:
    """The reference: per (group_by, group, band) statistics with plain numpy over every pair."""
    rel = open_lake(spec).release(release)
    values: dict[tuple[str, str, str], list[np.ndarray]] = {}
    for pid in rel.sample_index:
        pair = rel.patch(pid)
        meta = pair["metadata"]
        keys = [("all", "all")] + [(c, str(meta[c])) for c in ("split", "season", "country")]
        for band in BANDS:
            for by, group in keys:
                values.setdefault((by, group, band), []).append(pair[band].ravel())
    out = {}
    for key, parts in values.items():
        v = np.concatenate(parts).astype(np.float64)
        out[key] = {
            "count": v.size,
            "mean": v.mean(),
            "std": v.std(),
            "min": v.min(),
            "max": v.max(),
            "values": v,
        }
    return out

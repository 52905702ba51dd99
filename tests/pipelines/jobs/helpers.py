"""Constants and helpers of the pipeline jobs' tests (fixtures: tests/pipelines/conftest.py).

The jobs' lake is 48 synthetic pairs in shards of 2 (many tasks), built once per session by the
``build_lake`` fixture and copied per test (``jobs_lake``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lake.config import StoreSpec
from lake.reader import open_lake
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.ingest import IngestOptions, ingest
from pipelines.jobs.stats import BANDS
from pipelines.sources.open import open_source
from tests.support.lakes import LakeRecipe

N_PAIRS = 48
PER_SHARD = 2
RELEASE = "r1"
THREADS = ClusterSpec("threads", 2)
#: The jobs' lake: from folders, shards of 2, ingested on 2 threads.
LAKE = LakeRecipe(N_PAIRS, 11, fmt="folders", per_shard=PER_SHARD, scan_batch=16, cluster="threads")


def ingest_into(source: Path, spec: StoreSpec, release: str = RELEASE) -> None:
    """Ingest the jobs' source into another lake (S3, a second release), as the fixture did."""
    opts = IngestOptions(
        release=release, samples_per_shard=PER_SHARD, scan_batch=16, progress=False
    )
    ingest(open_source(source), spec, opts, THREADS)


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

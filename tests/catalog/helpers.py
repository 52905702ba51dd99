"""Constants of the catalog tests (fixtures: conftest.py; STAC validation: tests/support)."""

from __future__ import annotations

from pipelines.jobs.ingest import IngestOptions
from tests.support.lakes import LakeRecipe

N_PAIRS = 60
RELEASE = "r1"
OPTIONS = IngestOptions(release=RELEASE, samples_per_shard=16, scan_batch=32, progress=False)
#: The catalog tests' lake: N_PAIRS real metadata rows (LMDB + BigEarthNet.txt), ingested.
LAKE = LakeRecipe(N_PAIRS, 11, per_shard=OPTIONS.samples_per_shard, scan_batch=OPTIONS.scan_batch)

"""Constants and helpers shared by the catalog tests (fixtures are in conftest.py)."""

from __future__ import annotations

import sys
from typing import Any

from pipelines.jobs.ingest import IngestOptions
from tests.conftest import SHARED
from tests.support.lakes import LakeRecipe

N_PAIRS = 60
RELEASE = "r1"
OPTIONS = IngestOptions(release=RELEASE, samples_per_shard=16, scan_batch=32, progress=False)
#: The catalog tests' lake: N_PAIRS real metadata rows (LMDB + BigEarthNet.txt), ingested.
LAKE = LakeRecipe(N_PAIRS, 11, per_shard=OPTIONS.samples_per_shard, scan_batch=OPTIONS.scan_batch)

if str(SHARED / "tools") not in sys.path:
    sys.path.insert(0, str(SHARED / "tools"))


def validate(obj: dict[str, Any]) -> list[str]:
    """Errors of one STAC object against the official schemas (offline, shared validator)."""
    from validate_stac import validate as run

    return list(run(obj))

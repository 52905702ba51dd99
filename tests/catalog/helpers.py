"""Constants and helpers shared by the catalog tests (fixtures are in conftest.py)."""

from __future__ import annotations

import sys
from typing import Any

from pipelines.ingest import IngestOptions
from tests.conftest import SHARED

N_PAIRS = 60
RELEASE = "r1"
OPTIONS = IngestOptions(release=RELEASE, samples_per_shard=16, scan_batch=32, progress=False)

if str(SHARED / "tools") not in sys.path:
    sys.path.insert(0, str(SHARED / "tools"))


def validate(obj: dict[str, Any]) -> list[str]:
    """Errors of one STAC object against the official schemas (offline, shared validator)."""
    from validate_stac import validate as run

    return list(run(obj))

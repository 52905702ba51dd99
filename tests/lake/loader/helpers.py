"""Constants and helpers of the loader tests (their fixtures are in conftest.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.support.lakes import RELEASE, LakeRecipe, TestLake, copy_lake

#: The loader tests' lake: 96 synthetic pairs with their text, 16 pairs per shard.
N_PAIRS = 96
PER_SHARD = 16
LAKE = LakeRecipe(N_PAIRS, 23, per_shard=PER_SHARD, scan_batch=32)

#: The loader's test lake (``.spec``, ``.root``, ``.source``).
LoaderLake = TestLake

__all__ = ["LAKE", "N_PAIRS", "PER_SHARD", "RELEASE", "LoaderLake", "batch_ids", "copy_lake", "ids"]


def ids(samples: Iterable[dict[str, Any]]) -> list[str]:
    """The patch ids of samples, in order."""
    return [s["patch_id"] for s in samples]


def batch_ids(batches: Iterable[dict[str, Any]]) -> list[str]:
    """The patch ids of batches, flattened in order."""
    return [pid for b in batches for pid in b["patch_id"]]

"""Constants of the SQL tests (the lake fixtures, ``built`` and ``built_s3``, are in conftest)."""

from __future__ import annotations

from tests.support.lakes import RELEASE, LakeRecipe, TestLake, copy_lake

#: The SQL tests' lake: one release of 40 synthetic pairs and their text.
N_PAIRS = 40
LAKE = LakeRecipe(N_PAIRS, 11, per_shard=16, scan_batch=16)

#: The SQL tests' lake (``.spec``, ``.root``, ``.source``).
Built = TestLake

__all__ = ["LAKE", "N_PAIRS", "RELEASE", "Built", "copy_lake"]

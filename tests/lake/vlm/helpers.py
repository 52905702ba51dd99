"""Constants and helpers of the lake/vlm tests (their fixtures are in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lake.vlm.rows import TextRow
from tests.support.lakes import LakeRecipe

#: The vlm tests' lake: the same recipe as the loader tests' (built once per session for both).
LAKE = LakeRecipe(96, 23, per_shard=16, scan_batch=32)
#: Side of the reference maps (pixels).
SIZE = 120


@dataclass(frozen=True)
class PairText:
    """One pair of the test lake: its reference map and its text rows.

    Attributes:
        patch_id: The pair's S2 patch id.
        codes: ``(120, 120)`` uint16 CLC codes of its reference map.
        rows: Its text rows in conversation order.
    """

    patch_id: str
    codes: np.ndarray
    rows: list[TextRow]


def pixel_edges(box: tuple[float, float, float, float], size: int = SIZE) -> tuple[int, ...]:
    """A 0..1 box as integer pixel edges (nearest)."""
    return tuple(int(np.floor(v * size + 0.5)) for v in box)

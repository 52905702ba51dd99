"""The vlm tests' lake (built once per session) and its pairs with their maps and text."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
import pytest

from lake.patchstore import array_of
from lake.reader import open_lake
from lake.vlm.rows import TextRow, conversation_order, rows_of
from tests.lake.vlm.helpers import LAKE, PairText
from tests.support.lakes import RELEASE, TestLake


@pytest.fixture(scope="session")
def vlm_lake(build_lake: Callable[..., TestLake]) -> TestLake:
    """96 synthetic pairs with their text (the loader tests' recipe)."""
    return build_lake(LAKE)


@pytest.fixture(scope="session")
def vlm_pairs(vlm_lake: TestLake) -> list[PairText]:
    """Every pair of the lake that has text: its reference map and its rows, by patch id."""
    release = open_lake(vlm_lake.spec).release(RELEASE)
    maps = np.asarray(array_of(release.group, "reference_map")[:])
    index = release.sample_index
    table = release.annotations()
    by_pair: dict[str, list[TextRow]] = defaultdict(list)
    for pid, row in zip(table["patch_id"].to_pylist(), rows_of(table), strict=True):
        by_pair[pid].append(row)
    return [
        PairText(pid, maps[index[pid]], conversation_order(rows))
        for pid, rows in sorted(by_pair.items())
    ]

"""The eval tests' lake (built once per session) and its bench and test rows."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lake.eval import split_rows
from lake.vlm.rows import TextRow
from tests.lake.eval.helpers import LAKE
from tests.support.lakes import LakeRecipe, TestLake


@pytest.fixture(scope="session")
def eval_lake(build_lake: Callable[[LakeRecipe], TestLake]) -> TestLake:
    """100 synthetic pairs with their text: one bench pair, 25 test pairs."""
    return build_lake(LAKE)


@pytest.fixture(scope="session")
def bench_rows(eval_lake: TestLake) -> list[TextRow]:
    """The bench split's rows."""
    return split_rows(eval_lake.spec, "bench")


@pytest.fixture(scope="session")
def test_rows(eval_lake: TestLake) -> list[TextRow]:
    """The test split's rows."""
    return split_rows(eval_lake.spec, "test")

"""Opening a dataset from the release index: a bounded number of requests, counted on S3.

The requests are counted by :class:`tests.support.fault_proxy.FaultProxy` (``match=""``: every
request is forwarded and counted) in front of the embedded S3 endpoint. A release without an
index (published before it existed) still opens, the long way, and delivers the same samples.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lake.config import StoreSpec
from lake.layout import release_index_path
from lake.loader import LakeDataLoader, LakeDataset
from pipelines.local.s3 import EmbeddedS3
from tests.conftest import s3_spec_for
from tests.lake.loader.helpers import RELEASE, LoaderLake, batch_ids
from tests.support.fault_proxy import FaultProxy

pytestmark = pytest.mark.s3
MODS = ["s2_10m", "s2_20m", "s1", "labels"]
#: ``lake.json`` and the index, one GET each (no HEAD before them): the whole open.
MAX_OPEN_REQUESTS = 2


@pytest.fixture(scope="module")
def unindexed_s3(
    loader_lake: LoaderLake, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreSpec]:
    """The loader lake on an endpoint of its own, with its index removed (an older release)."""
    prefix = f"old-{uuid.uuid4().hex[:8]}"
    data = tmp_path_factory.mktemp("unindexed") / "data"
    root = data / "lake" / prefix
    shutil.copytree(loader_lake.root, root)
    (root / release_index_path(RELEASE)).unlink()
    with EmbeddedS3(data, buckets=["lake"]) as server:
        yield s3_spec_for(server, prefix)


@contextmanager
def _counted(spec: StoreSpec) -> Iterator[tuple[FaultProxy, StoreSpec]]:
    """A proxy counting every request, and the spec that goes through it."""
    with FaultProxy(spec.endpoint_url or "", match="") as proxy:
        yield proxy, replace(spec, endpoint_url=proxy.url)


@pytest.mark.timeout(240)
def test_open_takes_a_bounded_number_of_requests(
    loader_lake_s3: StoreSpec, unindexed_s3: StoreSpec
) -> None:
    with _counted(loader_lake_s3) as (p_new, new_spec), _counted(unindexed_s3) as (p_old, old_spec):
        indexed = LakeDataset(new_spec, modalities=MODS, split="train")
        n_indexed = p_new.requests
        old = LakeDataset(old_spec, modalities=MODS, split="train")
        n_old = p_old.requests
        assert 1 <= n_indexed <= MAX_OPEN_REQUESTS
        assert n_old > n_indexed + 3  # the long way: manifest, table listing and reads, zarr.json
        # The same dataset either way.
        assert indexed.layouts == old.layouts
        assert indexed.items.samples.tolist() == old.items.samples.tolist()
        assert (indexed.items.labels == old.items.labels).all()
        a = list(LakeDataLoader(indexed, batch_size=16))
        b = list(LakeDataLoader(old, batch_size=16))
    assert batch_ids(a) == batch_ids(b)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["s2_10m"], y["s2_10m"]) and torch.equal(x["labels"], y["labels"])


@pytest.mark.timeout(240)
def test_the_count_does_not_grow_with_modalities_or_selection(loader_lake_s3: StoreSpec) -> None:
    everything = ["s2_10m", "s2_20m", "s2_60m", "s1", "reference_map", "labels"]
    ids = LakeDataset(loader_lake_s3, modalities=["labels"]).items.table["patch_id"].to_pylist()
    with _counted(loader_lake_s3) as (proxy, spec):
        LakeDataset(spec, modalities=everything)
        n_all = proxy.requests
        LakeDataset(spec, ids[::5], modalities=["s1"], release=RELEASE)
        n_some = proxy.requests - n_all
        heads = proxy.heads
    assert n_all <= MAX_OPEN_REQUESTS and n_some <= MAX_OPEN_REQUESTS
    assert heads == 0


def test_a_local_release_without_an_index_opens_the_old_way(
    loader_lake: LoaderLake, tmp_path: Path
) -> None:
    root = tmp_path / "lake"
    shutil.copytree(loader_lake.root, root)
    (root / release_index_path(RELEASE)).unlink()
    old = LakeDataset(str(root), modalities=["s1", "labels"], seed=3)
    new = LakeDataset(loader_lake.spec, modalities=["s1", "labels"], seed=3)
    assert [s["patch_id"] for s in old] == [s["patch_id"] for s in new]
    assert (old.items.labels == new.items.labels).all()

"""ReadOptions: validation naming the field, pickling, and how LakeDataset takes it."""

from __future__ import annotations

import math
import pickle
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import pytest

from lake.errors import ConfigError
from lake.loader import LakeDataLoader, LakeDataset, ReadOptions
from lake.loader.cache import ShardCache
from tests.lake.loader.helpers import batch_ids


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_in_flight", 0, "must be >= 1"),
        ("decode_threads", 0, "must be >= 1"),
        ("prefetch_runs", 0, "must be >= 1"),
        ("prefetch_runs", 1.5, "give an integer"),
        ("dense_fraction", -0.1, "must be >= 0"),
        ("max_gap", -1, "must be >= 0"),
        ("max_retries", -1, "must be >= 0"),
        ("retry_delay", -0.5, "must be >= 0"),
        ("timeout", 0, "must be > 0"),
        ("timeout", math.nan, "must be > 0"),
        ("cache_bytes", 0, "must be > 0"),
        ("max_in_flight", 2.5, "give an integer"),
        ("max_in_flight", True, "give an integer"),
        ("timeout", "60", "give a number"),
        ("cache_dir", 3, "give a folder path or None"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(field, value, message):
    with pytest.raises(ConfigError, match=rf"ReadOptions\({field}=.*: {message}"):
        ReadOptions(**{field: value})


def test_edges_that_mean_something_are_accepted():
    # 0: always whole objects; above 1: never (test_integrity reads both ways); no retries.
    for read in (ReadOptions(dense_fraction=0.0), ReadOptions(dense_fraction=1.1)):
        assert read.dense_fraction in (0.0, 1.1)
    assert ReadOptions(max_retries=0, retry_delay=0, max_gap=0).retry_policy().max_retries == 0


def test_frozen_picklable_and_hashable(tmp_path):
    read = ReadOptions(max_in_flight=32, cache_dir=tmp_path / "shards", cache_bytes=2**20)
    assert read.cache_dir == str(tmp_path / "shards")  # a path-like becomes a plain str
    assert pickle.loads(pickle.dumps(read)) == read
    assert hash(read) == hash(replace(read))
    with pytest.raises(FrozenInstanceError):
        read.max_in_flight = 1  # type: ignore[misc]
    assert read.shard_cache() == ShardCache(str(tmp_path / "shards"), 2**20)
    assert ReadOptions().shard_cache() is None
    policy = ReadOptions(max_retries=3, retry_delay=0.05).retry_policy()
    assert (policy.max_retries, policy.base_delay) == (3, 0.05)


def test_dataset_takes_read_and_refuses_the_old_keywords(loader_lake, tmp_path):
    read = ReadOptions(
        max_in_flight=2, decode_threads=1, prefetch_runs=3, cache_dir=tmp_path / "cache"
    )
    ds = LakeDataset(
        loader_lake.spec,
        modalities=["s2_60m", "labels"],
        seed=3,
        shuffle_buffer_shards=1,
        read=read,
    )
    assert ds.read is read and ds.cache == read.shard_cache()
    plain = LakeDataset(
        loader_lake.spec, modalities=["s2_60m", "labels"], seed=3, shuffle_buffer_shards=1
    )
    assert plain.read == ReadOptions() and plain.cache is None
    # How it reads never changes what comes, nor the order, nor the resume state.
    assert batch_ids(LakeDataLoader(ds, 8)) == batch_ids(LakeDataLoader(plain, 8))
    assert ds.state_dict() == plain.state_dict()
    with pytest.raises(ConfigError, match=r"max_in_flight=4: .*read=ReadOptions\(max_in_flight"):
        LakeDataset(loader_lake.spec, max_in_flight=4)
    with pytest.raises(ConfigError, match=r"read=\{'timeout': 5\}: give a lake.loader.ReadOptions"):
        LakeDataset(loader_lake.spec, read={"timeout": 5})  # type: ignore[arg-type]


def test_loader_counts_through_the_public_api(loader_lake, tmp_path: Path):
    ds = LakeDataset(loader_lake.spec, modalities=["labels"], seed=1)
    with pytest.raises(ConfigError, match=r"consumed=-1: must be in \[0, rank_length="):
        ds.set_consumed(-1)
    with pytest.raises(ConfigError, match="consumed="):
        ds.set_consumed(ds.rank_length + 1)
    ds.set_consumed(5)
    assert ds.start_position() == 5 and ds.state_dict()["consumed"] == 5
    spool = ShardCache(str(tmp_path / "spool"), 2**20)
    with ds.sharing_reads(spool):
        assert pickle.loads(pickle.dumps(ds))._spool == spool  # what a worker receives
    assert pickle.loads(pickle.dumps(ds))._spool is None

"""The epoch order: block shuffle, equal rank lengths, worker split, resume (pure NumPy)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from lake.errors import ConfigError
from lake.loader import order

# 10 shards of uneven fill (a sparse selection), items in storage order.
SHARDS = np.repeat(np.arange(10), [5, 3, 8, 1, 6, 7, 2, 9, 4, 5])


def test_importing_the_order_does_not_import_torch():
    import subprocess

    code = "import lake.loader.order, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_epoch_order_is_a_seeded_permutation_with_windows_of_shards():
    o = order.epoch_order(SHARDS, seed=3, epoch=0, buffer_shards=3)
    assert sorted(o.items.tolist()) == list(range(len(SHARDS)))
    again = order.epoch_order(SHARDS, seed=3, epoch=0, buffer_shards=3)
    assert np.array_equal(o.items, again.items)
    assert not np.array_equal(o.items, order.epoch_order(SHARDS, seed=3, epoch=1).items)
    assert not np.array_equal(o.items, order.epoch_order(SHARDS, seed=4, epoch=0).items)
    # each window holds the items of at most 3 shards, and windows do not interleave
    for w in np.unique(o.windows):
        assert len(np.unique(SHARDS[o.items[o.windows == w]])) <= 3
    assert (np.diff(o.windows) >= 0).all()


def test_without_shuffle_the_order_is_storage_order():
    o = order.epoch_order(SHARDS, seed=3, epoch=5, shuffle=False)
    assert o.items.tolist() == list(range(len(SHARDS)))


@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_pad_gives_equal_lengths_and_every_item(world):
    o = order.epoch_order(SHARDS, seed=1, epoch=0)
    seqs = [order.rank_sequence(o, rank=r, world_size=world) for r in range(world)]
    assert len({s.length for s in seqs}) == 1
    seen = np.concatenate([s.items for s in seqs])
    assert set(seen.tolist()) == set(range(len(SHARDS)))
    assert len(seen) - len(SHARDS) < world  # at most world - 1 repeats


@pytest.mark.parametrize("world", [2, 3, 7])
def test_drop_gives_equal_lengths_and_no_repeat(world):
    o = order.epoch_order(SHARDS, seed=1, epoch=0)
    seqs = [order.rank_sequence(o, rank=r, world_size=world, equalize="drop") for r in range(world)]
    assert len({s.length for s in seqs}) == 1
    seen = np.concatenate([s.items for s in seqs]).tolist()
    assert len(seen) == len(set(seen)) and len(SHARDS) - len(seen) < world


def test_ranks_read_mostly_disjoint_shards():
    o = order.epoch_order(SHARDS, seed=2, epoch=0, buffer_shards=1)
    a, b = (set(SHARDS[order.rank_sequence(o, rank=r, world_size=2).items]) for r in (0, 1))
    assert len(a & b) <= 2  # only the shards cut by the rank boundary (and padding)


@pytest.mark.parametrize(("workers", "block"), [(1, 1), (2, 1), (3, 4), (4, 5)])
def test_workers_interleave_back_into_the_rank_sequence(workers, block):
    length, start = 50, 7
    per = [
        order.worker_positions(length, start=start, num_workers=workers, worker=w, block=block)
        for w in range(workers)
    ]
    assert sorted(np.concatenate(per).tolist()) == list(range(start, length))
    # a DataLoader takes one block from each worker in turn: that is the rank order again
    queues = [order.blocks(p, start=start, block=block) for p in per]
    merged = []
    k = 0
    while any(queues):
        q = queues[k % workers]
        if q:
            merged.extend(q.pop(0).tolist())
        k += 1
    assert merged == list(range(start, length))


def test_runs_split_where_windows_change_and_where_padding_wraps():
    o = order.epoch_order(SHARDS, seed=0, epoch=0, buffer_shards=2)
    seq = order.rank_sequence(o, rank=2, world_size=3)  # the last rank gets the padding
    assert (np.diff(seq.runs) >= 0).all()
    for r in np.unique(seq.runs):
        assert len(np.unique(SHARDS[seq.items[seq.runs == r]])) <= 2


def test_bad_arguments_name_the_value():
    with pytest.raises(ConfigError, match="shuffle_buffer_shards=0"):
        order.epoch_order(SHARDS, seed=0, epoch=0, buffer_shards=0)
    with pytest.raises(ConfigError, match="equalize='even'"):
        order.rank_length(10, 2, "even")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="rank=2"):
        order.rank_sequence(order.epoch_order(SHARDS, seed=0, epoch=0), rank=2, world_size=2)
    with pytest.raises(ConfigError, match="start=51"):
        order.worker_positions(50, start=51)

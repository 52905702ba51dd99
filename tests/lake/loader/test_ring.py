"""BatchRing: workers hand batches over in reused shared memory, and no kept batch changes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from lake.loader import LakeDataLoader, LakeDataset
from lake.loader.ring import RING_KEY, BatchRing

TIMEOUT = 120


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert list(a) == list(b)
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert a[key].dtype == b[key].dtype, key
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
        else:
            assert a[key] == b[key], key


@pytest.mark.timeout(180)
def test_worker_batches_come_through_reused_arenas_and_equal_in_process_ones(loader_lake):
    def make() -> LakeDataset:
        return LakeDataset(
            loader_lake.spec, modalities=["s2_10m", "s1", "labels"], seed=3, dtype="native"
        )

    reference = list(LakeDataLoader(make(), batch_size=4))
    dl = LakeDataLoader(make(), batch_size=4, num_workers=2, timeout=TIMEOUT)
    kept = list(dl)  # every batch kept: a reused arena must not change an earlier one
    ring = dl._ring
    assert ring is not None
    assert len(kept) == len(reference) > 2 * ring.workers * ring.slots
    for got, want in zip(kept, reference, strict=True):
        assert RING_KEY not in got
        _same(got, want)
    # the ring carried the batches, in no more arenas than it has, all free again
    assert 0 < len(ring._received) <= ring.workers * ring.slots
    assert int(ring.busy.sum()) == 0
    # a second epoch (new workers, a new ring) stopped after 3 batches, then resumed (the
    # next iterator goes on from there, with new workers and another ring)
    for k, got in enumerate(dl):
        _same(got, reference[k])
        if k == 2:
            break
    second = dl._ring
    assert second is not ring
    for got, want in zip(dl, reference[3:], strict=True):
        _same(got, want)
    assert dl._ring is not second


class _Numbered(IterableDataset[dict[str, Any]]):
    """Batches whose values say which batch they are, in several dtypes."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        me, step = (info.id, info.num_workers) if info is not None else (0, 1)
        for k in range(me, self.n, step):
            yield {
                "ids": [f"b{k}-{i}" for i in range(3)],
                "u16": torch.full((3, 2, 5, 5), k, dtype=torch.uint16),
                "f32": torch.full((3, 7), k + 0.5, dtype=torch.float32),
                "i64": torch.arange(3, dtype=torch.int64) + k,
                "n": k,
            }


@pytest.mark.timeout(120)
@pytest.mark.parametrize("slots", [1, 4])
def test_a_worker_without_a_free_arena_sends_its_batch_the_usual_way(slots):
    """With one arena per worker and two batches in flight, workers often find theirs busy:
    those batches go through torch's own path, and every batch still arrives intact."""
    ring = BatchRing(2, slots)
    dl = DataLoader(
        _Numbered(40), batch_size=None, num_workers=2, collate_fn=ring.pack, timeout=TIMEOUT
    )
    ringed = 0
    kept = []
    for batch in dl:
        ringed += RING_KEY in batch
        kept.append(ring.unpack(batch))
    assert ringed > 0
    assert sorted(b["n"] for b in kept) == list(range(40))
    for b in kept:
        k = b["n"]
        assert list(b) == ["ids", "u16", "f32", "i64", "n"]
        assert b["ids"] == [f"b{k}-{i}" for i in range(3)]
        assert b["u16"].dtype == torch.uint16 and b["u16"].shape == (3, 2, 5, 5)
        assert bool((b["u16"].to(torch.int32) == k).all())
        np.testing.assert_array_equal(b["f32"].numpy(), np.full((3, 7), k + 0.5, np.float32))
        np.testing.assert_array_equal(b["i64"].numpy(), np.arange(3) + k)
    assert int(ring.busy.sum()) == 0


def test_outside_a_worker_a_batch_passes_unchanged():
    ring = BatchRing(2, 3)
    batch = {"x": torch.ones(2), "ids": ["a", "b"]}
    assert ring.pack(batch) is batch
    assert ring.unpack(batch) is batch


def test_no_ring_in_process_or_with_pinned_memory(loader_lake):
    ds = LakeDataset(loader_lake.spec, modalities=["labels"], seed=3)
    assert LakeDataLoader(ds, batch_size=4)._ring_slots == 0
    assert LakeDataLoader(ds, batch_size=4, num_workers=2, pin_memory=True)._ring_slots == 0
    dl = LakeDataLoader(ds, batch_size=4, num_workers=2, prefetch_factor=3, timeout=TIMEOUT)
    next(iter(dl))
    assert dl._ring is not None and (dl._ring.workers, dl._ring.slots) == (2, 5)


class _Empty(IterableDataset[dict[str, Any]]):
    """A batch whose every sample was skipped (no rows), then one with rows."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for rows in (0, 2):
            yield {"patch_id": ["p"] * rows, "s2": torch.ones((rows, 4, 3, 3), dtype=torch.uint16)}


@pytest.mark.timeout(120)
def test_a_batch_without_rows_crosses_the_ring():
    ring = BatchRing(1, 2)
    dl = DataLoader(_Empty(), batch_size=None, num_workers=1, collate_fn=ring.pack, timeout=TIMEOUT)
    got = []
    for batch in dl:
        assert RING_KEY in batch
        got.append(ring.unpack(batch))
    assert [b["s2"].shape for b in got] == [(0, 4, 3, 3), (2, 4, 3, 3)]
    assert got[1]["s2"].dtype == torch.uint16 and bool((got[1]["s2"] == 1).all())

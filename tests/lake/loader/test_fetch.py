"""How :class:`lake.loader.fetch.ShardReader` plans its reads: whole shards or merged byte ranges.

The planning itself is private, so it is observed through the public entry point: shard objects
are written by hand into a local lake folder (chunk bytes at chosen offsets, then the index and
its CRC32C, as a sharded Zarr v3 array stores them), :meth:`ShardReader.fetch` reads the chunks
asked for, and :attr:`ShardReader.stats` records each GET it made: ``(None, None)`` for a whole
object, a negative start for the index (a suffix), and ``(lo, hi)`` for a planned byte range.
With one request in flight the GETs happen in the order they were planned.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import google_crc32c
import numpy as np
import pytest

from lake.config import StoreSpec, store_spec
from lake.errors import ShardReadError
from lake.loader.fetch import EMPTY, ArrayLayout, ShardReader

RELEASE = "r1"
Chunk = tuple[int, int]  # (offset, nbytes) in the shard object; (-1, 0): never written


def make_layout(name: str = "arr", samples_per_shard: int = 16, n_samples: int = 64) -> ArrayLayout:
    """An array of one-sample chunks of 4 bytes (the sizes in the index are what count here)."""
    return ArrayLayout(
        name=name,
        sample_shape=(4,),
        dtype="uint8",
        samples_per_shard=samples_per_shard,
        n_samples=n_samples,
        codecs="[]",
        key_suffix="/0",
    )


def write_shard(
    root: Path, layout: ArrayLayout, shard: int, chunks: Sequence[Chunk], seed: int = 0
) -> bytes:
    """Write a shard object whose chunk ``c`` is the bytes at ``chunks[c]``; returns the object.

    The data region is seeded random bytes as long as the furthest chunk end, so a chunk read from
    the wrong offset shows; chunks may overlap, leave gaps, or come in any order.
    """
    assert len(chunks) == layout.samples_per_shard
    end = max((off + n for off, n in chunks if off >= 0), default=0)
    data = random.Random(seed).randbytes(end)
    index = np.array(
        [(EMPTY, EMPTY) if off < 0 else (off, n) for off, n in chunks], dtype="<u8"
    ).tobytes()
    crc = google_crc32c.value(index).to_bytes(4, "little")
    blob = data + index + crc
    path = root / layout.key(f"patches/{RELEASE}.zarr", shard)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return blob


@contextmanager
def reading(
    spec: StoreSpec,
    layouts: Sequence[ArrayLayout],
    *,
    max_gap: int = 256 * 1024,
    dense_fraction: float = 0.25,
    max_in_flight: int = 1,
) -> Iterator[ShardReader]:
    """A reader of the hand-written lake (the one place these tests build one).

    One request in flight by default, so the GETs happen in the order they were planned.
    """
    reader = ShardReader(
        spec,
        RELEASE,
        {lay.name: lay for lay in layouts},
        max_in_flight=max_in_flight,
        dense_fraction=dense_fraction,
        max_gap=max_gap,
    )
    try:
        yield reader
    finally:
        reader.close()


@pytest.fixture
def spec(tmp_path: Path) -> StoreSpec:
    """A local lake folder (only its shard objects are written)."""
    return store_spec(str(tmp_path), environ={})


def planned(reader: ShardReader) -> list[tuple[int, int]]:
    """The byte ranges the reader requested (index suffixes and whole objects left out)."""
    return [
        (lo, hi) for lo, hi in reader.stats.ranges if lo is not None and lo >= 0 and hi is not None
    ]


def fetch_one(
    reader: ShardReader, layout: ArrayLayout, shard: int, local: Sequence[int]
) -> dict[int, bytes]:
    """Fetch chunks of one shard; the chunks' bytes by chunk number (errors fail the test)."""
    data, errors = reader.fetch({layout.name: {shard: np.array(local, dtype=np.int64)}})
    assert errors == {}
    return {c: bytes(v) for c, v in data[(layout.name, shard)].chunks.items()}


def contiguous(sizes: Sequence[int], spp: int = 16, gap: int = 0) -> list[Chunk]:
    """Chunks one after another (``gap`` bytes apart), padded with 1-byte chunks to ``spp``."""
    out, pos = [], 0
    for n in [*sizes, *[1] * (spp - len(sizes))]:
        out.append((pos, n))
        pos += n + gap
    return out


# -- merging ---------------------------------------------------------------------------------


def test_a_single_chunk_is_the_index_then_exactly_its_bytes(
    spec: StoreSpec, tmp_path: Path
) -> None:
    layout = make_layout()
    chunks = contiguous([100, 37, 100], gap=11)
    blob = write_shard(tmp_path, layout, 0, chunks)
    with reading(spec, [layout]) as reader:
        got = fetch_one(reader, layout, 0, [1])
        stats = reader.stats
    assert stats.ranges == ((-layout.index_nbytes, None), (111, 148))
    assert got == {1: blob[111:148]}
    assert stats.bytes == layout.index_nbytes + 37
    assert stats.requests == 2


def test_adjacent_chunks_are_one_range_even_with_no_gap_allowed(
    spec: StoreSpec, tmp_path: Path
) -> None:
    layout = make_layout()
    blob = write_shard(tmp_path, layout, 0, contiguous([10, 10, 10]))
    with reading(spec, [layout], max_gap=0) as reader:
        got = fetch_one(reader, layout, 0, [0, 1, 2])
        assert planned(reader) == [(0, 30)]
    assert got == {0: blob[0:10], 1: blob[10:20], 2: blob[20:30]}


@pytest.mark.parametrize("gap", [1, 7, 4096])
def test_a_gap_of_exactly_max_gap_is_merged_one_more_byte_is_not(
    spec: StoreSpec, tmp_path: Path, gap: int
) -> None:
    layout = make_layout()
    blob = write_shard(tmp_path, layout, 0, contiguous([10, 20], gap=gap))
    second = (10 + gap, 30 + gap)
    with reading(spec, [layout], max_gap=gap) as reader:
        got = fetch_one(reader, layout, 0, [0, 1])
        assert planned(reader) == [(0, second[1])]
    assert got == {0: blob[0:10], 1: blob[second[0] : second[1]]}
    with reading(spec, [layout], max_gap=gap - 1) as reader:
        got = fetch_one(reader, layout, 0, [0, 1])
        assert planned(reader) == [(0, 10), second]
    assert got == {0: blob[0:10], 1: blob[second[0] : second[1]]}


def test_unneeded_chunks_between_needed_ones_are_read_through_within_max_gap(
    spec: StoreSpec, tmp_path: Path
) -> None:
    layout = make_layout()
    blob = write_shard(tmp_path, layout, 0, contiguous([10, 50, 10, 200, 10]))
    with reading(spec, [layout], max_gap=50) as reader:
        got = fetch_one(reader, layout, 0, [0, 2, 4])
        assert planned(reader) == [(0, 70), (270, 280)]  # 50 bytes merged, 200 not
    assert got == {0: blob[0:10], 2: blob[60:70], 4: blob[270:280]}


def test_overlapping_and_shared_chunk_bytes_are_read_once(spec: StoreSpec, tmp_path: Path) -> None:
    layout = make_layout()
    chunks = [(0, 50), (10, 10), (40, 20), (10, 10), (500, 5)] + [(600, 1)] * 11
    blob = write_shard(tmp_path, layout, 0, chunks)
    with reading(spec, [layout], max_gap=0, dense_fraction=0.5) as reader:
        got = fetch_one(reader, layout, 0, [3, 2, 1, 0])
        assert planned(reader) == [(0, 60)]
    assert got == {0: blob[0:50], 1: blob[10:20], 2: blob[40:60], 3: blob[10:20]}


def test_a_chunk_inside_the_previous_one_does_not_shrink_the_range(
    spec: StoreSpec, tmp_path: Path
) -> None:
    layout = make_layout()
    chunks = [(0, 100), (20, 10), (150, 10)] + [(300, 1)] * 13
    blob = write_shard(tmp_path, layout, 0, chunks)
    with reading(spec, [layout], max_gap=50) as reader:  # 150 - 100 = 50: merged
        got = fetch_one(reader, layout, 0, [0, 1, 2])
        assert planned(reader) == [(0, 160)]
    assert got == {0: blob[0:100], 1: blob[20:30], 2: blob[150:160]}


def test_ranges_follow_the_offsets_not_the_chunk_numbers(spec: StoreSpec, tmp_path: Path) -> None:
    layout = make_layout()
    chunks = [(2000, 10), (1000, 10), (0, 10)] + [(3000 + i, 1) for i in range(13)]
    blob = write_shard(tmp_path, layout, 0, chunks)
    with reading(spec, [layout], max_gap=100) as reader:
        got = fetch_one(reader, layout, 0, [0, 1, 2])
        assert planned(reader) == [(0, 10), (1000, 1010), (2000, 2010)]
    assert got == {0: blob[2000:2010], 1: blob[1000:1010], 2: blob[0:10]}


def test_repeated_chunk_numbers_are_fetched_once(spec: StoreSpec, tmp_path: Path) -> None:
    layout = make_layout()
    blob = write_shard(tmp_path, layout, 0, contiguous([10, 10, 10], gap=1000))
    with reading(spec, [layout], max_gap=0) as reader:
        got = fetch_one(reader, layout, 0, [2, 2, 2])
        assert planned(reader) == [(2020, 2030)]
    assert got == {2: blob[2020:2030]}


# -- whole shard or ranges ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spp", "n_samples", "shard", "needed", "dense_fraction", "whole"),
    [
        (8, 16, 0, 1, 0.25, False),  # 1 < 0.25 * 8
        (8, 16, 0, 2, 0.25, True),  # 2 >= 0.25 * 8: at the threshold, whole
        (8, 16, 1, 7, 1.0, False),
        (8, 16, 1, 8, 1.0, True),
        (8, 10, 1, 1, 0.25, True),  # the last shard holds 2 samples: 1 >= 0.25 * 2
        (8, 13, 1, 1, 0.25, False),  # 5 samples: 1 < 1.25
        (8, 13, 1, 2, 0.25, True),
        (8, 16, 0, 1, 0.0, True),
        (8, 16, 0, 8, 1.5, False),  # over 1: never whole
    ],
)
def test_whole_object_when_at_least_dense_fraction_of_the_shard_is_needed(
    spec: StoreSpec,
    tmp_path: Path,
    spp: int,
    n_samples: int,
    shard: int,
    needed: int,
    dense_fraction: float,
    whole: bool,
) -> None:
    layout = make_layout(samples_per_shard=spp, n_samples=n_samples)
    size = min(spp, n_samples - shard * spp)
    chunks = contiguous([20] * size, spp=spp, gap=3)[:size] + [(-1, 0)] * (spp - size)
    blob = write_shard(tmp_path, layout, shard, chunks)
    local = list(range(0, 2 * needed, 2)) if 2 * needed <= size else list(range(needed))
    with reading(spec, [layout], dense_fraction=dense_fraction, max_gap=0) as reader:
        got = fetch_one(reader, layout, shard, local)
        stats = reader.stats
    assert got == {c: blob[chunks[c][0] : chunks[c][0] + 20] for c in local}
    if whole:
        assert stats.ranges == ((None, None),)
        assert stats.bytes == len(blob)
    else:
        assert stats.ranges[0] == (-layout.index_nbytes, None)
        assert all(lo is not None and lo >= 0 for lo, _ in stats.ranges[1:])
        assert stats.bytes < len(blob)


def test_nothing_needed_reads_nothing(spec: StoreSpec, tmp_path: Path) -> None:
    layout = make_layout()
    write_shard(tmp_path, layout, 0, contiguous([10]))
    with reading(spec, [layout]) as reader:
        assert reader.fetch({}) == ({}, {})
        assert reader.fetch({"arr": {}}) == ({}, {})
        assert reader.fetch({"arr": {0: np.array([], dtype=np.int64)}}) == ({}, {})
        assert reader.stats.requests == 0


def test_a_chunk_outside_the_shard_is_refused(spec: StoreSpec, tmp_path: Path) -> None:
    layout = make_layout()
    write_shard(tmp_path, layout, 0, contiguous([10]))
    with reading(spec, [layout]) as reader:
        for bad in (16, -1):
            with pytest.raises(ValueError, match=f"chunks \\[.*{bad}.*\\] out of range for arr"):
                reader.fetch({"arr": {0: np.array([0, bad])}})
        assert reader.stats.requests == 0


def test_a_chunk_never_written_fails_its_shard_only(spec: StoreSpec, tmp_path: Path) -> None:
    layout = make_layout(n_samples=32)
    hole = [*contiguous([10, 10])[:5], (-1, 0), *contiguous([10])[6:]]
    write_shard(tmp_path, layout, 0, hole)
    blob = write_shard(tmp_path, layout, 1, contiguous([10, 10]))
    with reading(spec, [layout]) as reader:
        data, errors = reader.fetch({"arr": {0: np.array([1, 5]), 1: np.array([1])}})
        assert planned(reader) == [(10, 20)]  # nothing of shard 0 is read past its index
    assert list(errors) == [("arr", 0)]
    assert isinstance(errors[("arr", 0)], ShardReadError)
    assert "cannot read shard 0 of array 'arr'" in str(errors[("arr", 0)])
    assert "chunks [5] of the shard were never written" in str(errors[("arr", 0)])
    assert list(data) == [("arr", 1)]
    assert bytes(data[("arr", 1)].chunks[1]) == blob[10:20]


def test_shards_are_read_in_ascending_order_indexes_first_then_whole_then_ranges(
    spec: StoreSpec, tmp_path: Path
) -> None:
    a, b = make_layout("a"), make_layout("b")
    for layout in (a, b):
        for shard in range(3):
            write_shard(tmp_path, layout, shard, contiguous([10] * 16, gap=100), seed=shard)
    needs = {  # chunk c of every shard is at c * 110
        "b": {2: np.array([3]), 0: np.array(range(8)), 1: np.array([5, 0])},
        "a": {1: np.array([4]), 2: np.array([1]), 0: np.array([2])},
    }
    with reading(spec, [a, b], max_gap=0) as reader:
        data, errors = reader.fetch(needs)
        stats = reader.stats
    assert errors == {}
    assert sorted(data) == [(n, s) for n in "ab" for s in range(3)]
    read = [(k.split("/")[2], int(k.split("/c/")[1].split("/")[0])) for k in stats.keys]
    sparse = [("a", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]  # by shard, then by array
    assert read == [*sparse, ("b", 0), ("a", 0), ("a", 1), ("b", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert stats.ranges[5] == (None, None)  # b's shard 0 needs 8 of 16 chunks: whole
    assert planned(reader) == [(220, 230), (440, 450), (0, 10), (550, 560), (110, 120), (330, 340)]


# -- every chunk covered exactly -----------------------------------------------------------------


def _random_shard(rng: random.Random, spp: int) -> list[Chunk]:
    """Chunks in a random order with random gaps; some share or overlap others' bytes."""
    chunks: list[Chunk] = [(0, 0)] * spp
    pos = 0
    for c in rng.sample(range(spp), spp):
        roll = rng.random()
        n = rng.randint(1, 300)
        if roll < 0.1 and pos:
            chunks[c] = (rng.randrange(pos), n)  # overlaps bytes written before
        elif roll < 0.15 and pos:
            chunks[c] = chunks[rng.choice([d for d in range(spp) if chunks[d][1]])]  # shared
        else:
            chunks[c] = (pos, n)
            pos += n + rng.choice([0, 0, 1, rng.randint(2, 600)])
    return chunks


def _check_plan(
    ranges: Sequence[tuple[int, int]], needed: Mapping[int, Chunk], max_gap: int
) -> None:
    """The ranges are the needed chunks' byte spans merged across gaps of at most ``max_gap``.

    Together these properties single out one plan: sorted, gaps between ranges over
    ``max_gap``, each range starting at a chunk's start and ending at a chunk's end, no hole
    over ``max_gap`` inside a range, and every chunk inside exactly one range.
    """
    spans = [(off, off + n) for off, n in needed.values()]
    for (_, hi), (lo, _) in itertools.pairwise(ranges):
        assert lo - hi > max_gap
    for lo, hi in ranges:
        inside = sorted(s for s in spans if lo <= s[0] and s[1] <= hi)
        assert inside and inside[0][0] == lo and max(e for _, e in inside) == hi
        reach = lo
        for start, end in inside:
            assert start - reach <= max_gap
            reach = max(reach, end)
    for start, end in spans:
        assert sum(lo <= start and end <= hi for lo, hi in ranges) == 1


@pytest.mark.parametrize("seed", range(40))
def test_planned_reads_cover_every_needed_chunk_exactly(
    spec: StoreSpec, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    spp = rng.choice([8, 16, 33, 64])
    layout = make_layout(samples_per_shard=spp, n_samples=spp * 2)
    chunks = _random_shard(rng, spp)
    blob = write_shard(tmp_path, layout, 1, chunks, seed=seed)
    dense_fraction = rng.choice([0.25, 0.5, 1.0])
    local = rng.sample(range(spp), rng.randint(1, max(1, int(dense_fraction * spp) - 1)))
    max_gap = rng.choice([0, 1, 50, 300, 10_000])
    with reading(spec, [layout], max_gap=max_gap, dense_fraction=dense_fraction) as reader:
        got = fetch_one(reader, layout, 1, local)
        ranges = planned(reader)
        stats = reader.stats
    assert got == {c: blob[chunks[c][0] : sum(chunks[c])] for c in local}
    _check_plan(ranges, {c: chunks[c] for c in local}, max_gap)
    assert stats.bytes == layout.index_nbytes + sum(hi - lo for lo, hi in ranges)
    assert stats.requests == 1 + len(ranges)
    with reading(
        spec, [layout], max_gap=max_gap, dense_fraction=dense_fraction, max_in_flight=8
    ) as many:
        assert fetch_one(many, layout, 1, local) == got
        assert sorted(planned(many)) == ranges


def test_the_checker_rejects_plans_that_are_not_the_merge() -> None:
    needed = {0: (0, 10), 1: (15, 5), 2: (100, 10)}
    _check_plan([(0, 20), (100, 110)], needed, max_gap=5)
    for wrong in (
        [(0, 110)],  # merged across a gap over max_gap
        [(0, 10), (15, 20), (100, 110)],  # not merged across a gap of max_gap
        [(0, 20)],  # a chunk left out
        [(0, 21), (100, 110)],  # a byte past the last chunk
        [(100, 110), (0, 20)],  # out of order
    ):
        with pytest.raises(AssertionError):
            _check_plan(wrong, needed, max_gap=5)

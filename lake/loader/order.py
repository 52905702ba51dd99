"""The order of an epoch: seeded block shuffle, equal rank lengths, worker split, resume.

Pure NumPy; no torch, no I/O. Everything is a pure function of the items' shards and
``(seed, epoch, rank, world_size)``, so any process can recompute any rank's sequence and split
it over any number of workers.

The epoch order, step by step:

1. **Shard order.** The shards that hold the selection are shuffled with
   ``default_rng([seed, epoch, 0])`` (kept ascending when ``shuffle=False``). Items are laid out
   shard by shard, in storage order inside a shard.
2. **Buffer shuffle.** Consecutive runs of ``buffer_shards`` shards form a *window*; the items of
   each window are shuffled with ``default_rng([seed, epoch, 1, window])``. A batch mixes pairs
   of several shards while a reader needs at most one window of shards at a time.
3. **Equal lengths.** With ``n`` items and ``world_size`` ranks every rank gets
   ``L = ceil(n / world_size)`` positions (``equalize="pad"``: the sequence is extended by
   repeating its beginning, so at most ``world_size - 1`` items are seen twice in an epoch) or
   ``L = n // world_size`` (``equalize="drop"``: up to ``world_size - 1`` items are left out
   of the epoch). Rank ``r`` takes the contiguous slice ``[r * L, (r + 1) * L)``, so ranks
   read mostly disjoint shards.
4. **Workers.** A rank's positions from ``start`` on are cut into blocks of ``block`` positions
   (the batch size); block ``b`` goes to worker ``b % num_workers``. A DataLoader collects one
   batch from each worker in turn, so it delivers the rank's sequence in order whatever the
   number of workers.
5. **Resume.** The state is the number of positions of the rank's sequence already delivered
   (``consumed``); resuming re-splits ``[consumed, L)`` over the new workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from lake.errors import ConfigError

Equalize = Literal["pad", "drop"]
EQUALIZE: Final = ("pad", "drop")

_SHARD_STREAM: Final = 0
_WINDOW_STREAM: Final = 1


@dataclass(frozen=True)
class EpochOrder:
    """The global order of one epoch (before the split over ranks).

    Attributes:
        items: Item numbers (indices into the selection) in delivery order.
        windows: The window of each position (non-decreasing; equal values share a buffer).
    """

    items: np.ndarray
    windows: np.ndarray


@dataclass(frozen=True)
class RankSequence:
    """What one rank delivers in one epoch.

    Attributes:
        items: Item numbers, ``length`` of them, in delivery order.
        runs: A run id per position: consecutive positions with the same id come from the same
            window and are fetched together.
    """

    items: np.ndarray
    runs: np.ndarray

    @property
    def length(self) -> int:
        """Number of positions."""
        return len(self.items)


def epoch_order(
    shards: np.ndarray,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    buffer_shards: int = 4,
) -> EpochOrder:
    """The global order of an epoch: shard order, then a shuffle inside windows of shards.

    Args:
        shards: The shard of each item, in item order (items of a shard in storage order).
        seed: The seed.
        epoch: The epoch (a new order each epoch).
        shuffle: Shuffle; when False, items stay in storage order.
        buffer_shards: Shards per shuffle window (at least 1).

    Returns:
        The order and the window of each position.

    Raises:
        ConfigError: ``buffer_shards`` is below 1, or ``seed``/``epoch`` is negative.
    """
    if buffer_shards < 1:
        raise ConfigError(f"shuffle_buffer_shards={buffer_shards}: must be at least 1")
    if seed < 0 or epoch < 0:
        raise ConfigError(f"seed={seed}, epoch={epoch}: both must be >= 0")
    shards = np.asarray(shards, dtype=np.int64)
    unique, counts = np.unique(shards, return_counts=True)
    by_shard = np.argsort(shards, kind="stable")  # items grouped by shard, item order inside
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    rank_of = np.arange(len(unique))
    if shuffle:
        rank_of = np.random.default_rng([seed, epoch, _SHARD_STREAM]).permutation(len(unique))
    order_of_shards = np.argsort(rank_of, kind="stable")  # shard positions in visiting order
    pieces = [by_shard[starts[s] : starts[s] + counts[s]] for s in order_of_shards]
    items = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    per_shard_window = np.arange(len(unique)) // buffer_shards
    windows = np.repeat(per_shard_window, counts[order_of_shards]).astype(np.int64)
    if shuffle:
        bounds = np.flatnonzero(np.diff(windows)) + 1
        for w, (lo, hi) in enumerate(zip(np.r_[0, bounds], np.r_[bounds, len(items)], strict=True)):
            rng = np.random.default_rng([seed, epoch, _WINDOW_STREAM, w])
            items[lo:hi] = items[lo:hi][rng.permutation(hi - lo)]
    return EpochOrder(items=items.astype(np.int64), windows=windows)


def rank_length(n_items: int, world_size: int, equalize: Equalize = "pad") -> int:
    """Positions per rank so that every rank has the same epoch length.

    Raises:
        ConfigError: ``equalize`` is unknown or ``world_size`` is below 1.
    """
    if equalize not in EQUALIZE:
        raise ConfigError(f"equalize={equalize!r}: use one of {', '.join(EQUALIZE)}")
    if world_size < 1:
        raise ConfigError(f"world_size={world_size}: must be at least 1")
    if equalize == "pad":
        return -(-n_items // world_size)
    return n_items // world_size


def rank_sequence(
    order: EpochOrder, *, rank: int, world_size: int, equalize: Equalize = "pad"
) -> RankSequence:
    """The slice of an epoch that one rank delivers (equal length on every rank).

    Args:
        order: The epoch's global order.
        rank: This rank (``0 <= rank < world_size``).
        world_size: Number of ranks.
        equalize: ``pad`` (repeat the beginning) or ``drop`` (leave out the tail).

    Raises:
        ConfigError: ``rank`` is out of range.
    """
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank={rank}: must be in [0, world_size={world_size})")
    n = len(order.items)
    length = rank_length(n, world_size, equalize)
    lo, hi = rank * length, (rank + 1) * length
    positions = np.arange(lo, hi, dtype=np.int64)
    wrapped = positions % n if n else positions
    items = order.items[wrapped] if n else np.zeros(0, dtype=np.int64)
    laps = positions // n if n else positions
    windows = order.windows[wrapped] if n else np.zeros(0, dtype=np.int64)
    # A run changes where the window changes or where the padding wraps around.
    key = windows + laps * (int(order.windows.max()) + 1 if n else 1)
    runs = np.concatenate([[0], np.cumsum(np.diff(key) != 0)]).astype(np.int64)
    return RankSequence(items=items, runs=runs)


def worker_positions(
    length: int, *, start: int = 0, num_workers: int = 1, worker: int = 0, block: int = 1
) -> np.ndarray:
    """Positions of a rank's sequence that one worker delivers, in order.

    Positions ``[start, length)`` are cut into blocks of ``block``; block ``b`` goes to worker
    ``b % num_workers``.

    Raises:
        ConfigError: An argument is out of range.
    """
    if num_workers < 1 or not 0 <= worker < num_workers:
        raise ConfigError(f"worker {worker} of {num_workers}: out of range")
    if block < 1:
        raise ConfigError(f"block={block}: must be at least 1")
    if not 0 <= start <= length:
        raise ConfigError(f"start={start}: must be in [0, {length}] (the rank's epoch length)")
    positions = np.arange(start, length, dtype=np.int64)
    mine = ((positions - start) // block) % num_workers == worker
    return positions[mine]


def blocks(positions: np.ndarray, *, start: int, block: int) -> list[np.ndarray]:
    """Split a worker's positions into its blocks (the batches it yields)."""
    if len(positions) == 0:
        return []
    ids = (positions - start) // block
    cuts = np.flatnonzero(np.diff(ids)) + 1
    return list(np.split(positions, cuts))

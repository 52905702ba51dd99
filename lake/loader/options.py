"""``ReadOptions``: how a :class:`~lake.loader.LakeDataset` reads, never what or in which order.

:class:`~lake.loader.LakeDataset` takes what to deliver (lake, selection, modalities, split,
task, resampling, normalisation, the seeded order, ranks); everything else is I/O tuning and
lives here, in one frozen, picklable value (like zarr's ``ArrayConfig``): requests in flight,
decode threads, when to read a whole shard object instead of byte ranges, retries and timeouts,
and the local shard cache. Two datasets that differ only in their ``ReadOptions`` deliver the
same samples in the same order, so these settings are not part of a resume state.

Example:
    >>> from lake.loader import LakeDataset, ReadOptions
    >>> read = ReadOptions(max_in_flight=32, cache_dir="/tmp/shards")
    >>> ds = LakeDataset("s3://bucket/lake", split="train", read=read)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, fields
from typing import Final

from lake.errors import ConfigError
from lake.loader.cache import ShardCache
from lake.loader.fetch import RetryPolicy

#: Minimum of each numeric field: ``(bound, inclusive)``.
_AT_LEAST: Final = {
    "max_in_flight": (1, True),
    "prefetch_runs": (1, True),
    "decode_threads": (1, True),
    "dense_fraction": (0, True),
    "max_gap": (0, True),
    "max_retries": (0, True),
    "retry_delay": (0, True),
    "timeout": (0, False),
    "cache_bytes": (0, False),
    "decode_cache_bytes": (0, True),
}
_INTEGERS: Final = (
    "max_in_flight",
    "prefetch_runs",
    "decode_threads",
    "max_gap",
    "max_retries",
    "cache_bytes",
    "decode_cache_bytes",
)


@dataclass(frozen=True)
class ReadOptions:
    """I/O settings of a :class:`~lake.loader.LakeDataset` (frozen, picklable, hashable).

    Each process (the main one and every DataLoader worker) builds its own readers from these
    settings, so the counts below are per process.

    Attributes:
        max_in_flight: Concurrent requests per process (threads; the S3 connection pool is
            sized to match). At least 1.
        prefetch_runs: Runs (shuffle windows of shards) read ahead of the one being decoded.
            At least 1. Two keep requests in flight across a run's end, where one run ahead
            leaves the connections idle while the run's slowest object arrives; each costs a
            run's bytes of memory per process.
        decode_threads: Threads decoding chunks per process. At least 1.
        dense_fraction: Read a whole shard object when at least this share of its samples is
            needed, else its index and the needed chunks as byte ranges. 0 always reads whole
            objects; above 1 never does (unless a cache is set: cached objects are whole).
        max_gap: Merge two byte ranges of a shard object when at most this many bytes lie
            between them (one request instead of two).
        max_retries: Retries of a request after a transient error (timeouts, 5xx, resets,
            short reads), with exponential backoff. 0: fail at the first error.
        retry_delay: Delay before the first retry in seconds (doubled each retry, jittered).
        timeout: Connect/read timeout of one S3 request, in seconds (> 0).
        cache_dir: A local folder caching whole shard objects for later epochs (None: no
            cache). Releases are immutable, so the cache never needs invalidating.
        cache_bytes: Size cap of that cache (least recently used objects are evicted).
        decode_cache_bytes: Cap on the decoded arrays a process keeps within a run (a shuffle
            window) so that a pair used by several annotation rows is decoded once
            (:mod:`lake.loader.samplecache`). 0 turns it off: every row decodes its pair again.

    Raises:
        ConfigError: A value of the wrong type or out of range (the message names the field).
    """

    max_in_flight: int = 16
    prefetch_runs: int = 2
    decode_threads: int = 2
    dense_fraction: float = 0.25
    max_gap: int = 256 * 1024
    max_retries: int = 5
    retry_delay: float = 0.2
    timeout: float = 60.0
    cache_dir: str | os.PathLike[str] | None = None
    cache_bytes: int = 20 * 2**30
    decode_cache_bytes: int = 1 * 2**30

    def __post_init__(self) -> None:
        for field in fields(self):
            if field.name in _AT_LEAST:
                _check_number(field.name, getattr(self, field.name))
        if self.cache_dir is not None:
            if not isinstance(self.cache_dir, str | os.PathLike):
                raise ConfigError(
                    f"ReadOptions(cache_dir={self.cache_dir!r}): give a folder path or None"
                )
            # A plain str keeps the value comparable, hashable and light to pickle.
            object.__setattr__(self, "cache_dir", os.fspath(self.cache_dir))

    def retry_policy(self) -> RetryPolicy:
        """The retry policy of the readers (``max_retries``, ``retry_delay``)."""
        return RetryPolicy(max_retries=self.max_retries, base_delay=self.retry_delay)

    def shard_cache(self) -> ShardCache | None:
        """The local shard cache (``cache_dir``, ``cache_bytes``), or None without a folder."""
        if not self.cache_dir:
            return None
        return ShardCache(os.fspath(self.cache_dir), self.cache_bytes)


def _check_number(name: str, value: object) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless ``value`` is a number in its range."""
    integer = name in _INTEGERS
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(
            f"ReadOptions({name}={value!r}): give {'an integer' if integer else 'a number'}"
        )
    bound, inclusive = _AT_LEAST[name]
    number = float(value)
    if math.isnan(number) or (number < bound if inclusive else number <= bound):
        raise ConfigError(
            f"ReadOptions({name}={value!r}): must be {'>=' if inclusive else '>'} {bound}"
        )

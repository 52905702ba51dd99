"""Decode once per run: the decoded arrays of the pairs a run still needs.

A text item is an annotation row, and a pair has about 21 of them, spread over the shuffle
window by the order. Without a cache each row decoded its pair again (2,113 decodes of 143
pairs in a VQA epoch of the test lake). A :class:`RunCache` serves one run (the positions of one
shuffle window that one worker delivers): it knows every sample the run will use, decodes a
sample the first time it is needed, keeps its arrays while later positions of the run still
need it, and drops them after their last use; the cache itself is dropped when the run ends.

Memory: at most ``max_bytes`` of decoded arrays per process (``ReadOptions.decode_cache_bytes``;
least recently used entries go first, and are decoded again if needed again). Entries are views
of the block of samples they were decoded with (no copy), so a block counts whole while one of
its samples is held. What a run can hold is bounded anyway by the pairs of one window
(``shuffle_buffer_shards`` shards) times one pair's decoded size (about 0.5 MB at native
resolution for all five rasters as float32). For ``task="labels"`` and ``group="pair"`` every
sample is used once, so nothing is kept (the dataset does not even build a cache).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from lake.errors import ShardReadError

#: Decodes samples: ``(samples) -> (array -> (n, ...) values, row -> error)``.
DecodeFn = Callable[[np.ndarray], tuple[dict[str, np.ndarray], dict[int, ShardReadError]]]


class RunCache:
    """The decoded samples of one run that later positions of the run still need.

    Args:
        uses: The sample index of every position of the run (repeats are uses).
        max_bytes: Cap on the decoded bytes held (least recently used entries are evicted).
    """

    def __init__(self, uses: np.ndarray, max_bytes: int) -> None:
        values, counts = np.unique(np.asarray(uses, dtype=np.int64), return_counts=True)
        self._left: dict[int, int] = dict(zip(values.tolist(), counts.tolist(), strict=True))
        self._entries: OrderedDict[int, tuple[int, dict[str, np.ndarray]]] = OrderedDict()
        #: Held entries and bytes of each decoded block (by a serial number).
        self._blocks: dict[int, list[int]] = {}
        self._serial = 0
        self._bytes = 0
        self.max_bytes = max_bytes
        #: The most bytes held at once.
        self.peak_bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def take(
        self, samples: np.ndarray, decode: DecodeFn
    ) -> tuple[dict[str, np.ndarray], dict[int, ShardReadError]]:
        """The arrays of ``samples`` (positions of the run, in order), decoding what is missing.

        Args:
            samples: Sample index of each position of a piece of the run.
            decode: Decodes the samples that are not held (each distinct one once).

        Returns:
            ``array -> (n, ...)`` values (fresh arrays the caller may change) and
            ``row -> error`` for rows whose sample could not be decoded (values left zero).
        """
        wanted = [int(s) for s in samples.tolist()]
        missing = [s for s in dict.fromkeys(wanted) if s not in self._entries]
        fresh: dict[int, dict[str, np.ndarray]] = {}
        bad: dict[int, ShardReadError] = {}
        block = self._serial
        if missing:
            self._serial += 1
            decoded, problems = decode(np.array(missing, dtype=np.int64))
            self._blocks[block] = [0, sum(v.nbytes for v in decoded.values())]
            for row, s in enumerate(missing):
                fresh[s] = {name: values[row] for name, values in decoded.items()}
                if row in problems:
                    bad[s] = problems[row]

        def source(s: int) -> dict[str, np.ndarray]:
            return fresh[s] if s in fresh else self._entries[s][1]

        names = source(wanted[0]).keys() if wanted else ()
        arrays = {name: np.stack([source(s)[name] for s in wanted]) for name in names}
        errors = {row: bad[s] for row, s in enumerate(wanted) if s in bad}
        for s in wanted:
            self._left[s] = self._left.get(s, 1) - 1
        for s in dict.fromkeys(wanted):
            if self._left.get(s, 0) > 0 and s not in bad:
                if s in fresh:
                    self._put(s, block, fresh[s])
                else:
                    self._entries.move_to_end(s)
            else:
                self._drop(s)
        if missing and not self._blocks[block][0]:
            del self._blocks[block]
        return arrays, errors

    def _put(self, sample: int, block: int, arrays: dict[str, np.ndarray]) -> None:
        held, size = self._blocks[block]
        if not held and size > self.max_bytes:
            return
        self._entries[sample] = (block, arrays)
        self._blocks[block][0] += 1
        self._bytes += 0 if held else size
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
        self.peak_bytes = max(self.peak_bytes, self._bytes)

    def _drop(self, sample: int) -> None:
        entry = self._entries.pop(sample, None)
        if entry is None:
            return
        counts = self._blocks[entry[0]]
        counts[0] -= 1
        if not counts[0]:
            self._bytes -= counts[1]
            del self._blocks[entry[0]]

"""Batch buffers that DataLoader workers reuse: shared memory handed to the main process once.

A DataLoader worker returns each batch through a queue, and torch moves every tensor of it into
a new shared-memory segment whose file descriptor goes to the main process over a socket; the
worker faults the new segment's pages in, the main process maps it again. On the 2-core
benchmark machine that costs the worker 18-19 ms of CPU per batch of 64 pairs (17.6 MB of
native rasters), against 4 ms with a reused segment (``docs/decisions/0005-loader.md``,
"Batch buffers").

:class:`BatchRing` gives each worker a few shared-memory arenas. A worker copies a batch's
tensors into a free arena and sends only where they lie; the arena's handle crosses to the
main process once, with its first batch. The main process copies the tensors out (so a batch
the trainer keeps is never overwritten) and marks the arena free in a flag array that all
processes share. A worker that finds no free arena sends the batch the usual way, so nothing
waits on the ring.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import torch

from lake.loader.collate import Batch

#: The key of a batch in transit that says where its tensors lie (never seen by the trainer).
RING_KEY: Final = "_lake_ring"
#: Tensors start at multiples of this many bytes in an arena.
_ALIGN: Final = 64


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


class BatchRing:
    """Shared-memory arenas, ``slots`` per worker, each lent to one batch at a time.

    The ring goes to the workers as the DataLoader's ``collate_fn`` (:meth:`pack` runs there);
    the main process calls :meth:`unpack` on every batch it receives. A ring serves one
    iterator (one epoch's worker processes): :class:`~lake.loader.LakeDataLoader` makes a new
    one for each.

    Args:
        workers: The DataLoader's ``num_workers``.
        slots: Arenas per worker: the batches a worker may have in flight (its
            ``prefetch_factor``, plus one the main process has received but not unpacked when
            the worker is sent its next task) plus one.
    """

    def __init__(self, workers: int, slots: int) -> None:
        self.workers = max(1, workers)
        self.slots = max(1, slots)
        #: 1 while the arena of slot ``worker * slots + k`` holds a batch not yet copied out.
        self.busy = torch.zeros(self.workers * self.slots, dtype=torch.uint8).share_memory_()
        self._arenas: dict[int, torch.Tensor] = {}  # a worker's own arenas, by slot
        self._received: dict[int, torch.Tensor] = {}  # the main process's, by slot

    def __getstate__(self) -> dict[str, Any]:
        return {"workers": self.workers, "slots": self.slots, "busy": self.busy}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._arenas = {}
        self._received = {}

    def pack(self, batch: Batch) -> Batch:
        """In a worker: the batch with its tensors moved into a free arena of this worker.

        Returns the batch unchanged outside a worker, when no arena of the worker is free, or
        when a tensor has a dtype NumPy cannot hold.
        """
        info = torch.utils.data.get_worker_info()
        if info is None or not isinstance(batch, dict):
            return batch
        tensors = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
        try:
            arrays = {k: v.numpy() for k, v in tensors.items()}
        except (TypeError, RuntimeError):  # e.g. bfloat16, or a tensor that needs grad
            return batch
        if not arrays:
            return batch
        busy = self.busy.numpy()
        first = (info.id % self.workers) * self.slots
        free = next((s for s in range(first, first + self.slots) if busy[s] == 0), None)
        if free is None:
            return batch
        need = sum(_aligned(a.nbytes) for a in arrays.values())
        arena = self._arenas.get(free)
        new = None
        if arena is None or arena.numel() < need:
            arena = new = self._arenas[free] = torch.empty(need, dtype=torch.uint8).share_memory_()
        memory = arena.numpy()
        layout: dict[str, tuple[int, str, tuple[int, ...]]] = {}
        offset = 0
        for key, a in arrays.items():
            np.copyto(memory[offset : offset + a.nbytes].view(a.dtype).reshape(a.shape), a)
            layout[key] = (offset, a.dtype.str, a.shape)
            offset += _aligned(a.nbytes)
        busy[free] = 1
        out: Batch = {k: v for k, v in batch.items() if k not in tensors}
        out[RING_KEY] = (free, new, layout, tuple(batch))
        return out

    def unpack(self, batch: Batch) -> Batch:
        """In the main process: the batch with its tensors copied out of their arena.

        The arena is free again when this returns. A batch that came the usual way is
        returned unchanged.
        """
        entry = batch.pop(RING_KEY, None) if isinstance(batch, dict) else None
        if entry is None:
            return batch
        slot, new, layout, order = entry
        if new is not None:  # the arena's first batch: keep it mapped for the next ones
            self._received[slot] = new
        memory = self._received[slot].numpy()
        for key, (offset, dtype, shape) in layout.items():
            dt = np.dtype(dtype)
            size = dt.itemsize * int(np.prod(shape, dtype=np.int64))
            values = memory[offset : offset + size].view(dt).reshape(shape).copy()
            batch[key] = torch.from_numpy(values)
        self.busy[slot] = 0
        return {key: batch[key] for key in order}

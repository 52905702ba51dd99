"""Batches onto the device: native dtypes in, float32 normalised on the device out.

With ``LakeDataset(dtype="native")`` the workers deliver rasters as stored (S2 uint16, S1
float32) and do no float work per sample; :func:`to_device` (or a :class:`DeviceFeeder` kept by
the training loop) moves a batch to the device and there converts the rasters to float32 and
normalises them with per-band mean and std, as ``LakeDataset(normalize=...)`` would have done
on the CPU (same statistics, same formula ``(x - mean) / std``, checked by the tests).

On CUDA the host side goes through page-locked (pinned) staging buffers that are reused from
batch to batch (two per array, alternating, each guarded by a CUDA event so that a buffer is
refilled only after its previous copy finished), so the copy is asynchronous
(``non_blocking=True``) without pinning a fresh buffer each step, the pattern PyTorch's
"pin_memory and non_blocking" tutorial recommends. Elsewhere (CPU, MPS) tensors are moved as
they are and nothing is pinned; on the CPU the conversion itself runs in NumPy, whose single
thread leaves the cores to the loader (torch's intra-op threads keep spinning after each op).

Example:
    >>> from lake.loader import LakeDataLoader, LakeDataset, to_device
    >>> ds = LakeDataset("s3://bucket/lake", split="train", dtype="native")  # doctest: +SKIP
    >>> for batch in LakeDataLoader(ds, batch_size=64, num_workers=2):  # doctest: +SKIP
    ...     batch = to_device(batch, "cuda", normalize=True)  # float32, normalised, on the GPU
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import torch

from lake.bigearthnet import ARRAYS_BY_NAME
from lake.errors import ConfigError
from lake.loader.collate import Batch
from lake.loader.stats import given_stats

__all__ = ["DeviceFeeder", "to_device"]

#: The arrays normalised per band (the reference map and the composites never are).
NORMALISED: Final = ("s2_10m", "s2_20m", "s2_60m", "s1")
#: Two staging buffers per array: one may be in flight while the other is filled.
_SLOTS: Final = 2


class DeviceFeeder:
    """Moves batches to one device, normalising rasters there, with reused pinned buffers.

    Keep one per training loop (it owns the staging buffers).

    Args:
        device: The target device (``"cuda"``, ``"cuda:1"``, ``"cpu"``, a ``torch.device``).
        normalize: False (convert to float32 only), True / ``"official"`` (the official band
            statistics :data:`lake.bigearthnet.BAND_STATS`) or a mapping ``band -> (mean,
            std)`` (e.g. ``lake.loader.stats.lake_band_stats(spec, release)``).
        float_rasters: Convert the rasters to float32 (the reference map becomes int64 class
            codes); False moves every tensor in its own dtype (``normalize`` needs True).
        pin: Stage host tensors in pinned buffers (None: when the device is CUDA).

    Raises:
        ConfigError: An unknown ``normalize`` value, a std that is not > 0, or ``normalize``
            without ``float_rasters``.
    """

    def __init__(
        self,
        device: str | torch.device,
        normalize: bool | str | Mapping[str, tuple[float, float]] = False,
        *,
        float_rasters: bool = True,
        pin: bool | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.stats = given_stats(normalize)
        if self.stats is not None and not float_rasters:
            raise ConfigError("normalize= needs float_rasters=True (normalised values are floats)")
        self.float_rasters = float_rasters
        cuda = self.device.type == "cuda" and torch.cuda.is_available()
        self.pin = cuda if pin is None else bool(pin) and cuda
        self._buffers: dict[str, list[torch.Tensor]] = {}
        self._events: dict[str, list[Any]] = {}
        self._turn: dict[str, int] = {}
        self._scales: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, batch: Mapping[str, Any]) -> Batch:
        """The batch on the device.

        Rasters become float32 (normalised when asked), the reference map int64, other tensors
        keep their dtype; everything else (ids, text) is passed through unchanged.
        """
        out: Batch = {}
        for key, value in batch.items():
            if not isinstance(value, torch.Tensor):
                out[key] = value
                continue
            moved = self._move(key, value)
            on_cpu = moved.device.type == "cpu"
            if self.float_rasters and key in NORMALISED:
                if on_cpu:
                    moved = self._float_on_cpu(key, moved)
                else:
                    moved = moved.to(torch.float32)
                    if self.stats is not None:
                        mean, inv = self._scale(key)
                        moved = (moved - mean) * inv
            elif self.float_rasters and key == "reference_map":
                if on_cpu:
                    moved = torch.from_numpy(moved.numpy().astype(np.int64))
                else:
                    moved = moved.to(torch.int64)
            out[key] = moved
        return out

    def _float_on_cpu(self, key: str, value: torch.Tensor) -> torch.Tensor:
        """float32 (normalised when asked) on the CPU, in NumPy: the same float32 operations.

        torch would run them on its intra-op threads, which then spin waiting for more work
        (OpenMP's default wait policy) and take a core from the loader's decode threads: in one
        process on 2 cores that cost 15-18 % of the samples/s (ADR 0005, "Float conversion on
        the CPU").
        """
        normalise = self.stats is not None
        values = value.numpy().astype(np.float32, copy=normalise)  # normalised in place below
        if normalise:
            mean, inv = self._scale(key)
            values -= mean.numpy()
            values *= inv.numpy()
        return torch.from_numpy(values)

    def _move(self, key: str, value: torch.Tensor) -> torch.Tensor:
        if not self.pin or value.is_pinned() or value.device.type != "cpu":
            return value.to(self.device, non_blocking=self.pin)
        slots = self._buffers.get(key)
        if slots is None or slots[0].shape[1:] != value.shape[1:] or slots[0].dtype != value.dtype:
            rows = max(value.shape[0], 1)
            slots = [
                torch.empty((rows, *value.shape[1:]), dtype=value.dtype).pin_memory()
                for _ in range(_SLOTS)
            ]
            self._buffers[key] = slots
            self._events[key] = [None] * _SLOTS
            self._turn[key] = 0
        turn = self._turn[key]
        self._turn[key] = (turn + 1) % _SLOTS
        event = self._events[key][turn]
        if event is not None:
            event.synchronize()  # the copy that last used this buffer has finished
        buf = slots[turn]
        if buf.shape[0] < value.shape[0]:  # a larger batch than before: grow this slot
            buf = slots[turn] = torch.empty_like(value).pin_memory()
        staged = buf[: value.shape[0]]
        staged.copy_(value)
        moved = staged.to(self.device, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        self._events[key][turn] = done
        return moved

    def _scale(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in self._scales:
            assert self.stats is not None
            bands = ARRAYS_BY_NAME[name].bands
            missing = [b for b in bands if b not in self.stats]
            if missing:
                raise ConfigError(f"normalize: the statistics lack band(s) {missing} of {name!r}")
            mean = np.array([self.stats[b][0] for b in bands], dtype=np.float32)
            inv = np.array([1.0 / self.stats[b][1] for b in bands], dtype=np.float32)
            self._scales[name] = (
                torch.from_numpy(mean).view(-1, 1, 1).to(self.device),
                torch.from_numpy(inv).view(-1, 1, 1).to(self.device),
            )
        return self._scales[name]


_FEEDERS: dict[tuple[str, Any], DeviceFeeder] = {}


def to_device(
    batch: Mapping[str, Any],
    device: str | torch.device,
    normalize: bool | str | Mapping[str, tuple[float, float]] = False,
) -> Batch:
    """Move a batch to ``device``; rasters become float32 there, normalised when asked.

    Uses one :class:`DeviceFeeder` per (device, normalize) in this process, so its pinned
    staging buffers are reused from call to call (keep your own ``DeviceFeeder`` to control
    their lifetime).

    Args:
        batch: A batch of :class:`~lake.loader.LakeDataset` (any dtype).
        device: The target device.
        normalize: False, True / ``"official"``, or a mapping ``band -> (mean, std)``.

    Raises:
        ConfigError: An unknown ``normalize`` value.
    """
    key = normalize if not isinstance(normalize, Mapping) else tuple(sorted(normalize.items()))
    dev = torch.device(device)
    feeder = _FEEDERS.get((str(dev), key))
    if feeder is None:
        feeder = _FEEDERS[(str(dev), key)] = DeviceFeeder(dev, normalize)
    return feeder(batch)

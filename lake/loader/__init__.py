"""The streaming PyTorch loader: ``LakeDataset`` over a lake's shards, local or on S3.

``import lake.loader`` is light; the names below are imported when first used (all but
``ReadOptions`` import torch). Only this package imports torch (an import-linter contract keeps
it out of the rest of ``lake``).

What to read (selection, modalities, split, task, order) are :class:`LakeDataset`'s arguments;
how to read it (requests in flight, threads, byte ranges, retries, cache) is one
:class:`ReadOptions` value passed as ``read=``.

For vision-language models the dataset also mixes text tasks (``tasks=``), groups a pair's rows
into one ``conversation`` (``group="pair"``), decodes each pair once per run however many rows
use it, delivers uint8 ``rgb`` / ``s1_rgb`` composites at model sizes (``image_size=``) and
augments rasters, boxes and text consistently (``augment=``).

Example:
    >>> from lake.loader import LakeDataLoader, LakeDataset, ReadOptions
    >>> ds = LakeDataset(
    ...     "s3://bucket/lake", split="train", resample_to=120, read=ReadOptions(max_in_flight=32)
    ... )  # doctest: +SKIP
    >>> for batch in LakeDataLoader(ds, batch_size=64, num_workers=4):  # doctest: +SKIP
    ...     batch["s2_10m"].shape, batch["labels"].shape
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "LakeDataset": "lake.loader.dataset",
    "LakeDataLoader": "lake.loader.dataset",
    "ReadOptions": "lake.loader.options",
    "DeviceFeeder": "lake.loader.device",
    "to_device": "lake.loader.device",
    "collate_samples": "lake.loader.collate",
    "collate_fn": "lake.loader.collate",
    "collate_labels": "lake.loader.collate",
    "collate_caption": "lake.loader.collate",
    "collate_vqa": "lake.loader.collate",
    "collate_refexp": "lake.loader.collate",
    "collate_conversation": "lake.loader.collate",
}


def __getattr__(name: str) -> Any:
    """Import the torch-based parts only when they are used."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lake.loader' has no attribute {name!r}")


__all__ = sorted(_LAZY)

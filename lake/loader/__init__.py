"""The streaming PyTorch loader: ``LakeDataset`` over a lake's shards, local or on S3.

``import lake.loader`` is light; the names below import torch when first used. Only this
package imports torch (an import-linter contract keeps it out of the rest of ``lake``).

Example:
    >>> from lake.loader import LakeDataLoader, LakeDataset
    >>> ds = LakeDataset("s3://bucket/lake", split="train", resample_to=120)  # doctest: +SKIP
    >>> for batch in LakeDataLoader(ds, batch_size=64, num_workers=4):  # doctest: +SKIP
    ...     batch["s2_10m"].shape, batch["labels"].shape
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "LakeDataset": "lake.loader.dataset",
    "LakeDataLoader": "lake.loader.dataset",
    "collate_samples": "lake.loader.collate",
    "collate_fn": "lake.loader.collate",
    "collate_labels": "lake.loader.collate",
    "collate_caption": "lake.loader.collate",
    "collate_vqa": "lake.loader.collate",
    "collate_refexp": "lake.loader.collate",
}


def __getattr__(name: str) -> Any:
    """Import the torch-based parts only when they are used."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lake.loader' has no attribute {name!r}")


__all__ = sorted(_LAZY)

"""Collate functions: a list of samples from :class:`~lake.loader.LakeDataset` into a batch.

Every task uses the same rule, so a batch built by the dataset itself (``batch_size=`` /
:class:`~lake.loader.LakeDataLoader`) equals ``collate_samples(samples)`` of the same samples:

* tensors are stacked along a new first axis, keeping their dtype (``s2_10m`` -> float32
  ``(B, 4, H, W)``, ``rgb`` / ``s1_rgb`` -> uint8 ``(B, 3, S, S)``, ``labels`` -> ``(B, 19)``,
  ``box`` -> ``(B, 4)``);
* Python ints and floats become one int64 / float32 tensor (``sample_index``, ``id``,
  ``answer_index``, ``answer_bool``);
* strings and lists are gathered into a list (``patch_id``, ``input``, ``output``, ``type``,
  ``category``, ``transform``; ``options`` is a list of lists of strings, empty for non-mcq
  rows; ``conversation`` is a list (one per pair) of lists of
  :class:`lake.vlm.rows.TextRow` dicts).

The per-task functions only name the keys a batch of that task holds:

* :func:`collate_labels`: the requested rasters, ``labels``, ``patch_id``, ``sample_index``.
* :func:`collate_caption`: the same plus ``id``, ``input``, ``output``, ``type``, ``category``.
* :func:`collate_vqa`: the caption keys plus ``options``, ``answer_index`` (-1 when the row is
  not multiple choice) and ``answer_bool`` (1 yes, 0 no, -1 not a yes/no question).
* :func:`collate_refexp`: the caption keys plus ``box`` (x1, y1, x2, y2 in 0..1) and
  ``box_pixels`` (the same in pixels of the delivered grid: the ``rgb`` image's when it is
  delivered, else the multispectral arrays').
* :func:`collate_conversation` (``group="pair"``): the rasters, ``labels``, ``patch_id``,
  ``sample_index`` and ``conversation``.

A mix of tasks (``tasks=``) delivers the union of its tasks' keys (a row without a box has a
NaN ``box``; one that is not a question has ``options == []`` and -1 answers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

Batch = dict[str, Any]
Sample = dict[str, Any]


def collate_samples(samples: Sequence[Sample]) -> Batch:
    """Collate samples of any task (see the module docstring for the rules)."""
    if not samples:
        return {}
    out: Batch = {}
    for key, first in samples[0].items():
        values = [s[key] for s in samples]
        if isinstance(first, torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(first, bool | int):
            out[key] = torch.tensor(values, dtype=torch.int64)
        elif isinstance(first, float):
            out[key] = torch.tensor(values, dtype=torch.float32)
        else:
            out[key] = list(values)
    return out


def collate_labels(samples: Sequence[Sample]) -> Batch:
    """Batch of the ``labels`` task: rasters ``(B, C, H, W)``, ``labels (B, 19)``, ids."""
    return collate_samples(samples)


def collate_caption(samples: Sequence[Sample]) -> Batch:
    """Batch of the ``caption`` task: rasters, ``input``, ``output``, ``type``, ``category``."""
    return collate_samples(samples)


def collate_vqa(samples: Sequence[Sample]) -> Batch:
    """Batch of the ``vqa`` task: caption keys, ``options``, ``answer_index``, ``answer_bool``."""
    return collate_samples(samples)


def collate_refexp(samples: Sequence[Sample]) -> Batch:
    """Batch of the ``refexp`` task: the caption keys, ``box (B, 4)`` and ``box_pixels (B, 4)``."""
    return collate_samples(samples)


def collate_conversation(samples: Sequence[Sample]) -> Batch:
    """Batch of ``group="pair"``: rasters, ``labels``, ids and ``conversation`` (list of lists)."""
    return collate_samples(samples)


COLLATE: dict[str, Callable[[Sequence[Sample]], Batch]] = {
    "labels": collate_labels,
    "caption": collate_caption,
    "vqa": collate_vqa,
    "refexp": collate_refexp,
}


def collate_fn(task: str) -> Callable[[Sequence[Sample]], Batch]:
    """The collate function of a task (pass it to ``DataLoader(collate_fn=...)``).

    Raises:
        KeyError: Unknown task.
    """
    try:
        return COLLATE[task]
    except KeyError:
        raise KeyError(
            f"task {task!r}: no collate function; use one of {sorted(COLLATE)}"
        ) from None

"""Geometry-consistent augmentation of delivered samples: rasters, boxes and text move together.

Off by default. ``augment=True`` (or ``"all"``) draws one of the 8 symmetries of the square per
delivered item, ``"flips"`` one of identity / hflip / vflip, ``"rotations"`` one of the rotations
by 0, 90, 180, 270 degrees (:func:`lake.vlm.augment.draw_transform`). The draw comes from
``default_rng([seed, epoch, 3, item])`` where ``item`` is the item's number in the dataset's
selection, so it depends neither on the number of workers nor on where an epoch was resumed, and
a new epoch draws anew.

The transform applies (with :mod:`lake.vlm.augment`) to every raster of the sample (the
multispectral arrays, ``rgb``, ``s1_rgb``, ``reference_map``), to ``box`` (then ``box_pixels``
is recomputed), and to the text: ``input``, ``output`` and ``options`` get their boxes,
``<point>(x, y)</point>`` markup and relative-position / direction words rewritten
(:func:`lake.vlm.augment.transform_text`); a conversation (``group="pair"``) gets one transform
for all its rows (:func:`lake.vlm.augment.transform_row`). The sample says which in
``transform``.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import numpy as np

from lake.errors import ConfigError
from lake.vlm.augment import (
    Transform,
    draw_transform,
    transform_box,
    transform_image,
    transform_row,
    transform_text,
)

#: ``augment=``: False (off), True / ``"all"``, ``"flips"`` or ``"rotations"``.
Augment = bool | Literal["flips", "rotations", "all"]
#: The random stream of augmentation (the order uses 0 and 1, the task mix 2).
AUGMENT_STREAM: Final = 3


def resolve_augment(augment: Augment) -> tuple[bool, bool] | None:
    """``(flips, rotations)`` to draw from, or None when augmentation is off.

    Raises:
        ConfigError: An unknown value.
    """
    if augment is False:
        return None
    if augment is True or augment == "all":
        return True, True
    if augment == "flips":
        return True, False
    if augment == "rotations":
        return False, True
    raise ConfigError(f"augment={augment!r}: use False, True/'all', 'flips' or 'rotations'")


def item_transforms(
    items: np.ndarray, *, seed: int, epoch: int, flips: bool, rotations: bool
) -> list[Transform]:
    """The transform of each item (numbers in the selection) in an epoch."""
    return [
        draw_transform(
            np.random.default_rng([seed, epoch, AUGMENT_STREAM, int(i)]),
            flips=flips,
            rotations=rotations,
        )
        for i in items.tolist()
    ]


def augment_arrays(arrays: dict[str, np.ndarray], transforms: list[Transform]) -> None:
    """Transform row ``k`` of every ``(n, ..., H, W)`` array by ``transforms[k]``, in place."""
    for values in arrays.values():
        for k, t in enumerate(transforms):
            if t != "identity":
                values[k] = transform_image(values[k], t)


def augment_meta(meta: dict[str, Any], transforms: list[Transform], box_size: int) -> None:
    """Transform the text, boxes and conversations of column-wise ``meta``, in place.

    Adds ``transform`` (the name of each row's transform).
    """
    meta["transform"] = list(transforms)
    for key in ("input", "output"):
        if key in meta:
            meta[key] = [transform_text(s, t) for s, t in zip(meta[key], transforms, strict=True)]
    if "options" in meta:
        meta["options"] = [
            [transform_text(o, t) for o in opts]
            for opts, t in zip(meta["options"], transforms, strict=True)
        ]
    if "box" in meta:
        box = meta["box"]
        for k, t in enumerate(transforms):
            if not np.isnan(box[k]).any():
                x1, y1, x2, y2 = (float(v) for v in box[k])
                box[k] = transform_box((x1, y1, x2, y2), t)
        meta["box_pixels"] = box * np.float32(box_size)
    if "conversation" in meta:
        meta["conversation"] = [
            [transform_row(r, t) for r in rows]
            for rows, t in zip(meta["conversation"], transforms, strict=True)
        ]


__all__ = [
    "AUGMENT_STREAM",
    "Augment",
    "augment_arrays",
    "augment_meta",
    "item_transforms",
    "resolve_augment",
]

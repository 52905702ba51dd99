"""RGB and S1 false-colour uint8 composites at model sizes, with a reproducible stretch.

* :func:`s2_rgb`: the true-colour composite R, G, B = B04, B03, B02 of the lake's ``s2_10m``
  array (band order B02, B03, B04, B08), each channel mapped linearly from its :class:`Stretch`
  range to 0..255, clipped, rounded to the nearest integer (ties to even, ``np.rint``; integer
  input goes through a lookup table of the same values).
* The default, :data:`FIXED_STRETCH`, is the fixed range 0..2500 DN (0..0.25 surface reflectance)
  for all three channels: the same for every image, release and subset (no per-image
  percentiles, so an image looks the same wherever it appears and colours keep their balance).
  2500 DN is about mean + 3 std of the official train-split statistics of B02/B03/B04
  (2259 / 2424 / 2642) and clips 0.26 % of the red pixels of the released sample patch
  (``docs/vlm.md`` has the numbers). :func:`stretch_from_stats` builds the alternative from
  per-band ``(mean, std)`` statistics (the official :data:`lake.bigearthnet.BAND_STATS` or the
  lake's own ``lake pipeline stats``): ``max(0, mean - k std) .. mean + k std`` per channel.
* :func:`s1_false_colour`: R = VV in -25..0 dB, G = VH in -30..-5 dB, B = VV - VH in 0..15 dB.
* :func:`resize`: bilinear with antialiasing (Pillow's ``BILINEAR`` filter widens its support
  by the scale factor when shrinking), per RGB image; nearest would alias.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
from PIL import Image

from lake.errors import ConfigError

#: The bands of the true-colour composite, in R, G, B order.
RGB_BANDS: Final = ("B04", "B03", "B02")
#: The band order of the lake's ``s2_10m`` array.
S2_10M_BANDS: Final = ("B02", "B03", "B04", "B08")
#: Where each RGB band sits in ``s2_10m``.
_RGB_INDEX: Final = tuple(S2_10M_BANDS.index(b) for b in RGB_BANDS)
#: The S1 false-colour ranges in dB: R = VV, G = VH, B = VV - VH.
S1_RANGES: Final = ((-25.0, 0.0), (-30.0, -5.0), (0.0, 15.0))

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class Stretch:
    """A linear per-channel stretch: ``low`` maps to 0 and ``high`` to 255 (R, G, B).

    Attributes:
        low: Per-channel value (DN for S2) that becomes 0.
        high: Per-channel value that becomes 255; greater than ``low``.

    Raises:
        ConfigError: Not three finite values each, or a ``high`` not above its ``low``.
    """

    low: Triple
    high: Triple

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            values = getattr(self, name)
            if len(values) != 3 or not all(
                isinstance(v, int | float) and math.isfinite(v) for v in values
            ):
                raise ConfigError(f"Stretch {name}={values!r}: give three finite numbers (R, G, B)")
        bad = [i for i in range(3) if not self.high[i] > self.low[i]]
        if bad:
            raise ConfigError(
                f"Stretch low={self.low!r} high={self.high!r}: high must be above low in "
                f"channel(s) {[('R', 'G', 'B')[i] for i in bad]}"
            )


#: The default: 0..2500 DN (0..0.25 reflectance) in every channel (see the module docstring).
FIXED_STRETCH: Final = Stretch(low=(0.0, 0.0, 0.0), high=(2500.0, 2500.0, 2500.0))


def stretch_from_stats(stats: Mapping[str, tuple[float, float]], k: float = 3.0) -> Stretch:
    """A stretch of ``max(0, mean - k std) .. mean + k std`` per RGB band.

    Args:
        stats: ``band -> (mean, std)`` in DN with at least B04, B03, B02: the official
            :data:`lake.bigearthnet.BAND_STATS` or a lake's own statistics
            (``lake.loader.stats.lake_band_stats``, from ``lake pipeline stats``).
        k: How many standard deviations on each side (> 0).

    Raises:
        ConfigError: A band is missing, a std is not > 0, or ``k`` is not > 0.
    """
    if not (isinstance(k, int | float) and math.isfinite(k) and k > 0):
        raise ConfigError(f"stretch_from_stats: k={k!r} must be a number > 0")
    missing = [b for b in RGB_BANDS if b not in stats]
    if missing:
        raise ConfigError(
            f"stretch_from_stats: the statistics lack band(s) {missing} "
            f"(they have {sorted(stats)}); give band -> (mean, std) for {', '.join(RGB_BANDS)}"
        )
    bad = [b for b in RGB_BANDS if not stats[b][1] > 0]
    if bad:
        raise ConfigError(f"stretch_from_stats: the std of band(s) {bad} must be > 0")
    low = tuple(max(0.0, float(stats[b][0]) - k * float(stats[b][1])) for b in RGB_BANDS)
    high = tuple(float(stats[b][0]) + k * float(stats[b][1]) for b in RGB_BANDS)
    return Stretch(low=low, high=high)  # type: ignore[arg-type]


def _check_channels(array: np.ndarray, n: int, name: str, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim < 3 or array.shape[-3] != n:
        raise ConfigError(
            f"{name}: expected an array (..., {n}, H, W) of {what}, got shape {array.shape}"
        )
    if not (np.issubdtype(array.dtype, np.number) and not np.iscomplexobj(array)):
        raise ConfigError(f"{name}: expected a real numeric array, got dtype {array.dtype}")
    return array


def _to_uint8(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``values`` (..., 3, H, W) mapped linearly from low..high to 0..255 per channel."""
    shape = (3, 1, 1)
    scaled = (values.astype(np.float64) - low.reshape(shape)) / (high - low).reshape(shape)
    out = np.rint(np.nan_to_num(scaled * 255.0, nan=0.0, posinf=255.0, neginf=0.0))
    return np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8))


def s2_rgb(s2_10m: np.ndarray, stretch: Stretch = FIXED_STRETCH) -> np.ndarray:
    """The true-colour uint8 composite of ``s2_10m`` arrays.

    Args:
        s2_10m: ``(..., 4, H, W)`` in the lake's band order B02, B03, B04, B08 (DN, any real
            dtype; NaN becomes 0).
        stretch: The R, G, B ranges (default :data:`FIXED_STRETCH`).

    Returns:
        uint8 ``(..., 3, H, W)``: R, G, B.

    Raises:
        ConfigError: Not 4 bands on axis -3, or not a real numeric array.
    """
    array = _check_channels(s2_10m, 4, "s2_rgb", "B02, B03, B04, B08")
    if array.dtype in (np.uint8, np.uint16):  # the lake's dtype: a table lookup, same values
        lut = _lookup_table(stretch)
        out = np.empty((*array.shape[:-3], 3, *array.shape[-2:]), dtype=np.uint8)
        for channel, band in enumerate(_RGB_INDEX):
            out[..., channel, :, :] = lut[channel][array[..., band, :, :]]
        return out
    rgb = np.take(array, _RGB_INDEX, axis=-3)
    return _to_uint8(rgb, np.array(stretch.low), np.array(stretch.high))


@lru_cache(maxsize=8)
def _lookup_table(stretch: Stretch) -> np.ndarray:
    """``(3, 65536)`` uint8: :func:`_to_uint8` of every uint16 value in each channel."""
    values = np.broadcast_to(np.arange(65536, dtype=np.float64), (3, 1, 65536))
    return _to_uint8(values, np.array(stretch.low), np.array(stretch.high))[:, 0, :]


def s1_false_colour(s1: np.ndarray) -> np.ndarray:
    """The S1 false-colour uint8 composite: R = VV, G = VH, B = VV - VH (:data:`S1_RANGES`).

    Args:
        s1: ``(..., 2, H, W)`` VV, VH backscatter in dB (the lake's ``s1`` array; NaN becomes 0).

    Returns:
        uint8 ``(..., 3, H, W)``.

    Raises:
        ConfigError: Not 2 bands on axis -3, or not a real numeric array.
    """
    array = _check_channels(s1, 2, "s1_false_colour", "VV, VH in dB").astype(np.float64)
    vv, vh = array[..., 0, :, :], array[..., 1, :, :]
    channels = np.stack([vv, vh, vv - vh], axis=-3)
    low = np.array([r[0] for r in S1_RANGES])
    high = np.array([r[1] for r in S1_RANGES])
    return _to_uint8(channels, low, high)


def _check_image(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim < 3 or image.shape[-3] != 3:
        raise ConfigError(
            f"{name}: expected a uint8 image (..., 3, H, W), got {image.dtype} {image.shape}"
        )
    return image


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 RGB images to ``size`` x ``size``, bilinear with antialiasing (Pillow).

    Boxes and points in 0..1 stay valid: multiply them by ``size`` for pixel edges.

    Args:
        image: uint8 ``(..., 3, H, W)``.
        size: The side in pixels (224, 336, 448 or any int >= 1).

    Returns:
        uint8 ``(..., 3, size, size)`` (a copy, also when the size is unchanged).

    Raises:
        ConfigError: A bad ``size`` or not a uint8 ``(..., 3, H, W)`` image.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"resize: size={size!r} must be an int >= 1 (e.g. 224, 336, 448)")
    image = _check_image(image, "resize")
    lead = image.shape[:-3]
    flat = image.reshape(-1, *image.shape[-3:])
    out = np.empty((flat.shape[0], 3, size, size), dtype=np.uint8)
    for i, one in enumerate(flat):
        if one.shape[-2:] == (size, size):
            out[i] = one
            continue
        pil = Image.fromarray(np.ascontiguousarray(one.transpose(1, 2, 0)))
        resized = pil.resize((size, size), Image.Resampling.BILINEAR)
        out[i] = np.asarray(resized).transpose(2, 0, 1)
    return out.reshape(*lead, 3, size, size)


def to_pil(image: np.ndarray) -> Image.Image:
    """One uint8 ``(3, H, W)`` image as a PIL RGB image.

    Raises:
        ConfigError: Not a single uint8 ``(3, H, W)`` image.
    """
    image = _check_image(image, "to_pil")
    if image.ndim != 3:
        raise ConfigError(f"to_pil: expected one image (3, H, W), got shape {image.shape}")
    return Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)))

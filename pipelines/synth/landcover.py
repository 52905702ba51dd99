"""Synthetic land cover: a reference map per patch and the S2/S1 pixels that follow it.

Everything is a deterministic function of ``(seed, patch_id)`` (and the patch's labels, which the
metadata fixes per patch id): the per-patch random streams are seeded with a stable BLAKE2 hash of
the patch id, never with Python's ``hash()``. The map is a noisy Voronoi partition (a few seeds per
class, domain-warped coordinates, jagged boundaries) balanced towards random class shares, then
repaired so that every label covers at least :data:`MIN_LABEL_FRACTION` of the patch and unlabeled
codes stay under :data:`MAX_UNLABELED_SHARE`. Pixels take a per-class spectral signature (L2A
reflectance x 10,000, with a seasonal green-up for vegetation) and a per-class backscatter (dB).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np

from lake.bigearthnet import (
    CLASS_CODES,
    S1,
    S2_10M,
    S2_20M,
    S2_60M,
    S2_BANDS,
    UNLABELED_CODES,
)

SIZE: Final = 120
PIXELS: Final = SIZE * SIZE
#: Every label of a patch covers at least this share of its map.
MIN_LABEL_FRACTION: Final = 0.02
#: Unlabeled codes together stay below this share (the official threshold is 25 %).
MAX_UNLABELED_SHARE: Final = 0.20

#: Independent random streams derived from one patch key.
MAP_STREAM: Final = 0
PIXEL_STREAM: Final = 1
TEXT_STREAM: Final = 2

#: Relative frequency of the CLC codes of a class (codes not listed weigh 1).
_CODE_WEIGHTS: Final = {
    111: 1,
    112: 6,
    211: 18,
    212: 1,
    213: 1,
    321: 4,
    333: 1,
    511: 2,
    512: 3,
    521: 1,
    522: 1,
    523: 4,
    122: 4,
    123: 1,
    124: 1,
    131: 2,
    132: 1,
    133: 2,
    141: 2,
    142: 3,
    332: 1,
    334: 1,
    335: 0.2,
    423: 0.5,
    999: 0.5,
}

#: What each CLC code looks like: a spectral "kind".
_CODE_KIND: Final = {
    111: "urban",
    112: "urban",
    121: "industrial",
    122: "industrial",
    123: "industrial",
    124: "industrial",
    131: "bare_rock",
    132: "industrial",
    133: "bare_rock",
    141: "green_urban",
    142: "green_urban",
    211: "arable",
    212: "arable",
    213: "arable",
    221: "permanent",
    222: "permanent",
    223: "permanent",
    241: "permanent",
    231: "pasture",
    242: "complex",
    243: "agri_natural",
    244: "agroforestry",
    311: "broadleaf",
    312: "conifer",
    313: "mixed",
    321: "grassland",
    333: "grassland",
    322: "moors",
    323: "moors",
    324: "transitional",
    331: "sand",
    332: "bare_rock",
    334: "burnt",
    335: "snow",
    411: "inland_wet",
    412: "inland_wet",
    421: "coastal_wet",
    422: "coastal_wet",
    423: "tidal",
    511: "inland_water",
    512: "inland_water",
    521: "marine",
    522: "marine",
    523: "marine",
    999: "nodata",
}

#: Per spectral kind: S2 reflectance x 10,000 (ESA band order), S1 backscatter in dB, and how much
#: the kind browns off outside the growing season (0: not at all, 1: to bare soil).
_KIND_TABLE: Final = """
kind           B01  B02  B03  B04  B05  B06  B07  B08  B8A  B09  B11  B12     VV     VH  dorm
urban         1300 1200 1150 1200 1400 1550 1650 1750 1800 1700 2300 2000   -5.0  -12.0  0.10
industrial    1500 1500 1500 1550 1700 1800 1900 1950 2000 1900 2600 2300   -4.0  -11.0  0.00
arable         450  550  800  750 1250 2300 2700 2900 3000 2900 2300 1400  -11.0  -18.0  0.80
permanent      450  500  750  700 1150 2000 2300 2500 2600 2500 2300 1500  -10.0  -17.0  0.40
pasture        350  380  700  480 1050 2500 3000 3200 3300 3200 2100 1100  -12.0  -19.0  0.40
complex        420  500  750  650 1150 2200 2600 2800 2900 2800 2200 1300  -10.5  -17.5  0.60
agri_natural   380  430  680  580 1050 2050 2450 2650 2750 2650 2000 1150   -9.5  -16.5  0.50
agroforestry   380  420  640  580 1000 1850 2150 2350 2450 2350 2100 1300   -9.0  -16.0  0.30
broadleaf      260  260  480  260  750 2350 2950 3150 3250 3150 1650  750   -8.0  -13.5  0.70
conifer        210  190  330  180  480 1250 1550 1650 1700 1650  850  380   -8.5  -14.0  0.05
mixed          230  220  400  220  600 1750 2150 2350 2400 2350 1200  520   -8.2  -13.8  0.35
grassland      480  580  850  850 1250 1950 2250 2450 2500 2450 2600 1700  -13.0  -20.5  0.40
moors          380  420  640  580  980 1650 1950 2050 2150 2050 1850 1050  -11.0  -18.0  0.20
transitional   320  340  580  420  880 1950 2350 2550 2600 2550 1650  880   -9.5  -16.0  0.40
sand          1900 2100 2400 2700 2900 3000 3100 3200 3250 3100 3500 3100  -17.0  -25.0  0.00
inland_wet     320  340  520  420  720 1350 1550 1650 1700 1650 1050  520  -13.0  -20.0  0.50
coastal_wet    360  420  620  520  770 1150 1300 1350 1400 1350  950  520  -15.0  -22.0  0.40
inland_water   320  370  470  320  270  220  190  160  150  140   90   70  -21.0  -28.0  0.00
marine         360  410  410  230  190  160  140  120  110  100   60   45  -24.0  -31.0  0.00
bare_rock     1400 1500 1700 1900 2100 2200 2300 2400 2450 2350 3000 2600  -10.0  -18.0  0.00
burnt          400  450  550  600  800 1000 1100 1150 1200 1150 1900 1800  -13.0  -21.0  0.00
snow          7000 7500 7400 7200 7000 6800 6700 6500 6400 5000  600  500  -14.0  -22.0  0.00
tidal          600  700  850  900 1000 1050 1100 1150 1150 1100  900  700  -18.0  -26.0  0.00
green_urban    400  450  700  550 1000 2100 2500 2700 2800 2700 1900 1050  -10.0  -16.0  0.40
nodata        1000 1000 1050 1100 1300 1600 1700 1800 1850 1800 2000 1600  -12.0  -19.0  0.20
"""
#: Bare soil / dormant vegetation, what vegetation browns off towards in winter.
_SOIL: Final = (800, 900, 1100, 1300, 1500, 1700, 1800, 1900, 1950, 1900, 2700, 2200)


@dataclass(frozen=True)
class LandCover:
    """The land cover of one patch.

    Attributes:
        codes: ``(120, 120)`` uint16 CLC level-3 codes (the reference map).
        regions: ``(120, 120)`` int32 index of the region (Voronoi seed) of each pixel.
    """

    codes: np.ndarray
    regions: np.ndarray


def patch_key(seed: int, patch_id: str) -> int:
    """A stable 64-bit key of ``(seed, patch_id)`` (BLAKE2b, identical on every platform)."""
    digest = hashlib.blake2b(f"{seed}:{patch_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def patch_rng(key: int, stream: int) -> np.random.Generator:
    """The random generator of one stream (map, pixels, text) of a patch key."""
    return np.random.default_rng((key, stream))


# ---------------------------------------------------------------------------------------------
# Reference map


@lru_cache(maxsize=8)
def _upsample_matrix(low: int, size: int = SIZE) -> np.ndarray:
    """A ``(size, low)`` linear-interpolation matrix: ``W @ a @ W.T`` upsamples ``a``."""
    pos = np.linspace(0, low - 1, size)
    lo = np.minimum(np.floor(pos).astype(int), low - 2)
    frac = pos - lo
    w = np.zeros((size, low), dtype=np.float32)
    w[np.arange(size), lo] = 1 - frac
    w[np.arange(size), lo + 1] = frac
    return w


def smooth_field(rng: np.random.Generator, low: int = 6, count: int = 1) -> np.ndarray:
    """``count`` smooth random fields of shape ``(120, 120)``, unit-ish amplitude, float32."""
    w = _upsample_matrix(low)
    coarse = rng.standard_normal((count, low, low), dtype=np.float32)
    return w @ coarse @ w.T


def _pick_codes(rng: np.random.Generator, options: Sequence[int], n: int) -> list[int]:
    weights = np.array([_CODE_WEIGHTS.get(c, 1.0) for c in options], dtype=float)
    picked = rng.choice(len(options), size=n, replace=False, p=weights / weights.sum())
    return [int(options[i]) for i in picked]


def _codes_and_targets(
    rng: np.random.Generator, labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, int]:
    """The codes of a map (one per label, then unlabeled ones) and their target shares."""
    codes = [_pick_codes(rng, CLASS_CODES[name], 1)[0] for name in labels]
    k = len(codes)
    n_unlabeled = int(rng.choice(3, p=(0.6, 0.3, 0.1)))
    codes += _pick_codes(rng, UNLABELED_CODES, n_unlabeled)
    unlabeled_share = rng.uniform(0.02, 0.15) if n_unlabeled else 0.0
    floor = 0.03
    labeled = rng.dirichlet(np.full(k, 0.9)) * (1 - unlabeled_share - floor * k) + floor
    targets = [labeled]
    if n_unlabeled:
        targets.append(rng.dirichlet(np.full(n_unlabeled, 2.0)) * unlabeled_share)
    return np.array(codes, dtype=np.uint16), np.concatenate(targets), k


def _scores(rng: np.random.Generator, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy Voronoi geometry: a few seeds per class in domain-warped coordinates.

    Returns:
        ``scores`` (classes, 120, 120): minus the distance to the class's nearest seed, and
        ``nearest`` (classes, 120, 120): the global index of that seed (a region id).
    """
    per_class = np.minimum(1 + rng.poisson(1.0, n_classes), 4)
    seeds = rng.uniform(-8, SIZE + 8, (int(per_class.sum()), 2)).astype(np.float32)
    grid = np.arange(SIZE, dtype=np.float32)
    warp = smooth_field(rng, low=5, count=2) * np.float32(rng.uniform(5, 12))
    warp += uniform_noise(rng, (2, SIZE, SIZE), 0.7)
    dy = grid[None, :, None] + warp[0][None] - seeds[:, 0, None, None]
    dx = grid[None, None, :] + warp[1][None] - seeds[:, 1, None, None]
    d2 = dy * dy + dx * dx
    best = np.empty((n_classes, SIZE, SIZE), dtype=np.float32)
    nearest = np.empty((n_classes, SIZE, SIZE), dtype=np.int32)
    start = 0
    for c, m in enumerate(per_class):
        best[c], nearest[c] = d2[start], start
        for j in range(start + 1, start + m):
            closer = d2[j] < best[c]
            best[c][closer], nearest[c][closer] = d2[j][closer], j
        start += m
    return -np.sqrt(best), nearest


def _balance(scores: np.ndarray, targets: np.ndarray, steps: int = 12) -> np.ndarray:
    """Class of each pixel: argmax of score plus a per-class bias tuned towards the targets."""
    coarse = scores[:, ::4, ::4]
    bias = np.zeros(len(targets), dtype=np.float32)
    for _ in range(steps):
        lab = np.argmax(coarse + bias[:, None, None], axis=0)
        share = np.bincount(lab.ravel(), minlength=len(targets)) / lab.size
        if np.abs(share - targets).max() < 0.01:
            break
        bias += (40.0 * (targets - share)).astype(np.float32)
    return np.argmax(scores + bias[:, None, None], axis=0)


def _cap_unlabeled(lab: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Give unlabeled pixels to the nearest labeled class until they are under the cap."""
    counts = np.bincount(lab.ravel(), minlength=len(scores))
    best_labeled = None
    while counts[k:].sum() >= MAX_UNLABELED_SHARE * PIXELS:
        if best_labeled is None:
            best_labeled = np.argmax(scores[:k], axis=0)
        worst = k + int(np.argmax(counts[k:]))
        lab = np.where(lab == worst, best_labeled, lab)
        counts = np.bincount(lab.ravel(), minlength=len(scores))
    return lab


def _ensure_minimum(lab: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Grow labels under :data:`MIN_LABEL_FRACTION` into the pixels closest to them."""
    need_px = int(np.ceil(MIN_LABEL_FRACTION * PIXELS)) + 1
    floors = np.zeros(len(scores), dtype=np.int64)
    floors[:k] = need_px
    flat = lab.ravel().copy()
    own = np.take_along_axis(scores.reshape(len(scores), -1), flat[None], axis=0)[0]
    for c in range(k):
        counts = np.bincount(flat, minlength=len(scores))
        missing = need_px - counts[c]
        if missing <= 0:
            continue
        surplus = counts - floors
        donor_ok = (flat != c) & (surplus[flat] > 0)
        margin = np.where(donor_ok, scores[c].ravel() - own, -np.inf)
        take = np.argpartition(-margin, missing)[:missing]
        take = take[np.isfinite(margin[take])]
        flat[take] = c
        own[take] = scores[c].ravel()[take]
    return flat.reshape(SIZE, SIZE)


def land_cover(seed: int, patch_id: str, labels: Sequence[str]) -> LandCover:
    """The synthetic land cover of a patch, a pure function of ``(seed, patch_id, labels)``.

    Args:
        seed: The run's seed.
        patch_id: The patch id (hashed into the patch's random stream).
        labels: Its 19-class labels (from the metadata; at least one).

    Returns:
        The reference map (CLC codes agreeing with ``labels``) and the region of each pixel.
    """
    return land_cover_for_key(patch_key(seed, patch_id), labels)


def land_cover_for_key(key: int, labels: Sequence[str]) -> LandCover:
    """:func:`land_cover` for a precomputed :func:`patch_key`."""
    rng = patch_rng(key, MAP_STREAM)
    codes, targets, k = _codes_and_targets(rng, sorted(labels))
    scores, nearest = _scores(rng, len(codes))
    lab = _balance(scores, targets)
    lab = _cap_unlabeled(lab, scores, k)
    lab = _ensure_minimum(lab, scores, k)
    regions = np.take_along_axis(nearest, lab[None], axis=0)[0]
    return LandCover(codes=codes[lab], regions=regions)


def reference_map(seed: int, patch_id: str, labels: Sequence[str]) -> np.ndarray:
    """The ``(120, 120)`` uint16 reference map of a patch (see :func:`land_cover`)."""
    return land_cover(seed, patch_id, labels).codes


# ---------------------------------------------------------------------------------------------
# Pixels


@dataclass(frozen=True)
class _Tables:
    s2: np.ndarray  # (1000, 12) float32, ESA band order
    s1: np.ndarray  # (1000, 2) float32 dB
    dormancy: np.ndarray  # (1000,) float32


@lru_cache(maxsize=1)
def _tables() -> _Tables:
    s2 = np.zeros((1000, 12), dtype=np.float32)
    s1 = np.zeros((1000, 2), dtype=np.float32)
    dormancy = np.zeros(1000, dtype=np.float32)
    rows = [line.split() for line in _KIND_TABLE.strip().splitlines()[1:]]
    kinds = {r[0]: [float(v) for v in r[1:]] for r in rows}
    for code, kind in _CODE_KIND.items():
        values = kinds[kind]
        s2[code], s1[code], dormancy[code] = values[:12], values[12:14], values[14]
    return _Tables(s2=s2, s1=s1, dormancy=dormancy)


def greenness(month: int) -> float:
    """Seasonal vegetation vigour: 1 in July, 0 in January (northern hemisphere)."""
    return float(0.5 + 0.5 * np.cos(2 * np.pi * (month - 7) / 12))


def uniform_noise(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Zero-mean uniform noise of a given standard deviation, float32 (4x cheaper than normal)."""
    noise = rng.random(shape, dtype=np.float32)
    noise -= np.float32(0.5)
    noise *= np.float32(std * np.sqrt(12.0))
    return noise


def _block_mean(a: np.ndarray, size: int) -> np.ndarray:
    """Mean over ``f x f`` blocks of the last two axes (strided sums: fast for small ``f``)."""
    f = a.shape[-1] // size
    rows = a[..., 0::f, :].copy()
    for i in range(1, f):
        rows += a[..., i::f, :]
    out = rows[..., 0::f].copy()
    for j in range(1, f):
        out += rows[..., j::f]
    out *= np.float32(1.0 / (f * f))
    return out


def _to_uint16(a: np.ndarray) -> np.ndarray:
    """Round half up and clip to 1..65535 (0 is nodata), uint16."""
    a += np.float32(0.5)
    return np.clip(a, 1, 65535, out=a).astype(np.uint16)


def _season_table(month: int) -> np.ndarray:
    """Band-major ``(12, 1000)`` signatures of every code in a month (vegetation browns off)."""
    t = _tables()
    wilt = (t.dormancy * np.float32((1.0 - greenness(month)) * 0.8))[:, None]
    return np.ascontiguousarray((t.s2 * (1 - wilt) + np.asarray(_SOIL, dtype=np.float32) * wilt).T)


def s2_bands(cover: LandCover, month: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The 12 S2 bands (uint16, native sizes, never 0) of a land cover in a given month.

    The 10 m-level signal (signature, season, per-region and smooth brightness, canopy texture) is
    block-averaged to 20 m and 60 m, then each band gets its own noise at its native size.
    """
    table = _season_table(month)
    n_regions = int(cover.regions.max()) + 1
    brightness = rng.normal(1.0, 0.07, n_regions).astype(np.float32)[cover.regions]
    brightness *= 1 + np.float32(0.04) * smooth_field(rng, low=8)[0]
    brightness *= 1 + uniform_noise(rng, (SIZE, SIZE), 0.03)
    index = {b: i for i, b in enumerate(S2_BANDS)}
    out: dict[str, np.ndarray] = {}
    for spec in (S2_10M, S2_20M, S2_60M):
        rows = np.take(table[[index[b] for b in spec.bands]], cover.codes, axis=1)
        rows *= brightness
        if spec.size != SIZE:
            rows = _block_mean(rows, spec.size)
        # Sensor noise: about 2 % of the signal plus 12 DN.
        rows += uniform_noise(rng, rows.shape, 1.0) * (np.float32(0.02) * rows + np.float32(12.0))
        for band, values in zip(spec.bands, _to_uint16(rows), strict=True):
            out[band] = values
    return out


def s1_bands(cover: LandCover, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """VV and VH backscatter in dB (float32 120x120) with per-region offsets and speckle-like noise.

    Speckle of a GRD image (about 4.4 looks) is an error of about 2.2 dB in dB units with a
    small negative bias; a triangular distribution of that spread stands in for it.
    """
    db = np.take(_tables().s1.T, cover.codes, axis=1)  # (2, 120, 120)
    n_regions = int(cover.regions.max()) + 1
    db += rng.normal(0.0, 1.2, n_regions).astype(np.float32)[cover.regions]
    db += np.float32(0.8) * smooth_field(rng, low=6)[0]
    # Triangular noise (sum of two uniforms): cheap, peaked like speckle in dB.
    db += uniform_noise(rng, db.shape, 1.55) + uniform_noise(rng, db.shape, 1.55) - np.float32(0.5)
    db = np.clip(db, -45.0, 15.0, out=db)
    return dict(zip(S1.bands, db, strict=True))


def pair_bands(key: int, cover: LandCover, month: int) -> dict[str, np.ndarray]:
    """Every raster of a pair: 12 S2 bands, VV/VH and ``reference_map``."""
    rng = patch_rng(key, PIXEL_STREAM)
    bands = s2_bands(cover, month, rng)
    bands.update(s1_bands(cover, rng))
    bands["reference_map"] = cover.codes
    return bands

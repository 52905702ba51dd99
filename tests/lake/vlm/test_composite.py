"""The RGB and S1 composites: exact values, clipping, batches, resizing, the real sample patch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from lake.bigearthnet import BAND_STATS
from lake.errors import ConfigError
from lake.vlm.composite import (
    FIXED_STRETCH,
    RGB_BANDS,
    S1_RANGES,
    Stretch,
    resize,
    s1_false_colour,
    s2_rgb,
    stretch_from_stats,
    to_pil,
)
from tests.conftest import SAMPLE


def _band(folder: Path, band: str) -> np.ndarray:
    (path,) = folder.glob(f"*/*/*_{band}.tif")
    return np.asarray(tifffile.imread(path))


def test_s2_rgb_maps_b04_b03_b02_through_the_fixed_range() -> None:
    s2 = np.zeros((4, 1, 5), dtype=np.uint16)
    s2[0] = [0, 500, 1000, 2500, 9000]  # B02 -> blue
    s2[1] = [2500, 0, 250, 3000, 1]  # B03 -> green
    s2[2] = [10, 20, 65535, 1250, 1249]  # B04 -> red
    s2[3] = 7  # B08 is not used
    rgb = s2_rgb(s2)
    assert rgb.dtype == np.uint8 and rgb.shape == (3, 1, 5)
    assert rgb[0, 0].tolist() == [1, 2, 255, 128, 127]  # 10/2500*255 = 1.02; 127.5 -> 128 (even)
    assert rgb[1, 0].tolist() == [255, 0, 26, 255, 0]  # 25.5 -> 26 (even); above the range clips
    assert rgb[2, 0].tolist() == [0, 51, 102, 255, 255]
    assert RGB_BANDS == ("B04", "B03", "B02")


def test_s2_rgb_with_another_stretch_and_float_input() -> None:
    s2 = np.full((4, 2, 2), 300.0)
    s2[2, 0, 0] = np.nan
    rgb = s2_rgb(s2, Stretch(low=(100.0, 200.0, 300.0), high=(500.0, 400.0, 400.0)))
    assert rgb[:, 1, 1].tolist() == [128, 128, 0]  # (300-100)/400 = 0.5 -> 127.5 -> 128
    assert rgb[0, 0, 0] == 0  # NaN becomes 0


def test_s1_false_colour_uses_the_documented_ranges() -> None:
    s1 = np.zeros((2, 1, 4), dtype=np.float32)
    s1[0] = [-25.0, 0.0, -12.5, -10.0]  # VV
    s1[1] = [-30.0, -5.0, -17.5, -25.0]  # VH
    rgb = s1_false_colour(s1)
    assert S1_RANGES == ((-25.0, 0.0), (-30.0, -5.0), (0.0, 15.0))
    assert rgb[0, 0].tolist() == [0, 255, 128, 153]  # VV
    assert rgb[1, 0].tolist() == [0, 255, 128, 51]  # VH
    assert rgb[2, 0].tolist() == [85, 85, 85, 255]  # VV - VH = 5, 5, 5, 15 dB


@pytest.mark.parametrize("lead", [(), (2,), (2, 3)])
def test_batches_keep_their_leading_axes(lead: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    s2 = rng.integers(0, 4000, size=(*lead, 4, 12, 12), dtype=np.uint16)
    rgb = s2_rgb(s2)
    assert rgb.shape == (*lead, 3, 12, 12) and rgb.flags.c_contiguous
    if lead:
        assert np.array_equal(rgb.reshape(-1, 3, 12, 12)[1], s2_rgb(s2.reshape(-1, 4, 12, 12)[1]))
    s1 = rng.normal(-15, 5, size=(*lead, 2, 12, 12)).astype(np.float32)
    assert s1_false_colour(s1).shape == (*lead, 3, 12, 12)
    small = resize(rgb, 7)
    assert small.shape == (*lead, 3, 7, 7) and small.dtype == np.uint8


def test_stretch_from_stats_is_mean_plus_minus_k_std() -> None:
    s = stretch_from_stats(BAND_STATS)
    assert s.low == (0.0, 0.0, 0.0)  # mean - 3 std < 0 for every RGB band
    assert s.high == pytest.approx((588.41 + 3 * 684.57, 614.06 + 3 * 603.30, 438.37 + 3 * 607.03))
    one = stretch_from_stats({"B04": (1000, 100), "B03": (900, 50), "B02": (800, 10)}, k=2)
    assert one == Stretch(low=(800.0, 800.0, 780.0), high=(1200.0, 1000.0, 820.0))


def test_bad_stretches_and_statistics_are_named() -> None:
    with pytest.raises(ConfigError, match=r"channel\(s\) \['G'\]"):
        Stretch(low=(0.0, 5.0, 0.0), high=(1.0, 5.0, 1.0))
    with pytest.raises(ConfigError, match=r"low=.*three finite numbers"):
        Stretch(low=(0.0, float("nan"), 0.0), high=(1.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match=r"lack band\(s\) \['B02'\]"):
        stretch_from_stats({"B04": (1.0, 1.0), "B03": (1.0, 1.0)})
    with pytest.raises(ConfigError, match=r"std of band\(s\) \['B03'\]"):
        stretch_from_stats({"B04": (1.0, 1.0), "B03": (1.0, 0.0), "B02": (1.0, 1.0)})
    with pytest.raises(ConfigError, match="k=0 must be"):
        stretch_from_stats(BAND_STATS, k=0)


def test_bad_arrays_are_refused_with_their_shape() -> None:
    with pytest.raises(
        ConfigError, match=r"s2_rgb: expected .*\(\.\.\., 4, H, W\).*got shape \(3, 5, 5\)"
    ):
        s2_rgb(np.zeros((3, 5, 5)))
    with pytest.raises(ConfigError, match="dtype <U1"):
        s2_rgb(np.full((4, 2, 2), "a"))
    with pytest.raises(ConfigError, match=r"s1_false_colour: .*got shape \(4, 5, 5\)"):
        s1_false_colour(np.zeros((4, 5, 5)))
    with pytest.raises(ConfigError, match=r"resize: expected a uint8 image.*float64"):
        resize(np.zeros((3, 5, 5)), 4)
    for size in (0, 2.0, True):
        with pytest.raises(ConfigError, match=f"size={size!r} must be an int"):
            resize(np.zeros((3, 5, 5), np.uint8), size)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"to_pil: expected one image .*\(2, 3, 5, 5\)"):
        to_pil(np.zeros((2, 3, 5, 5), np.uint8))


def test_resize_is_bilinear_with_antialiasing() -> None:
    checker = ((np.indices((120, 120)).sum(axis=0) % 2) * 255).astype(np.uint8)
    image = np.stack([checker] * 3)
    small = resize(image, 60).astype(int)
    assert abs(small.mean() - 127.5) < 2 and small.std() < 3  # nearest would give 0 or 255
    flat = np.full((3, 120, 120), 77, np.uint8)
    for size in (224, 336, 448, 57):
        assert np.array_equal(resize(flat, size), np.full((3, size, size), 77, np.uint8))
    ramp = np.broadcast_to(np.arange(120, dtype=np.uint8)[None, None, :] * 2, (3, 120, 120))
    big = resize(np.ascontiguousarray(ramp), 240)
    assert np.all(np.diff(big[0, 0].astype(int)) >= 0)  # monotone, interpolated
    assert len(np.unique(big[0, 0])) > 200  # not pixel-replicated
    same = resize(image, 120)
    assert np.array_equal(same, image) and same is not image


def test_to_pil_keeps_the_pixels() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(3, 6, 9), dtype=np.uint8)
    pil = to_pil(image)
    assert pil.mode == "RGB" and pil.size == (9, 6)
    assert np.array_equal(np.asarray(pil).transpose(2, 0, 1), image)


def test_the_real_sample_patch_gives_a_real_image() -> None:
    folder = SAMPLE / "BigEarthNet-S2"
    s2 = np.stack([_band(folder, b) for b in ("B02", "B03", "B04", "B08")])
    rgb = s2_rgb(s2)
    assert rgb.shape == (3, 120, 120)
    for channel in rgb:
        assert 0.0 < np.mean(channel == 255) < 0.01  # clips under 1 % (docs/vlm.md)
        assert np.mean(channel == 0) < 0.01
        assert len(np.unique(channel)) > 100
    assert 40 < rgb.mean() < 120
    s1_folder = SAMPLE / "BigEarthNet-S1"
    s1 = np.stack([_band(s1_folder, b) for b in ("VV", "VH")])
    false = s1_false_colour(s1)
    for channel in false:
        assert np.mean((channel == 0) | (channel == 255)) < 0.05
        assert len(np.unique(channel)) > 50
    assert resize(rgb, 224).shape == (3, 224, 224)
    assert FIXED_STRETCH.high == (2500.0, 2500.0, 2500.0)


@pytest.mark.parametrize(
    "stretch", [FIXED_STRETCH, Stretch(low=(100.5, 0.0, 7.0), high=(1999.0, 3000.0, 65000.0))]
)
def test_integer_and_float_input_give_the_same_image(stretch: Stretch) -> None:
    every = np.arange(65536, dtype=np.uint16).reshape(1, 256, 256)
    s2 = np.concatenate([every, every[:, ::-1], every[:, :, ::-1], every])
    assert np.array_equal(s2_rgb(s2, stretch), s2_rgb(s2.astype(np.float64), stretch))
    assert np.array_equal(
        s2_rgb(s2[:, :8, :8].astype(np.uint8), stretch)[0],
        s2_rgb(s2[:, :8, :8].astype(np.uint8).astype(float), stretch)[0],
    )

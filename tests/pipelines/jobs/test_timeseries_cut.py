"""Cutting one patch from scenes: the real BigEarthNet sample comes back bit for bit, standard
clients (stackstac) read the generated scene items unchanged, both catalogues' asset keys and the
baseline-04.00 harmonisation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import stackstac  # type: ignore[import-untyped]
from affine import Affine

from lake.bigearthnet import S2_10M, S2_20M, S2_60M
from pipelines.jobs.timeseries import composite_of, cut_patch, fractions, valid_mask
from pipelines.sources.scenes import (
    SceneSearchError,
    canonical_item,
    harmonise,
    needs_harmonising,
    parse_datetime,
)
from pipelines.synth.scenes import (
    Scene,
    expected,
    seasonal_greenness,
    value,
    window_around,
    write_scene,
)

SAMPLE = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"
GROUPS = (S2_10M, S2_20M, S2_60M)


def read_sample(
    shared: Path,
) -> tuple[int, tuple[float, ...], dict[str, tuple[np.ndarray, Affine]]]:
    folder = shared / "bigearthnet-v2/sample/BigEarthNet-S2" / SAMPLE.rsplit("_", 2)[0] / SAMPLE
    bands: dict[str, tuple[np.ndarray, Affine]] = {}
    epsg, bounds = 0, (0.0,)
    for path in sorted(folder.glob("*.tif")):
        with rasterio.open(path) as src:
            bands[path.stem.rsplit("_", 1)[1]] = (src.read(1), src.transform)
            epsg, bounds = int(src.crs.to_epsg()), tuple(src.bounds)
    return epsg, bounds, bands


@pytest.fixture(scope="module")
def shared_data() -> Path:
    path = Path(__file__).resolve().parents[3].parent / "shared/data"
    if not (path / "bigearthnet-v2/sample").is_dir():
        pytest.skip(f"the real sample is not at {path}")
    return path


def test_real_sample_patch_comes_back_bit_exact(shared_data: Path, tmp_path: Path) -> None:
    """The 12 bands of a real patch, embedded in a scene at their own georeference (33UUP,
    EPSG:32633), cut back by stackstac onto the patch's grid: every value equal."""
    epsg, bounds, bands = read_sample(shared_data)
    assert epsg == 32633 and len(bands) == 12
    window = window_around([bounds], margin=2400)
    scene = Scene(0, "33UUP", epsg, window, datetime(2017, 6, 13, 10, 10, tzinfo=UTC))
    item = pystac.Item.from_dict(write_scene(scene, tmp_path, embed=bands))
    cut = cut_patch([item], epsg, bounds)
    for g in GROUPS:
        for j, band in enumerate(g.bands):
            np.testing.assert_array_equal(cut[g.name][0, j], bands[band][0])
            assert cut[g.name].dtype == np.uint16
    # And a neighbour of it: the generated pixels, not the sample's.
    east = (bounds[0] + 1200, bounds[1], bounds[2] + 1200, bounds[3])
    other = cut_patch([item], epsg, east)
    np.testing.assert_array_equal(other["s2_10m"][0, 0], expected(0, "B02", east))


# stackstac 0.5.1 computes bounds from proj:transform with affine's ``*`` (affine 3 warns).
@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")
def test_stackstac_reads_the_scene_items_unchanged(tmp_path: Path) -> None:
    """What a user does with the items of Earth Search: ``stackstac.stack(items, assets=...)``
    with no epsg / resolution / bounds given (taken from ``proj:*``).

    The items as the API sends them (dicts). pystac 1.12+ migrates projection 1.x to 2.0 when it
    reads an item (``proj:epsg`` becomes ``proj:code``), which stackstac 0.5.1 does not read: on
    pystac Items pass ``epsg=``, ``resolution=`` and ``bounds=`` (the job always does).
    """
    window = (300000.0, 5340000.0, 302400.0, 5342400.0)
    items = [
        write_scene(
            Scene(i, "33UUP", 32633, window, datetime(2019, 7, 1 + i, tzinfo=UTC)), tmp_path
        )
        for i in range(2)
    ]
    migrated = [pystac.Item.from_dict(i) for i in items]
    assert "proj:epsg" not in migrated[0].properties
    with pytest.raises(ValueError, match="Cannot pick a common CRS"):
        stackstac.stack(migrated, assets=["blue"])
    cube = stackstac.stack(
        items, assets=["blue", "nir"], rescale=False, dtype="uint16", fill_value=np.uint16(0)
    )
    assert cube.shape == (2, 2, 240, 240)
    assert str(cube.attrs["crs"]).lower() == "epsg:32633"  # from the items' proj:epsg
    values = cube.data.compute(scheduler="sync")
    for i in range(2):
        np.testing.assert_array_equal(values[i, 0], expected(i, "B02", window))
        np.testing.assert_array_equal(values[i, 1], expected(i, "B08", window))
    twenty = stackstac.stack(
        items, assets=["B05", "SCL"], rescale=False, dtype="uint16", fill_value=np.uint16(0)
    )
    assert twenty.shape == (2, 2, 120, 120)
    # Migrated items lose proj:epsg: give the grid (what the job does for every patch).
    same = stackstac.stack(
        migrated,
        assets=["blue"],
        epsg=32633,
        resolution=10,
        bounds=window,
        rescale=False,
        dtype="uint16",
        fill_value=np.uint16(0),
    )
    np.testing.assert_array_equal(same.data.compute(scheduler="sync")[:, 0], values[:, 0])
    np.testing.assert_array_equal(
        twenty.data.compute(scheduler="sync")[1, 1], expected(1, "SCL", window)
    )


@pytest.mark.parametrize("keys", ["earth-search", "planetary-computer"])
def test_either_catalogues_keys_and_the_baseline_offset(tmp_path: Path, keys: str) -> None:
    window = (300000.0, 5340000.0, 303600.0, 5343600.0)
    patch = (301200.0, 5341200.0, 302400.0, 5342400.0)
    old = Scene(0, "33UUP", 32633, window, datetime(2021, 12, 1, tzinfo=UTC))
    new = Scene(1, "33UUP", 32633, window, datetime(2022, 2, 1, tzinfo=UTC), baseline="04.00")
    items = [pystac.Item.from_dict(write_scene(s, tmp_path, keys=keys)) for s in (old, new)]
    assert [needs_harmonising(i) for i in items] == [False, True]
    cut = cut_patch(items, 32633, patch)
    for g in GROUPS:
        for j, band in enumerate(g.bands):
            for t, s in enumerate((old, new)):
                np.testing.assert_array_equal(cut[g.name][t, j], expected(s.index, band, patch))
    raw = cut_patch(items, 32633, patch, harmonised=False)
    np.testing.assert_array_equal(raw["s2_10m"][1], cut["s2_10m"][1] + 1000)
    np.testing.assert_array_equal(raw["scl"], cut["scl"])  # SCL is never offset


def test_seasonal_scenes_are_cut_exactly_and_follow_the_season(tmp_path: Path) -> None:
    """Scenes with a greenness (what notebooks/07 plots): still bit-exact, NDVI up in summer."""
    window = (300000.0, 5340000.0, 302400.0, 5342400.0)
    patch = (300600.0, 5340600.0, 301800.0, 5341800.0)
    dates = (datetime(2019, 4, 1, tzinfo=UTC), datetime(2019, 6, 24, tzinfo=UTC))
    scenes = [
        Scene(i, "33UUP", 32633, window, when, greenness=seasonal_greenness(0, when))
        for i, when in enumerate(dates)
    ]
    items = [pystac.Item.from_dict(write_scene(s, tmp_path)) for s in scenes]
    cut = cut_patch(items, 32633, patch)
    for g in GROUPS:
        for j, band in enumerate(g.bands):
            for t, s in enumerate(scenes):
                want = expected(s.index, band, patch, greenness=s.greenness)
                np.testing.assert_array_equal(cut[g.name][t, j], want)
    red, nir = (cut["s2_10m"][:, k].astype(np.float64) for k in (2, 3))
    ndvi = ((nir - red) / (nir + red)).mean(axis=(1, 2))
    assert ndvi[0] < 0.25 and ndvi[1] > 0.55, ndvi
    with pytest.raises(ValueError, match=r"greenness=1\.5: use a value from 0"):
        value(0, "B04", np.arange(2), np.arange(2), 1.5)


def test_harmonise_follows_the_planetary_computer_rule() -> None:
    v = np.array([0, 1, 999, 1000, 1001, 11000], np.uint16)
    np.testing.assert_array_equal(harmonise(v), [0, 0, 0, 0, 1, 10000])
    item = pystac.Item("x", None, None, datetime(2023, 1, 1, tzinfo=UTC), {})
    item.properties["s2:processing_baseline"] = "05.09"
    assert needs_harmonising(item)
    item.properties["earthsearch:boa_offset_applied"] = True
    assert not needs_harmonising(item)


def test_items_without_band_assets_are_named() -> None:
    item = pystac.Item("odd", None, None, datetime(2023, 1, 1, tzinfo=UTC), {})
    item.add_asset("visual", pystac.Asset("x.tif"))
    with pytest.raises(SceneSearchError, match="scene 'odd' has neither Earth Search nor"):
        canonical_item(item, ["B02"])
    item.add_asset("blue", pystac.Asset("b.tif"))
    with pytest.raises(
        SceneSearchError, match=r"no asset for band\(s\) \['B05'\] \(looked for \['rededge1'\]\)"
    ):
        canonical_item(item, ["B02", "B05"])


def test_fractions_masks_and_composite() -> None:
    scl = np.array([[[0, 9], [4, 5]], [[4, 4], [8, 6]]], np.uint8).repeat(30, 1).repeat(30, 2)
    cloudy, nodata = fractions(scl)
    np.testing.assert_allclose(cloudy, [0.25, 0.25])
    np.testing.assert_allclose(nodata, [0.25, 0.0])
    assert valid_mask(scl, 120).shape == (2, 120, 120)
    assert valid_mask(scl, 20).shape == (2, 20, 20)
    values = np.stack([np.full((1, 60, 60), 100, np.uint16), np.full((1, 60, 60), 300, np.uint16)])
    comp = composite_of(values, scl, np.array([0, 0]), 2)
    # top-left: only the second valid; top-right: only the second; bottom-left: both -> lower
    # median 100; bottom-right: only the first.
    assert (comp[0, 0, 0, 0], comp[0, 0, 0, 59], comp[0, 0, 59, 0], comp[0, 0, 59, 59]) == (
        300,
        300,
        100,
        100,
    )
    assert not comp[1].any()  # an empty period is nodata


def test_parse_datetime_bad_values() -> None:
    for bad in ("2019-13", "yesterday", "2019/..", "../2019", "2019-01/2019-02/2019-03", ""):
        with pytest.raises(ValueError, match="--datetime"):
            parse_datetime(bad)
    assert parse_datetime("2019-02").end == datetime(2019, 2, 28, 23, 59, 59, tzinfo=UTC)

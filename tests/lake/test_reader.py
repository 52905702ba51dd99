"""Reading a lake back: releases, patches, tables, xarray, and the errors a user meets."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely

import lake
from lake.errors import LayoutError, PatchNotFound, ReleaseNotFound
from lake.render import render_patch
from pipelines.sources.open import open_source
from tests.support.lakes import LakeRecipe


@pytest.fixture(scope="module")
def built(build_lake):
    lake = build_lake(LakeRecipe(20, 5, per_shard=8, scan_batch=8))
    return lake.spec, open_source(lake.source), lake.root.parent


def test_releases_and_current(built):
    spec, _, _ = built
    lk = lake.open_lake(spec)
    assert lk.releases == ["r1"] and lk.current.name == "r1"
    assert len(lk.release("r1")) == 20
    with pytest.raises(ReleaseNotFound, match="'nope' is not in"):
        lk.release("nope")


def test_patch_has_every_band_at_native_size_and_its_metadata(built):
    spec, _source, _ = built
    rel = lake.open_lake(spec.url).current
    pid = rel.patches(columns=["patch_id"])["patch_id"][3].as_py()
    p = rel.patch(pid)
    assert (
        p["B02"].shape == (120, 120) and p["B05"].shape == (60, 60) and p["B01"].shape == (20, 20)
    )
    assert p["VV"].dtype == np.float32 and p["reference_map"].dtype == np.uint16
    assert p["metadata"]["patch_id"] == pid and p["metadata"]["labels"]
    with pytest.raises(PatchNotFound, match="is not in release 'r1'") as info:
        rel.patch("S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_00_00")
    assert isinstance(info.value, KeyError)


def test_patches_table_is_geoparquet_with_wgs84_footprints(built):
    _spec, _, base = built
    table = pq.read_table(base / "lake" / "tables" / "r1" / "patches")
    assert b"geo" in table.schema.metadata
    geoms = shapely.from_wkb(table["geometry"].to_numpy(zero_copy_only=False))
    assert all(
        g.is_valid and 0.00015 < g.area < 0.0005 for g in geoms
    )  # ~1.2 km squares, in degrees
    lon, lat = table["centre_lon"].to_numpy(), table["centre_lat"].to_numpy()
    assert all(shapely.contains_xy(g, x, y) for g, x, y in zip(geoms, lon, lat, strict=True))
    assert set(table["season"].to_pylist()) <= {"Spring", "Summer", "Fall", "Winter"}
    assert sorted(table["sample_index"].to_pylist()) == list(range(20))


def test_annotations_by_split_prune_partitions(built):
    spec, _, base = built
    rel = lake.open_lake(spec).current
    whole = rel.annotations()
    for split in set(whole["split"].to_pylist()):
        part = rel.annotations(split=split)
        assert set(part["split"].to_pylist()) == {split}
    assert whole.num_rows == rel.manifest["counts"]["annotations"]["total"]
    src = pq.read_table(base / "src" / "BigEarthNet.txt.parquet")
    assert whole.num_rows == src.num_rows
    assert set(src.column_names) <= set(whole.column_names)


def test_to_xarray_matches_patch(built):
    spec, _, _ = built
    rel = lake.open_lake(spec).current
    ds = rel.to_xarray()
    assert ds.sizes["sample"] == 20
    pid = str(ds["patch_id"].values[5])
    np.testing.assert_array_equal(ds["s2_20m"].values[5, 3], rel.patch(pid)["B8A"])


def test_render_writes_three_panels(built, tmp_path):
    from PIL import Image

    spec, _, _ = built
    rel = lake.open_lake(spec).current
    out = render_patch(rel.sample(0), tmp_path / "p.png")
    with Image.open(out) as im:
        assert im.size[0] > 3 * 240 and im.mode == "RGB"


def test_no_lake_here(tmp_path):
    with pytest.raises(LayoutError, match="no lake"):
        lake.open_lake(str(tmp_path))

"""``Release.to_xarray``: the whole group by ``patch_id``, the table's metadata as coordinates,
dask chunks of one shard object by default."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import lake
from lake.bigearthnet import CLASSES_SORTED
from lake.config import store_spec
from lake.errors import ConfigError, LayoutError
from lake.reader import Release
from tests.support.lakes import LakeRecipe, TestLake

N, PER_SHARD = 20, 8


@pytest.fixture(scope="module")
def release(build_lake: Callable[[LakeRecipe], TestLake]) -> Release:
    built = build_lake(LakeRecipe(N, 5, per_shard=PER_SHARD, scan_batch=8))
    return lake.open_lake(built.spec).current


def test_pairs_are_selected_by_patch_id(release: Release) -> None:
    ds = release.to_xarray()
    table = release.patches(columns=["patch_id", "sample_index"]).to_pylist()
    for row in table[::6]:
        one = ds.sel(patch_id=row["patch_id"])
        pair = release.patch(row["patch_id"])
        np.testing.assert_array_equal(one["s2_10m"].sel(s2_10m_band="B04").values, pair["B04"])
        np.testing.assert_array_equal(one["s1"].values[1], pair["VH"])
        np.testing.assert_array_equal(one["reference_map"].values, pair["reference_map"])
        assert int(ds.indexes["patch_id"].get_loc(row["patch_id"])) == row["sample_index"]
    assert list(ds["patch_id"].values) == list(release.group["patch_id"][:])  # storage order


def test_the_tables_metadata_are_coordinates(release: Release) -> None:
    ds = release.to_xarray()
    rows = {r["patch_id"]: r for r in release.patches().to_pylist()}
    for pid in list(rows)[:7]:
        one, row = ds.sel(patch_id=pid), rows[pid]
        for name in ("split", "country", "season", "tile", "epsg"):
            assert one[name].item() == row[name], name
        assert one["s2_datetime"].values == np.datetime64(row["s2_datetime"].replace(tzinfo=None))
        hot = {c for c, on in zip(CLASSES_SORTED, one["labels"].values, strict=True) if on}
        assert hot == set(row["labels"])
    assert ds["labels"].dims == ("sample", "label") and ds.sizes["label"] == 19
    bare = release.to_xarray(metadata=False)
    assert "country" not in bare.coords and "patch_id" in bare.indexes


def test_dask_chunks_are_one_shard_by_default(release: Release) -> None:
    assert release.samples_per_shard == PER_SHARD
    ds = release.to_xarray()
    for name in ("s2_10m", "s2_20m", "s2_60m", "s1", "reference_map"):
        assert ds[name].chunks[0] == (8, 8, 4), name
    assert release.to_xarray(chunks=16)["s1"].chunks[0] == (16, 4)  # two shards a chunk
    assert release.to_xarray(chunks={})["s1"].chunks[0] == (1,) * N
    assert release.to_xarray(chunks=None)["s1"].chunks is None  # lazy, without dask
    by_shard = release.to_xarray()["s2_20m"].mean(["sample", "y_20m", "x_20m"]).values
    whole = release.to_xarray(chunks=None)["s2_20m"].values.mean(axis=(0, 2, 3))
    np.testing.assert_allclose(by_shard, whole)


@pytest.mark.parametrize("bad", ["samples", 0, -3, True, 2.5])
def test_bad_chunks_are_named(release: Release, bad: object) -> None:
    with pytest.raises(ConfigError, match=rf"to_xarray\(chunks={bad!r}\): use 'shard'"):
        release.to_xarray(chunks=bad)  # type: ignore[arg-type]


def test_a_table_that_does_not_number_the_group_is_refused(
    release: Release, tmp_path: Path
) -> None:
    copy = tmp_path / "lake"
    shutil.copytree(release.spec.root, copy)
    part = next((copy / "tables" / release.name / "patches").glob("*.parquet"))
    table = pq.read_table(part)
    shifted = pc.add(table["sample_index"], 1)
    column = table.schema.get_field_index("sample_index")
    pq.write_table(table.set_column(column, "sample_index", shifted), part)
    damaged = lake.open_lake(store_spec(str(copy), environ={})).current
    with pytest.raises(LayoutError, match="sample_index does not number the group's 20 samples"):
        damaged.to_xarray()

"""lake.timeseries: reading a published time-series part, and its bad inputs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pytest
import zarr

from lake.config import StoreSpec
from lake.errors import LayoutError, PatchNotFound
from lake.layout import timeseries_group_path, timeseries_items_path
from lake.reader import open_lake
from lake.timeseries import TimeSeries, parts_of
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.timeseries import Selection, TimeSeriesOptions, cut_timeseries, patch_bounds
from pipelines.local.stac import StacServer
from pipelines.synth.scenes import expected, scenes_around
from tests.support.lakes import LakeRecipe, TestLake, copy_lake
from tests.support.stac import validate

LAKE = LakeRecipe(20, 5, per_shard=8, scan_batch=8)
DATES = [datetime(2020, 3, d, 10, tzinfo=UTC) for d in (2, 5, 15)]


@dataclass(frozen=True)
class Published:
    spec: StoreSpec
    ids: list[str]
    bounds: dict[str, tuple[float, float, float, float]]


@pytest.fixture(scope="module")
def published(
    build_lake: Callable[[LakeRecipe], TestLake], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Published]:
    base = tmp_path_factory.mktemp("ts-lake")
    spec = copy_lake(build_lake(LAKE), base / "lake")
    rows = open_lake(spec).current.patches(columns=["patch_id", "tile", "epsg", "transform"])
    picked = rows.sort_by("patch_id").to_pylist()[-2:]
    bounds = {r["patch_id"]: patch_bounds(r["transform"]) for r in picked}
    scenes = scenes_around(
        [(r["tile"], r["epsg"], bounds[r["patch_id"]]) for r in picked], DATES, base / "scenes"
    )
    ids = [r["patch_id"] for r in picked]
    with StacServer(scenes.catalogue) as server:
        for part, composite in (("raw", "none"), ("tens", "10D")):
            cut_timeseries(
                spec,
                TimeSeriesOptions(
                    server.url, "sentinel-2-l2a", "2020-03", part=part, composite=composite
                ),
                Selection(ids=tuple(ids)),
                cluster=ClusterSpec("sync"),
            )
    yield Published(spec, ids, bounds)


def test_read_and_acquisitions(published: Published) -> None:
    assert parts_of(published.spec) == ["raw", "tens"]
    ts = TimeSeries.open(published.spec, part="tens")
    assert len(ts) == 2 and set(ts.patch_ids) == set(published.ids)
    series = ts.indices_of(published.ids)
    table = ts.acquisitions(series[:1])
    assert table.num_rows == 3 and set(table["patch_id"].to_pylist()) == {published.ids[0]}
    assert table["datetime"].to_pylist() == DATES
    (cube,) = ts.read(series[:1], "s2_20m")
    assert cube.shape == (3, 6, 60, 60)
    scene_index = [int(s.rsplit("_", 1)[1]) for s in table["scene_id"].to_pylist()]
    for t, k in enumerate(scene_index):
        np.testing.assert_array_equal(
            cube[t, 3], expected(k, "B8A", published.bounds[published.ids[0]])
        )
    assert [t.day for t in ts.times] == [1, 11, 21, 31]
    comp = ts.composite(series, "s2_60m")
    assert comp.shape == (2, 4, 2, 20, 20) and comp.dtype == np.uint16
    assert not comp[:, 2:].any()  # no scene after 15 March: nodata


def test_plain_zarr_reads_the_part(published: Published) -> None:
    """No project code: the arrays open with zarr alone, named by their dimensions."""
    root = published.spec.root
    group = zarr.open_group(f"{root}/{timeseries_group_path('r1', 'raw')}", mode="r")
    assert group["s2_10m"].shape == (6, 4, 120, 120)
    dims = ("acquisition", "s2_10m_band", "y_10m", "x_10m")
    assert group["s2_10m"].metadata.dimension_names == dims
    assert "composite_10m" not in group


def test_items_open_with_standard_tools(published: Published) -> None:
    """The part's Items (stac-geoparquet): one per patch, valid STAC, and the Zarr asset opens
    with ``xr.open_dataset(href, **asset["xarray:open_kwargs"])``."""
    import pyarrow.parquet as pq
    import xarray as xr
    from stac_geoparquet.arrow import stac_table_to_items

    path = f"{published.spec.root}/{timeseries_items_path('r1', 'tens')}"
    items = list(stac_table_to_items(pq.read_table(path)))
    assert sorted(i["id"] for i in items) == sorted(published.ids)
    for item in items:
        assert validate(item) == [], item["id"]
        assert item["properties"]["proj:epsg"] == int(item["properties"]["proj:code"][5:])
        asset = item["assets"]["series"]
        with xr.open_dataset(asset["href"], **asset["xarray:open_kwargs"]) as ds:
            dims = ("sample", "time", "s2_10m_band", "y_10m", "x_10m")
            assert ds["composite_10m"].dims == dims
            assert ds["s2_10m"].shape == (6, 4, 120, 120)


def test_bad_inputs_are_named(published: Published) -> None:
    with pytest.raises(LayoutError, match=r"no time-series part None \(it has: raw, tens\)"):
        TimeSeries.open(published.spec)
    with pytest.raises(LayoutError, match=r"no time-series part 'nope' \(it has: raw, tens\)"):
        TimeSeries.open(published.spec, part="nope")
    ts = TimeSeries.open(published.spec, part="raw")
    with pytest.raises(PatchNotFound, match=r"\['S2X_nope'\] are not in time-series part 'raw'"):
        ts.indices_of(["S2X_nope"])
    with pytest.raises(IndexError, match=r"series index\(es\) \[2\] out of range"):
        ts.read([2])
    with pytest.raises(IndexError, match=r"\[-1\] out of range"):
        ts.acquisitions([-1])
    with pytest.raises(ValueError, match="array='s1'"):
        ts.read([0], "s1")  # type: ignore[arg-type]
    with pytest.raises(LayoutError, match="has no composites: cut it again with --composite"):
        ts.composite([0])
    with pytest.raises(ValueError, match="array='scl'"):
        TimeSeries.open(published.spec, part="tens").composite([0], "scl")

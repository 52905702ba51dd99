"""The lake's STAC Items and collection in the standard clients, unchanged: stackstac, odc-stac,
pystac(-client) and xarray's ``xarray:open_kwargs``, locally and on the embedded S3 endpoint; and
:func:`catalog.stack`, the cube those clients would build, read through zarr.

stackstac and odc-stac read pixels through GDAL, and GDAL 3.10 cannot decode Zarr sharding, so
their tests check the lazy cube they build (CRS, grid, bands, times), not its values; the values
are checked through ``xarray:open_kwargs`` and :func:`catalog.stack`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import xarray as xr
from pystac_client import Client

import catalog
from catalog.api import create_app
from catalog.collection import XARRAY_OPEN_KWARGS, located_assets
from catalog.search import Catalog
from catalog.server import running
from lake.bigearthnet import ARRAYS, CLASSES_SORTED
from lake.config import StoreSpec
from lake.errors import ConfigError, LayoutError, ReleaseNotFound
from lake.reader import open_lake
from pipelines.local.s3 import EmbeddedS3
from tests.catalog.helpers import RELEASE
from tests.conftest import s3_spec_for
from tests.support.lakes import TestLake, upload_lake
from tests.support.stac import validate

#: affine and shapely warn about what stackstac and odc-geo call (``*`` of affines,
#: ``shapely.ops.transform``); not ours to fix.
GEO_WARNINGS = (
    "ignore:Use `@` matmul instead of `\\*` mul:PendingDeprecationWarning",
    "ignore:The 'shapely.ops.transform\\(\\)' function is deprecated:DeprecationWarning",
)


def _one_zone(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Items of the UTM zone with the most Items (stackstac stacks one CRS at a time)."""
    zone, _ = Counter(i["properties"]["proj:epsg"] for i in items).most_common(1)[0]
    return [i for i in items if i["properties"]["proj:epsg"] == zone]


def test_items_carry_proj_epsg_beside_proj_code_and_validate(all_items: list) -> None:
    for item in all_items:
        p = item["properties"]
        assert isinstance(p["proj:epsg"], int) and p["proj:code"] == f"EPSG:{p['proj:epsg']}"
        assert (
            "https://stac-extensions.github.io/projection/v1.2.0/schema.json"
            in (item["stac_extensions"])
        )
        tf = p["proj:transform"]
        for spec in ARRAYS:
            asset = item["assets"][spec.name]
            res = float(spec.resolution_m)
            assert asset["proj:shape"] == [spec.size, spec.size]
            assert asset["proj:transform"] == [res, 0.0, tf[2], 0.0, -res, tf[5]]
    assert [e for item in all_items for e in validate(item)] == []


def test_pystac_migration_drops_proj_epsg_search_results_keep_it(cat: Catalog) -> None:
    found = catalog.search(cat, limit=3)
    assert all(isinstance(i.properties["proj:epsg"], int) for i in found)
    item = found.items[0].to_dict()
    migrated = pystac.Item.from_dict(item, migrate=True)  # what pystac_client's items() does
    assert "proj:epsg" not in migrated.properties  # stackstac issue #262: pass dicts or epsg=
    assert migrated.properties["proj:code"] == item["properties"]["proj:code"]


@pytest.mark.filterwarnings(*GEO_WARNINGS)
def test_stackstac_builds_the_cube_on_each_assets_grid(all_items: list) -> None:
    stackstac = pytest.importorskip("stackstac")
    item = all_items[0]
    tf = item["properties"]["proj:transform"]
    for spec in ARRAYS:
        cube = stackstac.stack(
            [item],
            assets=[spec.name],
            dtype=spec.dtype,
            fill_value=np.dtype(spec.dtype).type(0),
            rescale=False,
        )
        res = float(spec.resolution_m)
        assert cube.shape == (1, 1, spec.size, spec.size), spec.name
        assert int(cube["epsg"]) == item["properties"]["proj:epsg"]
        assert cube.attrs["resolution"] == res
        np.testing.assert_allclose(cube["x"].values, tf[2] + res * np.arange(spec.size))
        np.testing.assert_allclose(cube["y"].values, tf[5] - res * np.arange(spec.size))
        assert list(cube["band"].values) == [spec.name]
        assert str(cube["time"].values[0])[:19] == item["properties"]["datetime"][:19]


@pytest.mark.filterwarnings(*GEO_WARNINGS)
def test_stackstac_stacks_a_zone_of_items_from_the_api(api_url: str, all_items: list) -> None:
    stackstac = pytest.importorskip("stackstac")
    zone = _one_zone(all_items)
    epsg = zone[0]["properties"]["proj:epsg"]
    search = Client.open(api_url).search(filter=f"\"proj:code\" = 'EPSG:{epsg}'", max_items=100)
    items = list(search.items_as_dicts())  # dicts: no pystac migration, proj:epsg kept
    assert sorted(i["id"] for i in items) == sorted(i["id"] for i in zone)
    rasters = ["s2_10m", "s1", "reference_map"]
    cube = stackstac.stack(
        items, assets=rasters, dtype="float32", fill_value=np.float32(np.nan), rescale=False
    )
    assert cube.sizes["time"] == len(zone) and list(cube["band"].values) == rasters
    assert int(cube["epsg"]) == epsg and cube.attrs["resolution"] == 10.0
    left = min(i["properties"]["proj:transform"][2] for i in zone)
    top = max(i["properties"]["proj:transform"][5] for i in zone)
    assert cube["x"].values[0] == left and cube["y"].values[0] == top
    assert set(cube["country"].values) == {i["properties"]["country"] for i in zone}
    with pytest.raises(ValueError, match="Cannot pick a common CRS"):  # migrated Items
        stackstac.stack(list(search.items()), assets=rasters)


@pytest.mark.filterwarnings(*GEO_WARNINGS)
def test_odc_stac_finds_every_band_on_three_grids(all_items: list) -> None:
    """odc-stac 0.5.3 takes an asset for raster data by its media type and knows Zarr only as
    ``application/zarr`` or ``application/x-zarr`` (odc-stac PR #116), while the Items use
    ``application/vnd+zarr`` (pystac's ``MediaType.ZARR``, the STAC best practices, ESA EOPF,
    Planetary Computer): so it finds no band in the Items as they are, and, told the type it
    knows, every band on its own grid from the Items' projection fields alone."""
    odc_stac = pytest.importorskip("odc.stac")
    zone = _one_zone(all_items)
    as_is = [pystac.Item.from_dict(i, migrate=False) for i in zone]
    assert odc_stac.extract_collection_metadata(as_is[0]).meta.bands == {}
    retyped = [
        pystac.Item.from_dict(
            {**i, "assets": {k: {**a, "type": "application/zarr"} for k, a in i["assets"].items()}},
            migrate=True,  # odc-stac reads proj:code through pystac, as migrated Items have it
        )
        for i in zone
    ]
    meta = odc_stac.extract_collection_metadata(retyped[0])
    want = {(a.name, k + 1) for a in ARRAYS for k in range(max(len(a.bands), 1))}
    assert set(meta.meta.bands) == want
    grids = {a: meta.band2grid[a] for a in ("s2_10m", "s2_20m", "s2_60m", "s1")}
    assert grids["s2_10m"] == grids["s1"] and len(set(grids.values())) == 3
    cube = odc_stac.load(retyped, bands=["s2_20m"], chunks={}, groupby="id")
    epsg = zone[0]["properties"]["proj:epsg"]
    assert cube.odc.geobox.crs.epsg == epsg and cube.odc.geobox.resolution.x == 20.0
    assert cube.sizes["time"] == len(zone) and cube["s2_20m"].dtype == np.uint16


def _located_zarr(cat: Catalog) -> dict[str, Any]:
    return located_assets(cat.collection["assets"], cat.spec, cat.base_url)["zarr"]


def test_the_zarr_asset_opens_with_its_xarray_open_kwargs(
    cat: Catalog, lake_spec: StoreSpec
) -> None:
    stored = cat.collection["assets"]["zarr"]
    assert stored[XARRAY_OPEN_KWARGS] == {"engine": "zarr", "consolidated": False, "zarr_format": 3}
    asset = _located_zarr(cat)
    ds = xr.open_dataset(asset["href"], **asset[XARRAY_OPEN_KWARGS])
    release = open_lake(lake_spec).current
    pid = str(ds["patch_id"].values[7])
    np.testing.assert_array_equal(ds["s2_20m"].values[7, 3], release.patch(pid)["B8A"])
    ds.close()


@pytest.fixture(scope="module")
def s3_lake(catalog_lake: TestLake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The catalog's lake copied to an endpoint of our own (see test_search_s3.py)."""
    folder = tmp_path_factory.mktemp("interop-s3") / "data"
    with EmbeddedS3(folder, buckets=["lake"]) as server:
        yield server, upload_lake(catalog_lake, s3_spec_for(server))


@pytest.mark.s3
def test_on_s3_the_api_hands_xarray_what_it_needs_but_no_secret(
    s3_lake: tuple[EmbeddedS3, StoreSpec], monkeypatch: pytest.MonkeyPatch, lake_spec: StoreSpec
) -> None:
    server, spec = s3_lake
    with Catalog(spec) as s3_cat, running(create_app(s3_cat)) as url:
        collection = Client.open(url).get_collection("bigearthnet-v2")
        assert collection is not None
        asset = collection.assets["zarr"]
        kwargs = asset.extra_fields[XARRAY_OPEN_KWARGS]
    options = kwargs["storage_options"]
    assert options["client_kwargs"]["endpoint_url"] == server.endpoint.endpoint_url
    assert server.endpoint.secret not in repr(kwargs) and "key" not in options
    assert asset.href == f"{spec.url}/patches/{RELEASE}.zarr"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.endpoint.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.endpoint.secret)
    ds = xr.open_dataset(asset.href, **kwargs)
    local = xr.open_dataset(
        **{"filename_or_obj": lake_spec.path(f"patches/{RELEASE}.zarr"), **_no_options(kwargs)}
    )
    np.testing.assert_array_equal(ds["s1"].values, local["s1"].values)
    ds.close()
    local.close()


def _no_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k != "storage_options"}


# ------------------------------------------------------------------ catalog.stack


def test_stack_gives_the_pairs_by_patch_id_with_their_metadata(
    cat: Catalog, lake_spec: StoreSpec
) -> None:
    found = catalog.search(cat, filter="split = 'train'", sortby="-datetime", limit=9)
    cube = catalog.stack(found, chunks=4)
    ids = [i.id for i in found]
    assert list(cube.indexes["patch_id"]) == ids  # the search's order
    assert cube["s2_10m"].dims == ("patch_id", "s2_10m_band", "y_10m", "x_10m")
    assert cube["s2_10m"].chunks is not None and cube["s2_10m"].chunks[0] == (4, 4, 1)
    release = open_lake(lake_spec).current
    for item in found.items[::4]:
        pair = release.patch(item.id)
        one = cube.sel(patch_id=item.id)
        for spec in ARRAYS:
            values = one[spec.name].values
            if spec.bands:
                for k, band in enumerate(spec.bands):
                    np.testing.assert_array_equal(values[k], pair[band])
            else:
                np.testing.assert_array_equal(values, pair[spec.name])
        p = item.properties
        assert one["country"].item() == p["country"] and one["split"].item() == "train"
        assert int(one["epsg"]) == p["proj:epsg"] and int(one["sample_index"]) == p["sample_index"]
        assert str(one["datetime"].values)[:19] == p["datetime"][:19]
        hot = {c for c, on in zip(CLASSES_SORTED, one["labels"].values, strict=True) if on}
        assert hot == set(p["labels"])
        assert list(one["transform"].values) == p["proj:transform"]
    assert list(cube["s2_20m_band"].values) == ["B05", "B06", "B07", "B8A", "B11", "B12"]


def test_stack_takes_dicts_and_pystac_client_results(api_url: str, all_items: list) -> None:
    picked = [all_items[5], all_items[1], all_items[30]]
    from_dicts = catalog.stack(picked)
    found = Client.open(api_url).search(ids=[i["id"] for i in picked]).item_collection()
    from_client = catalog.stack(found)
    assert set(from_client.indexes["patch_id"]) == set(from_dicts.indexes["patch_id"])
    order = list(from_client.indexes["patch_id"])
    xr.testing.assert_equal(from_client["s1"], from_dicts["s1"].sel(patch_id=order))
    feature_collection = {"type": "FeatureCollection", "features": picked}
    assert list(catalog.stack(feature_collection).indexes["patch_id"]) == [i["id"] for i in picked]


@pytest.mark.s3
def test_stack_reads_a_lake_on_s3(s3_lake: tuple[EmbeddedS3, StoreSpec], cat: Catalog) -> None:
    _, spec = s3_lake
    with Catalog(spec) as s3_cat:
        found = catalog.search(s3_cat, limit=4)
    assert found.items[0].assets["s1"].href.startswith(spec.url)
    on_s3 = catalog.stack(found, lake=spec)
    local = catalog.stack(catalog.search(cat, limit=4))
    xr.testing.assert_equal(on_s3["s2_60m"].compute(), local["s2_60m"].compute())


def test_stack_resolves_relative_hrefs_against_the_lake(cat: Catalog, lake_spec: StoreSpec) -> None:
    page = cat.search(catalog.SearchRequest(limit=2))
    relative = page.items(absolute=False)
    assert relative[0]["assets"]["s1"]["href"].startswith("../../")
    with pytest.raises(
        ConfigError, match=r"relative href '\.\./\.\./patches/r1\.zarr/s2_10m#sample="
    ):
        catalog.stack(relative)
    cube = catalog.stack(relative, lake=lake_spec)
    assert list(cube.indexes["patch_id"]) == [i["id"] for i in relative]


def test_stack_bad_inputs_are_named(all_items: list, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no Items"):
        catalog.stack([])
    with pytest.raises(ConfigError, match="item 1 is a str"):
        catalog.stack([all_items[0], "S2A_MSIL2A_x"])
    with pytest.raises(ConfigError, match="not a dict"):
        catalog.stack({"type": "Feature"})
    with pytest.raises(ConfigError, match=f"item {all_items[0]['id']!r} is there twice"):
        catalog.stack([all_items[0], all_items[0]])
    with pytest.raises(ConfigError, match="chunks=0"):
        catalog.stack(all_items[:1], chunks=0)
    bare = {**all_items[0], "assets": {}}
    with pytest.raises(ConfigError, match="has none of the lake's assets"):
        catalog.stack([bare])
    moved = _with_href(all_items[1], lambda h: h.replace(f"/{RELEASE}.zarr/", "/r9.zarr/"))
    with pytest.raises(ConfigError, match=r"in release 'r9'.*one release at a time"):
        catalog.stack([all_items[0], moved])
    with pytest.raises(ReleaseNotFound, match="r9"):
        catalog.stack([moved])
    with pytest.raises(ConfigError, match="point into another lake"):
        catalog.stack(all_items[:1], lake=str(tmp_path / "elsewhere"))
    odd = _with_href(all_items[0], lambda h: h.replace("/patches/", "/tables/"))
    with pytest.raises(ConfigError, match="is not a row of a lake's patch group"):
        catalog.stack([odd])
    far = {**all_items[0], "properties": {**all_items[0]["properties"], "sample_index": 10**6}}
    with pytest.raises(LayoutError, match="names a sample outside release 'r1'"):
        catalog.stack([far])


def _with_href(item: dict[str, Any], change: Any) -> dict[str, Any]:
    assets = {k: {**a, "href": change(a["href"])} for k, a in item["assets"].items()}
    return {**item, "id": item["id"] + "-moved", "assets": assets}

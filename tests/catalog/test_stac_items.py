"""The catalog a release carries: valid STAC, faithful to the tables, the Zarr group and the
manifest, readable by stac-geoparquet and rustac, and byte-identical when rebuilt."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
import zarr

from catalog.build import collection_path, items_parquet, render_catalog, verify_catalog
from catalog.items import constants_of, items_table
from catalog.search import Catalog
from lake.bigearthnet import ARRAYS, S2_BAND_INFO
from lake.config import StoreSpec, store_spec
from lake.errors import LayoutError, PublishConflict
from lake.layout import stac_items_path
from lake.reader import open_lake
from lake.release import ObjectEntry
from lake.storage import filesystem
from tests.catalog.helpers import N_PAIRS, RELEASE
from tests.support.stac import validate


def _local(spec: StoreSpec, rel: str) -> str:
    return spec.path(rel)


def test_every_item_the_collection_and_the_catalog_validate(cat: Catalog, all_items: list) -> None:
    assert len(all_items) == N_PAIRS
    errors = [e for item in all_items for e in validate(item)]
    assert errors == []
    assert validate(cat.collection) == []
    assert validate(cat.catalog_document) == []


def test_items_follow_the_patches_table(lake_spec: StoreSpec, all_items: list) -> None:
    release = open_lake(lake_spec).current
    rows = {r["patch_id"]: r for r in release.patches().to_pylist()}
    assert [i["id"] for i in all_items] == sorted(rows)
    for item in all_items:
        row, p = rows[item["id"]], item["properties"]
        geom = shapely.geometry.shape(item["geometry"])
        assert geom.equals_exact(shapely.from_wkb(row["geometry"]), 1e-9)
        assert item["bbox"] == [row["bbox"][k] for k in ("xmin", "ymin", "xmax", "ymax")]
        s1, s2 = row["s1_datetime"], row["s2_datetime"]
        assert p["datetime"] == s2.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert p["start_datetime"] == min(s1, s2).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert p["end_datetime"] == max(s1, s2).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert p["proj:code"] == f"EPSG:{row['epsg']}" and p["proj:code"].startswith("EPSG:326")
        assert p["proj:epsg"] == row["epsg"]  # beside proj:code, for stackstac and odc-stac
        assert p["proj:transform"] == row["transform"] and p["proj:shape"] == [120, 120]
        for key in ("labels", "split", "country", "season", "tile", "s1_name", "sample_index"):
            assert p[key] == row[key], key
        assert p["grid:code"] == f"MGRS-{row['tile']}"
        assert p["ml-aoi:split"] == {"validation": "validate"}.get(row["split"], row["split"])
        assert p["platform"] == "sentinel-" + row["s2_platform"][1:].lower()
        assert p["sar:instrument_mode"] == "IW" and p["sar:frequency_band"] == "C"
        assert p["sar:polarizations"] == ["VV", "VH"] and p["sar:product_type"] == "GRD"
        assert item["collection"] == "bigearthnet-v2"


def test_annotation_counts_match_the_annotations_table(
    lake_spec: StoreSpec, all_items: list
) -> None:
    text = open_lake(lake_spec).current.annotations(columns=["patch_id", "type"]).to_pylist()
    counts = Counter((r["patch_id"], r["type"]) for r in text)
    assert sum(counts.values()) > 0
    for item in all_items:
        p = item["properties"]
        for kind in ("binary", "mcq", "bounding box", "captioning"):
            assert p["annotations_" + kind.replace(" ", "_")] == counts[(item["id"], kind)]


def test_bands_carry_common_names_and_wavelengths(all_items: list) -> None:
    assets = all_items[0]["assets"]
    assert set(assets) == {a.name for a in ARRAYS}
    for spec in ARRAYS:
        bands = assets[spec.name].get("bands", [])
        assert [b["name"] for b in bands] == list(spec.bands)
        for band in bands:
            if band["name"] in S2_BAND_INFO:
                wavelength, common = S2_BAND_INFO[band["name"]]
                assert band["eo:common_name"] == common
                assert band["eo:center_wavelength"] == wavelength
    assert assets["s1"]["platform"].startswith("sentinel-1")
    assert assets["s1"]["sar:polarizations"] == ["VV", "VH"]


def _open_asset(href: str) -> tuple[Any, int]:
    url = urlparse(href)
    assert url.scheme == "file" and url.fragment.startswith("sample=")
    return zarr.open_array(url.path, mode="r"), int(url.fragment.split("=", 1)[1])


def test_assets_point_at_the_pair_in_the_zarr_group(lake_spec: StoreSpec, all_items: list) -> None:
    release = open_lake(lake_spec).current
    for item in all_items[:: N_PAIRS // 6]:
        pair = release.patch(item["id"])
        for spec in ARRAYS:
            asset = item["assets"][spec.name]
            assert asset["type"] == "application/vnd+zarr"
            array, index = _open_asset(asset["href"])
            assert index == item["properties"]["sample_index"]
            values = np.asarray(array[index])
            if spec.bands:
                for i, band in enumerate(spec.bands):
                    np.testing.assert_array_equal(values[i], pair[band])
            else:
                np.testing.assert_array_equal(values, pair[spec.name])


def test_file_checksums_and_sizes_describe_the_shard_objects(
    lake_spec: StoreSpec, all_items: list
) -> None:
    manifest = {o["path"]: o for o in open_lake(lake_spec).current.manifest["objects"]}
    for item in all_items[:10]:
        for asset in item["assets"].values():
            path = urlparse(asset["bigearthnet:shard_object"]).path
            body = Path(path).read_bytes()
            assert asset["file:size"] == len(body)
            assert asset["file:checksum"] == "1220" + hashlib.sha256(body).hexdigest()
            rel = path[len(lake_spec.root) + 1 :]
            assert manifest[rel]["sha256"] == asset["file:checksum"][4:]


def test_collection_extent_summaries_and_table_assets(cat: Catalog, all_items: list) -> None:
    c = cat.collection
    props = [i["properties"] for i in all_items]
    (box,) = c["extent"]["spatial"]["bbox"]
    assert box[0] == min(i["bbox"][0] for i in all_items)
    assert box[3] == max(i["bbox"][3] for i in all_items)
    (interval,) = c["extent"]["temporal"]["interval"]
    assert interval == [
        min(p["start_datetime"] for p in props),
        max(p["end_datetime"] for p in props),
    ]
    s = c["summaries"]
    assert s["country"] == sorted({p["country"] for p in props})
    assert s["season"] == sorted({p["season"] for p in props})
    assert s["split"] == sorted({p["split"] for p in props})
    assert set(s["labels"]) == {label for p in props for label in p["labels"]}
    assert set(c["item_assets"]) == {a.name for a in ARRAYS}
    assets = c["assets"]
    assert assets["patches"]["type"] == "application/vnd.apache.parquet"
    assert any(k.startswith("annotations_") for k in assets)
    for key in ("patches", "items"):
        assert assets[key]["file:checksum"].startswith("1220")
    assert c["license"] == "CDLA-Permissive-1.0" and c["providers"]


def test_catalog_files_are_in_the_manifest(lake_spec: StoreSpec) -> None:
    paths = {o["path"] for o in open_lake(lake_spec).current.manifest["objects"]}
    assert {stac_items_path(RELEASE), collection_path(RELEASE)} <= paths
    assert f"stac/{RELEASE}/catalog.json" in paths


def test_the_layout_is_stac_geoparquets_own(lake_spec: StoreSpec) -> None:
    import stac_geoparquet.arrow as sga

    table = pq.read_table(_local(lake_spec, stac_items_path(RELEASE)))
    items = list(sga.stac_table_to_items(table))
    assert len(items) == N_PAIRS and validate(items[0]) == []
    again = sga.parse_stac_items_to_arrow(items).read_all()
    assert set(again.column_names) == set(table.column_names)
    for name in table.column_names:
        ours, theirs = table.schema.field(name).type, again.schema.field(name).type
        assert ours == theirs, name


def test_rustac_reads_the_items(lake_spec: StoreSpec) -> None:
    rustac = pytest.importorskip("rustac")
    doc = rustac.read_sync(_local(lake_spec, stac_items_path(RELEASE)))
    assert len(doc["features"]) == N_PAIRS
    first = json.loads(json.dumps(doc["features"][0]))  # rustac gives tuples for arrays
    assert validate(first) == []
    assert first["assets"]["s1"]["href"].endswith(
        "#sample=" + str(first["properties"]["sample_index"])
    )


def test_rebuilding_gives_the_same_bytes(lake_spec: StoreSpec) -> None:
    manifest = open_lake(lake_spec).current.manifest

    objects = {
        o["path"]: ObjectEntry(o["path"], o["size"], o["sha256"]) for o in manifest["objects"]
    }
    first = render_catalog(lake_spec, RELEASE, objects)
    second = render_catalog(lake_spec, RELEASE, objects)
    assert first.files == second.files
    stored = {p: Path(_local(lake_spec, p)).read_bytes() for p in first.files}
    assert stored == dict(first.files)
    check = verify_catalog(lake_spec, RELEASE)
    assert check.n_items == N_PAIRS


def test_no_time_of_building_in_the_files(lake_spec: StoreSpec) -> None:
    text = Path(_local(lake_spec, collection_path(RELEASE))).read_text()
    assert "created" not in json.loads(text) and "updated" not in text
    meta = pq.read_metadata(_local(lake_spec, stac_items_path(RELEASE))).metadata
    assert b"stac-geoparquet" in meta and b"geo" in meta


def test_constant_columns_are_marked(lake_spec: StoreSpec) -> None:
    schema = pq.read_schema(_local(lake_spec, stac_items_path(RELEASE)))
    constants = constants_of(schema)
    assert constants["type"] == "Feature" and constants["collection"] == "bigearthnet-v2"
    assert "href" not in constants["assets"]["s1"] and "bands" in constants["assets"]["s1"]
    table = pq.read_table(_local(lake_spec, stac_items_path(RELEASE)), columns=["stac_version"])
    assert set(table["stac_version"].to_pylist()) == {constants["stac_version"]}


def test_an_edited_catalog_file_is_reported_not_rewritten(
    lake_spec: StoreSpec, tmp_path_factory: pytest.TempPathFactory
) -> None:
    copy = tmp_path_factory.mktemp("tampered") / "lake"
    filesystem(lake_spec).cp(lake_spec.root, str(copy), recursive=True)
    spec = store_spec(str(copy), environ={})
    path = copy / collection_path(RELEASE)
    doc = json.loads(path.read_text())
    doc["title"] = "edited"
    path.write_text(json.dumps(doc))
    with pytest.raises(LayoutError, match="does not match the manifest"):
        verify_catalog(spec, RELEASE)
    assert json.loads(path.read_text())["title"] == "edited"  # left as it was


def test_a_catalog_that_would_change_is_refused(
    lake_spec: StoreSpec, tmp_path_factory: pytest.TempPathFactory
) -> None:
    copy = tmp_path_factory.mktemp("changed") / "lake"
    filesystem(lake_spec).cp(lake_spec.root, str(copy), recursive=True)
    spec = store_spec(str(copy), environ={})
    manifest_file = copy / "releases" / RELEASE / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    for o in manifest["objects"]:
        if o["path"] == collection_path(RELEASE):
            o["sha256"] = "0" * 64  # as if an older builder had written another collection
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(PublishConflict, match="would change") as info:
        verify_catalog(spec, RELEASE)
    assert isinstance(info.value, RuntimeError) and "immutable" in str(info.value)


def test_a_catalog_without_manifest_objects_has_no_file_fields(lake_spec: StoreSpec) -> None:
    patches = open_lake(lake_spec).current.patches()
    table = items_table(patches, RELEASE)
    assert "file:size" not in table.schema.field("assets").type.field("s1").type.names
    body = items_parquet(table)
    assert pq.read_table(pa.BufferReader(body)).num_rows == N_PAIRS

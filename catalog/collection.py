"""The collection of a release's S1/S2 pairs and the release's root catalog, as STAC dicts.

Both are computed from the Items table and the release's objects only: the extent and the
summaries come from the data, the table assets carry the manifest's sizes and checksums, and
every href is relative to ``stac/<release>/`` (no lake URL, no time of building).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from catalog.assets import TO_LAKE_ROOT, item_assets
from catalog.rows import resolve
from catalog.stac import (
    CATALOG_ID,
    COLLECTION_EXTENSIONS,
    COLLECTION_ID,
    LICENSE,
    LICENSE_URL,
    MEDIA_JSON,
    MEDIA_PARQUET,
    MEDIA_ZARR,
    PROVIDERS,
    SAR_FIELDS,
    STAC_VERSION,
)
from lake.bigearthnet import CLASSES_SORTED
from lake.config import StoreSpec
from lake.layout import (
    annotations_table_path,
    band_stats_path,
    patches_path,
    patches_table_path,
)
from lake.release import ObjectEntry
from lake.storage import storage_options

#: The asset field of the xarray-assets convention: ``xr.open_dataset(href, **open_kwargs)``.
XARRAY_OPEN_KWARGS = "xarray:open_kwargs"
#: How xarray opens the group: Zarr v3 without consolidated metadata (the group has none).
#: The xarray-assets extension's schema is not in the offline bundle, so the collection does
#: not declare it; core STAC allows the extra field (pystac exposes it in ``extra_fields``).
OPEN_KWARGS: Mapping[str, Any] = {"engine": "zarr", "consolidated": False, "zarr_format": 3}

#: Properties summarised as the sorted list of their distinct values.
_DISTINCT = (
    "split",
    "ml-aoi:split",
    "country",
    "season",
    "platform",
    "s1_platform",
    "constellation",
    "proj:code",
    "tile",
)


def _iso(value: Any) -> str:
    return str(value.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _distinct(column: pa.ChunkedArray) -> list[Any]:
    values = pc.unique(column).to_pylist()
    return sorted(v for v in values if v is not None)


def extent(items: pa.Table) -> dict[str, Any]:
    """Spatial (WGS 84 bbox) and temporal (first S1/S2 time to last) extent of the Items."""
    if items.num_rows == 0:
        return {
            "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [[None, None]]},
        }
    bbox = items["bbox"].combine_chunks()
    box = [
        float(pc.min(bbox.field("xmin")).as_py()),
        float(pc.min(bbox.field("ymin")).as_py()),
        float(pc.max(bbox.field("xmax")).as_py()),
        float(pc.max(bbox.field("ymax")).as_py()),
    ]
    start = pc.min(items["start_datetime"]).as_py()
    end = pc.max(items["end_datetime"]).as_py()
    return {"spatial": {"bbox": [box]}, "temporal": {"interval": [[_iso(start), _iso(end)]]}}


def band_summaries(band_stats: pa.Table) -> list[dict[str, Any]]:
    """The release's per-band statistics as STAC 1.1 ``bands`` with ``statistics`` objects.

    Args:
        band_stats: The ``stats/<release>/band_stats.parquet`` table (``lake pipeline stats``);
            its ``group_by == "all"`` rows are the statistics over the whole release.
    """
    rows = band_stats.filter(pc.equal(band_stats["group_by"], "all")).to_pylist()
    return [
        {
            "name": r["band"],
            "statistics": {
                "minimum": r["min"],
                "maximum": r["max"],
                "mean": r["mean"],
                "stddev": r["std"],
                "count": r["count"],
            },
        }
        for r in rows
    ]


def summaries(items: pa.Table, band_stats: pa.Table | None = None) -> dict[str, Any]:
    """What the Items hold: labels, countries, splits, seasons, platforms, projections, SAR.

    With ``band_stats`` (``lake pipeline stats``), also ``bands`` with their statistics.
    """
    out: dict[str, Any] = {}
    if items.num_rows:
        present = set(pc.unique(pc.list_flatten(items["labels"])).to_pylist())
        out["labels"] = [c for c in CLASSES_SORTED if c in present]
        out.update({name: _distinct(items[name]) for name in _DISTINCT})
        out["datetime"] = {
            "minimum": _iso(pc.min(items["datetime"]).as_py()),
            "maximum": _iso(pc.max(items["datetime"]).as_py()),
        }
        out["sample_index"] = {
            "minimum": int(pc.min(items["sample_index"]).as_py()),
            "maximum": int(pc.max(items["sample_index"]).as_py()),
        }
    out["instruments"] = ["msi", "c-sar"]
    out["gsd"] = [10.0, 20.0, 60.0]
    out.update({k: list(v) if isinstance(v, list) else [v] for k, v in SAR_FIELDS.items()})
    if band_stats is not None:
        out["bands"] = band_summaries(band_stats)
    return out


def _file_fields(entry: ObjectEntry | None) -> dict[str, Any]:
    if entry is None:
        return {}
    return {"file:size": entry.size, "file:checksum": "1220" + entry.sha256}


def table_assets(
    release: str, objects: Mapping[str, ObjectEntry] | None, items: ObjectEntry | None
) -> dict[str, dict[str, Any]]:
    """The collection's assets: the Zarr group, the Parquet tables and the Items themselves."""
    objects = objects or {}
    patches_file = f"{patches_table_path(release)}/part-0.parquet"
    out: dict[str, dict[str, Any]] = {
        "zarr": {
            "href": f"{TO_LAKE_ROOT}{patches_path(release)}",
            "type": MEDIA_ZARR,
            "title": "The release's Zarr v3 group (one row per pair along `sample`)",
            "roles": ["data"],
            XARRAY_OPEN_KWARGS: dict(OPEN_KWARGS),
        },
        "patches": {
            "href": TO_LAKE_ROOT + patches_file,
            "type": MEDIA_PARQUET,
            "title": "The patches table: one row per pair (GeoParquet)",
            "roles": ["metadata"],
            **_file_fields(objects.get(patches_file)),
        },
    }
    prefix = annotations_table_path(release) + "/"
    for path in sorted(p for p in objects if p.startswith(prefix) and p.endswith(".parquet")):
        part = path[len(prefix) :]
        split = part.split("/", 1)[0].removeprefix("split=")
        key = "annotations_" + split
        if key in out:
            key = "annotations_" + part.replace("/", "_").removesuffix(".parquet")
        out[key] = {
            "href": TO_LAKE_ROOT + path,
            "type": MEDIA_PARQUET,
            "title": f"BigEarthNet.txt rows of split {split} (hive-partitioned by split)",
            "roles": ["metadata"],
            **_file_fields(objects[path]),
        }
    stats_file = band_stats_path(release)
    if stats_file in objects:
        out["band_stats"] = {
            "href": TO_LAKE_ROOT + stats_file,
            "type": MEDIA_PARQUET,
            "title": "Per-band statistics: overall, per split, season and country (derived)",
            "roles": ["metadata"],
            **_file_fields(objects[stats_file]),
        }
    out["items"] = {
        "href": "./items.parquet",
        "type": MEDIA_PARQUET,
        "title": "Every Item of this collection as stac-geoparquet",
        "roles": ["stac-items"],
        **_file_fields(items),
    }
    return out


def located_assets(assets: Mapping[str, Any], spec: StoreSpec, base: str) -> dict[str, Any]:
    """The collection's assets as a client of the lake at ``spec`` uses them.

    Hrefs are made absolute against ``base`` (the URL of ``stac/<release>/``); on S3 the Zarr
    asset's ``xarray:open_kwargs`` gain the ``storage_options`` that reach the endpoint (endpoint,
    region, botocore settings) but never the credentials: a client brings its own (``AWS_*``
    variables or ``storage_options["key"/"secret"]``), so that
    ``xr.open_dataset(asset["href"], **asset["xarray:open_kwargs"])`` works unchanged.

    Args:
        assets: The ``assets`` of ``collection.json`` (hrefs relative to its folder).
        spec: The lake the collection belongs to.
        base: The folder URL to resolve relative hrefs against (ends with ``/``).
    """
    out: dict[str, Any] = {}
    for key, asset in assets.items():
        located = {**asset, "href": resolve(str(asset["href"]), base)}
        if XARRAY_OPEN_KWARGS in asset and spec.protocol == "s3":
            options = {k: v for k, v in storage_options(spec).items() if k not in ("key", "secret")}
            located[XARRAY_OPEN_KWARGS] = {
                **asset[XARRAY_OPEN_KWARGS],
                "storage_options": options,
            }
        out[key] = located
    return out


def collection_dict(
    items: pa.Table,
    release: str,
    *,
    objects: Mapping[str, ObjectEntry] | None = None,
    items_entry: ObjectEntry | None = None,
    band_stats: pa.Table | None = None,
) -> dict[str, Any]:
    """The STAC Collection of a release.

    Args:
        items: The Items table (:func:`catalog.items.items_table`).
        release: The release name.
        objects: The release's objects by path, for the table assets' sizes and checksums.
        items_entry: Size and checksum of ``items.parquet``.
        band_stats: The release's band statistics table, when it has one (summaries ``bands``).
    """
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": list(COLLECTION_EXTENSIONS),
        "id": COLLECTION_ID,
        "title": f"BigEarthNet v2.0 Sentinel-1/Sentinel-2 pairs (lake release {release})",
        "description": (
            "One Item per BigEarthNet v2.0 (reBEN) Sentinel-1/Sentinel-2 patch pair: 1.2 km x "
            "1.2 km in the UTM grid of the Sentinel-2 tile, with its 19-class labels, split, "
            "country and season. Assets point into the release's Zarr v3 group (`#sample=<i>` "
            "selects the pair's row along `sample`); hrefs are relative to this file's folder."
        ),
        "keywords": ["BigEarthNet", "Sentinel-1", "Sentinel-2", "land cover", "multi-label"],
        "license": LICENSE,
        "providers": [dict(p) for p in PROVIDERS],
        "extent": extent(items),
        "summaries": summaries(items, band_stats),
        "item_assets": item_assets(),
        "assets": table_assets(release, objects, items_entry),
        "links": [
            {"rel": "root", "href": "./catalog.json", "type": MEDIA_JSON},
            {"rel": "parent", "href": "./catalog.json", "type": MEDIA_JSON},
            {"rel": "license", "href": LICENSE_URL, "type": "text/html", "title": LICENSE},
            {"rel": "about", "href": "https://bigearth.net", "type": "text/html"},
        ],
    }


def catalog_dict(release: str) -> dict[str, Any]:
    """The root catalog of a release: a child link to its collection."""
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": CATALOG_ID,
        "title": f"BigEarthNet lake, release {release}",
        "description": (
            "The STAC catalog of one immutable release of a BigEarthNet lake; Items are in "
            "items.parquet (stac-geoparquet)."
        ),
        "links": [
            {"rel": "root", "href": "./catalog.json", "type": MEDIA_JSON},
            {"rel": "child", "href": "./collection.json", "type": MEDIA_JSON},
        ],
    }

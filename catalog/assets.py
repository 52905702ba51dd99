"""The assets of an Item: one per Zarr array of the patch group, pointing at the pair's sample.

An asset's ``href`` is the array inside the release's Zarr group plus a ``#sample=<i>`` selector
(the pair is row ``i`` along the array's ``sample`` dimension), relative to the folder of
``items.parquet`` so a lake can be copied elsewhere without rewriting its catalog; the search API
resolves it against the lake's URL. ``file:size`` and ``file:checksum`` describe the shard object
that holds the sample (``bigearthnet:shard_object``), as listed in the release manifest.
Stored hrefs are relative (stac-geoparquet Items carry no self link); :func:`catalog.search`
and the API hand them out absolute, so clients need nothing else to resolve them.

Every asset carries its own grid, ``proj:shape`` and ``proj:transform`` at its resolution (10, 20,
60 m; S1 and the reference map on the 10 m grid), beside the Item's ``proj:epsg``/``proj:code``:
that is what stackstac and odc-stac build a cube from. The bands are STAC 1.1 ``bands`` (eo and
raster v2.0.0), not the v1 ``eo:bands``/``raster:bands``: odc-stac 0.5 reads ``bands`` (and
``raster:bands`` only as a fallback), while stackstac 0.5.1 models one band per asset and raises
on a ``raster:bands`` of more than one entry ("Multi-band rasters are not currently supported"),
which every multi-band asset here would have; for the single-band reference map the v1 fields
would hold nothing stackstac uses (no scale, offset or spectral name).
"""

from __future__ import annotations

from typing import Any

from catalog.stac import MEDIA_ZARR, SAR_FIELDS
from lake.bigearthnet import ARRAYS, S2_BAND_INFO, ArraySpec
from lake.layout import patches_path

#: From the folder of ``stac/<release>/items.parquet`` to the lake root.
TO_LAKE_ROOT = "../../"

_TITLES = {
    "s2_10m": "Sentinel-2 L2A bands at 10 m (B02 B03 B04 B08)",
    "s2_20m": "Sentinel-2 L2A bands at 20 m (B05 B06 B07 B8A B11 B12)",
    "s2_60m": "Sentinel-2 L2A bands at 60 m (B01 B09)",
    "s1": "Sentinel-1 GRD backscatter (VV VH, dB)",
    "reference_map": "CORINE Land Cover 2018 level-3 code per pixel",
}


def _bands(spec: ArraySpec) -> list[dict[str, Any]]:
    if spec.name == "s1":
        return [
            {"name": b, "description": f"{b} backscatter in dB", "sar:polarizations": [b]}
            for b in spec.bands
        ]
    return [
        {
            "name": b,
            "eo:common_name": S2_BAND_INFO[b][1],
            "eo:center_wavelength": S2_BAND_INFO[b][0],
        }
        for b in spec.bands
    ]


def asset_template(spec: ArraySpec) -> dict[str, Any]:
    """The fields of an array's asset that are the same in every Item (its ``item_assets``)."""
    out: dict[str, Any] = {
        "title": _TITLES[spec.name],
        "type": MEDIA_ZARR,
        "roles": ["data", "labels"] if spec.name == "reference_map" else ["data"],
        "gsd": float(spec.resolution_m),
        "data_type": spec.dtype,
        "proj:shape": [spec.size, spec.size],
        "raster:spatial_resolution": float(spec.resolution_m),
        "ml-aoi:role": "label" if spec.name == "reference_map" else "feature",
    }
    if spec.bands:
        out["bands"] = _bands(spec)
    if spec.nodata is not None:
        out["nodata"] = int(spec.nodata)
    if spec.name.startswith("s2_"):
        out["raster:scale"] = 0.0001  # L2A reflectance x 10,000
    if spec.name == "s1":
        out["unit"] = "dB"
        out["constellation"] = "sentinel-1"
        out["instruments"] = ["c-sar"]
        out["sar:polarizations"] = list(SAR_FIELDS["sar:polarizations"])
    if spec.name == "s2_10m":
        out["ml-aoi:reference-grid"] = True
    return out


def item_assets() -> dict[str, dict[str, Any]]:
    """The collection's ``item_assets``: the fixed part of every Item's assets."""
    return {a.name: asset_template(a) for a in ARRAYS}


def array_href(release: str, array: str) -> str:
    """The href of an array of the release's group, relative to ``stac/<release>/``."""
    return f"{TO_LAKE_ROOT}{patches_path(release)}/{array}"

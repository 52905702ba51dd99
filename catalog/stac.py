"""The fixed vocabulary of the lake's STAC catalog: versions, extensions, ids, media types.

Every Item, the collection and the root catalog are built from these constants, so the files
of a release depend only on the release's data (no dates of "now", no lake URL).
"""

from __future__ import annotations

from typing import Any, Final

STAC_VERSION: Final = "1.1.0"

#: The collection of S1/S2 pairs (one per lake release; its id is the same in every release).
COLLECTION_ID: Final = "bigearthnet-v2"
#: The root catalog of a release.
CATALOG_ID: Final = "bigearthnet-lake"

EXT_EO: Final = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
EXT_RASTER: Final = "https://stac-extensions.github.io/raster/v2.0.0/schema.json"
#: Projection v1.2.0, not v2.0.0: v1.2.0 defines both ``proj:code`` (the current field) and
#: ``proj:epsg`` (deprecated, but the only CRS field stackstac 0.5.1 reads, and the one odc-stac
#: and GDAL's STAC readers fall back to), while v2.0.0 forbids any ``proj:*`` field it does not
#: define (``additionalProperties: false``), so an Item carrying both would not validate against
#: it. pystac's migration (``Item.from_dict(..., migrate=True)``, the default of
#: ``pystac_client``'s ``items()``/``item_collection()``) rewrites v1 Items to v2 and drops
#: ``proj:epsg`` (pystac's ``ProjectionExtensionHooks.migrate``; stackstac issue #262): read the
#: Items as dicts (``items_as_dicts()``, :func:`catalog.search`, which builds its Items with
#: ``migrate=False``) when stackstac must find the CRS, or pass it ``epsg=``.
EXT_PROJECTION: Final = "https://stac-extensions.github.io/projection/v1.2.0/schema.json"
EXT_SAR: Final = "https://stac-extensions.github.io/sar/v1.3.0/schema.json"
EXT_FILE: Final = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
EXT_ML_AOI: Final = "https://stac-extensions.github.io/ml-aoi/v0.2.0/schema.json"

#: Extensions every Item declares (all of them are in the offline schema bundle).
ITEM_EXTENSIONS: Final = (EXT_EO, EXT_RASTER, EXT_PROJECTION, EXT_SAR, EXT_FILE, EXT_ML_AOI)
#: Extensions without ``file`` for items of a catalog built without the release manifest.
ITEM_EXTENSIONS_NO_FILE: Final = tuple(e for e in ITEM_EXTENSIONS if e != EXT_FILE)
COLLECTION_EXTENSIONS: Final = ITEM_EXTENSIONS

MEDIA_ZARR: Final = "application/vnd+zarr"
MEDIA_PARQUET: Final = "application/vnd.apache.parquet"
MEDIA_JSON: Final = "application/json"
MEDIA_GEOJSON: Final = "application/geo+json"

#: BigEarthNet v2.0 (reBEN) is released under the Community Data License Agreement.
LICENSE: Final = "CDLA-Permissive-1.0"
LICENSE_URL: Final = "https://cdla.dev/permissive-1-0/"

PROVIDERS: Final[tuple[dict[str, Any], ...]] = (
    {
        "name": "BIFOLD / TU Berlin (Remote Sensing Image Analysis group)",
        "roles": ["producer", "licensor"],
        "url": "https://bigearth.net",
    },
    {
        "name": "European Space Agency (Copernicus Sentinel-1 and Sentinel-2)",
        "roles": ["producer"],
        "url": "https://sentinels.copernicus.eu",
    },
    {
        "name": "bigearthnet-lake",
        "roles": ["processor", "host"],
        "description": "Zarr v3 patches, Parquet tables and this catalog, built by `lake ingest`.",
    },
)

#: Sentinel-1 C-band SAR facts shared by every pair (IW mode, GRD, dual polarisation).
SAR_FIELDS: Final[dict[str, Any]] = {
    "sar:instrument_mode": "IW",
    "sar:frequency_band": "C",
    "sar:center_frequency": 5.405,
    "sar:polarizations": ["VV", "VH"],
    "sar:product_type": "GRD",
}

#: The ml-aoi extension spells the validation split ``validate``.
ML_AOI_SPLIT: Final = {"train": "train", "validation": "validate", "test": "test"}


def platform_name(code: str) -> str:
    """STAC platform of a BigEarthNet name prefix (``S2A`` -> ``sentinel-2a``)."""
    return f"sentinel-{code[1]}{code[2:].lower()}"

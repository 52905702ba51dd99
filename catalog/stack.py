"""STAC search results of a lake as one lazy xarray cube, the way stackstac hands back a cube.

``stackstac.stack`` and ``odc.stac.load`` understand the lake's Items (``proj:epsg`` and
``proj:code``, ``proj:shape``/``proj:transform`` per asset, ``bands``) and build their lazy cubes
from them, but they read every asset through GDAL, one raster per asset, and an asset here is one
row (``#sample=<i>``) of a sharded Zarr v3 array: GDAL 3.10 cannot decode the
``sharding_indexed`` codec (GDAL 3.13+ reads a lake ingested with the portable codecs, the
``--codecs portable`` of ``lake ingest``), nor select a row by fragment. :func:`stack` reads the
same Items through zarr instead, with the lake's own chunk checks, and hands back what stackstac
would: one dask-backed variable per array (``s2_10m``, ``s2_20m``, ``s2_60m``, ``s1``,
``reference_map``) with ``patch_id`` as the leading, indexed dimension and the Items' metadata as
coordinates along it.

Example:
    >>> import catalog
    >>> items = catalog.search("./lake-data", filter="country = 'Austria'", limit=50)
    >>> cube = catalog.stack(items)  # doctest: +SKIP
    >>> cube["s2_10m"].sel(s2_10m_band="B04").mean(["y_10m", "x_10m"]).compute()  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from catalog.rows import resolve
from lake.bigearthnet import ARRAYS, CLASSES_SORTED
from lake.config import StoreSpec, as_spec
from lake.errors import ConfigError, LayoutError
from lake.patchstore import checked_store
from lake.reader import multi_hot
from lake.release import resolve_release

if TYPE_CHECKING:
    import xarray as xr

#: Item properties that become coordinates along ``patch_id`` (when every Item has them).
PROPERTY_COORDS = (
    "datetime",
    "start_datetime",
    "end_datetime",
    "platform",
    "s1_platform",
    "split",
    "country",
    "season",
    "tile",
    "s1_name",
    "sample_index",
    "shard",
    "proj:epsg",
)
_TIMES = ("datetime", "start_datetime", "end_datetime")
#: ``<lake root>/patches/<release>.zarr/<array>``: where an asset href points.
_HREF = re.compile(r"^(?P<root>.+)/patches/(?P<release>[^/]+)\.zarr/(?P<array>[^/#]+)$")


def _as_dicts(items: Any) -> list[dict[str, Any]]:
    """Items (ItemCollection, pystac Items, dicts, a FeatureCollection dict) as dicts.

    pystac Items keep their hrefs absolute (``get_absolute_href``), so relative hrefs of an Item
    read from a file resolve against its self link.
    """
    import pystac

    if isinstance(items, Mapping) and items.get("type") == "FeatureCollection":
        items = items.get("features", [])
    if isinstance(items, Mapping | str | bytes):
        raise ConfigError(
            "stack(items): pass an ItemCollection, a list of pystac Items or Item dicts, or a "
            f"FeatureCollection dict, not a {type(items).__name__}"
        )
    out: list[dict[str, Any]] = []
    for position, item in enumerate(items):
        if isinstance(item, pystac.Item):
            doc = item.to_dict(include_self_link=False, transform_hrefs=False)
            for key, asset in item.assets.items():
                doc["assets"][key]["href"] = asset.get_absolute_href() or asset.href
            out.append(doc)
        elif isinstance(item, Mapping) and item.get("type") == "Feature":
            out.append(dict(item))
        else:
            raise ConfigError(
                f"stack(items): item {position} is a {type(item).__name__}, not a STAC Item "
                "(a pystac.Item or a dict with type 'Feature')"
            )
    return out


def _locate(item: Mapping[str, Any], lake: StoreSpec | None) -> tuple[str, str, int]:
    """The lake root URL, the release and the sample of an Item (from its assets' hrefs).

    Raises:
        ConfigError: The Item has no lake asset, or a relative href and no ``lake``.
    """
    assets = item.get("assets") or {}
    key = next((a.name for a in ARRAYS if a.name in assets), None)
    if key is None:
        raise ConfigError(
            f"stack(items): item {item.get('id')!r} has none of the lake's assets "
            f"({', '.join(a.name for a in ARRAYS)}); search without a fields selection that "
            "drops them"
        )
    href = str(assets[key]["href"])
    if "://" not in href and not href.startswith("/"):
        if lake is None:
            raise ConfigError(
                f"stack(items): item {item.get('id')!r} has a relative href {href!r}; pass "
                "lake= (the lake the Items come from) or Items with absolute hrefs"
            )
        href = resolve(href, f"{lake.url.rstrip('/')}/stac/_/")
    path, _, fragment = href.partition("#")
    match = _HREF.match(path)
    sample = (item.get("properties") or {}).get("sample_index")
    if sample is None and fragment.startswith("sample="):
        sample = int(fragment.removeprefix("sample="))
    if match is None or sample is None:
        raise ConfigError(
            f"stack(items): item {item.get('id')!r}: asset {key!r} href {href!r} is not a row "
            "of a lake's patch group (<lake>/patches/<release>.zarr/<array>#sample=<i>)"
        )
    root = match["root"]
    if root.startswith("/"):
        root = "file://" + root
    return root, match["release"], int(sample)


def _time(value: Any) -> np.datetime64:
    """An RFC 3339 time as a naive UTC ``datetime64[ns]`` (what xarray and stackstac use)."""
    stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(stamp, "ns")


def _coords(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Coordinates along ``patch_id`` from the Items' properties."""
    props = [i.get("properties") or {} for i in items]
    coords: dict[str, Any] = {}
    for name in PROPERTY_COORDS:
        if not all(name in p and p[name] is not None for p in props):
            continue
        values = [p[name] for p in props]
        out = "epsg" if name == "proj:epsg" else name
        if name in _TIMES:
            coords[out] = ("patch_id", np.array([_time(v) for v in values]))
        else:
            coords[out] = ("patch_id", np.array(values))
    if "epsg" not in coords and all("proj:code" in p for p in props):
        codes = [str(p["proj:code"]) for p in props]
        if all(c.startswith("EPSG:") for c in codes):
            coords["epsg"] = ("patch_id", np.array([int(c[5:]) for c in codes]))
    if all("labels" in p for p in props):
        labels = pa.array([list(p["labels"]) for p in props], pa.list_(pa.string()))
        coords["labels"] = (("patch_id", "label"), multi_hot(labels))
        coords["label"] = ("label", np.array(CLASSES_SORTED))
    if all(len(p.get("proj:transform") or ()) >= 6 for p in props):
        transform = np.array([list(p["proj:transform"])[:6] for p in props], dtype=np.float64)
        coords["transform"] = (("patch_id", "affine"), transform)
    return coords


def stack(
    items: Iterable[Any],
    *,
    lake: str | StoreSpec | None = None,
    chunks: int = 64,
    **s3: Any,
) -> xr.Dataset:
    """The pairs of STAC Items of a lake as one lazy :class:`xarray.Dataset`, read through zarr.

    Args:
        items: A search's results: a pystac ItemCollection (:func:`catalog.search`,
            ``pystac_client``), pystac Items, Item dicts, or a FeatureCollection dict. Every Item
            must belong to the same release of the same lake; the order is kept.
        lake: The lake the Items come from (URL or spec), for its S3 endpoint and credentials
            and to resolve relative hrefs; None: the lake their absolute hrefs name, opened
            with ``**s3`` or the ``AWS_*`` variables.
        chunks: Pairs per dask chunk (each chunk reads only its pairs' chunks of the shard
            objects, by byte range).
        **s3: ``endpoint_url``, ``key``, ``secret``, ``region`` (see :func:`lake.open_lake`).

    Returns:
        One variable per array: ``s2_10m`` ``(patch_id, s2_10m_band, y_10m, x_10m)`` uint16,
        ``s2_20m``, ``s2_60m``, ``s1`` (float32, dB) and ``reference_map``
        ``(patch_id, y_10m, x_10m)``; coordinates along ``patch_id`` (the index): the Items'
        ``datetime``, ``start_datetime``, ``end_datetime``, ``platform``, ``split``,
        ``country``, ``season``, ``tile``, ``s1_name``, ``sample_index``, ``shard``, ``epsg``,
        ``transform`` (the 10 m grid's affine, rasterio order) and ``labels`` (multi-hot over
        ``label``), where every Item has them.

    Raises:
        ConfigError: No Items, something that is not an Item, a duplicate id, Items of two lakes
            or releases, a relative href without ``lake``, or ``chunks`` < 1.
        ReleaseNotFound: The Items' release is not published in the lake.
    """
    import xarray as xr

    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
        raise ConfigError(f"stack(chunks={chunks!r}): give a positive number of pairs per chunk")
    docs = _as_dicts(items)
    if not docs:
        raise ConfigError("stack(items): no Items (the search found nothing?)")
    given = as_spec(lake, **s3) if lake is not None else None
    places = [_locate(d, given) for d in docs]
    ids = [str(d.get("id")) for d in docs]
    seen: set[str] = set()
    for item_id in ids:
        if item_id in seen:
            raise ConfigError(f"stack(items): item {item_id!r} is there twice; pass each once")
        seen.add(item_id)
    root, release, _ = places[0]
    for item_id, (other_root, other_release, _) in zip(ids, places, strict=True):
        if (other_root, other_release) != (root, release):
            raise ConfigError(
                f"stack(items): item {item_id!r} is in release {other_release!r} of "
                f"{other_root}, the first one in release {release!r} of {root}; stack the "
                "Items of one release at a time"
            )
    spec = given if given is not None else as_spec(root, **s3)
    if given is not None and given.url.rstrip("/") != root.rstrip("/"):
        raise ConfigError(
            f"stack(lake={given.url!r}): the Items point into another lake ({root}); pass "
            "that lake or lake=None"
        )
    resolve_release(spec, release)
    ds = xr.open_zarr(checked_store(spec, release), consolidated=False, chunks=None, zarr_format=3)
    n = ds.sizes["sample"]
    index = np.array([p[2] for p in places], dtype=np.int64)
    if index.min() < 0 or index.max() >= n:
        bad = ids[int(np.argmax((index < 0) | (index >= n)))]
        raise LayoutError(
            f"item {bad!r} names a sample outside release {release!r} ({n} pairs): the Items "
            "do not belong to this release of the lake"
        )
    ds = ds[[a.name for a in ARRAYS]].isel(sample=index)
    ds = ds.chunk({"sample": chunks})
    ds = ds.assign_coords(patch_id=("sample", np.array(ids))).swap_dims(sample="patch_id")
    return ds.assign_coords(_coords(docs))

"""Synthetic Sentinel-2 L2A scenes on real MGRS grids, as the public STAC catalogues publish them.

What the time-series job (:mod:`pipelines.jobs.timeseries`) reads, made offline: its tests, its
benchmark and ``notebooks/07-timeseries`` cut BigEarthNet patches from these scenes served by
:class:`pipelines.local.stac.StacServer` (``rustac serve`` on loopback) exactly as they would from
Earth Search or the Planetary Computer.

:func:`write_scene` writes one scene: a window of a few km of a real MGRS tile, in the tile's
UTM zone and on its pixel grid (10, 20, 60 m pixels aligned to the 100 km MGRS square, so to the
BigEarthNet patch grid), as Cloud-Optimized GeoTIFFs (uint16, nodata 0; 13 band files and the
scene classification ``SCL``), and returns its STAC Item with the assets under BOTH public
catalogues' keys (Planetary Computer ``B01..B12, B8A, SCL``; Earth Search ``coastal, blue, ...,
scl``), ``proj:epsg`` and per-asset ``proj:transform`` / ``proj:shape`` as they publish them,
``s2:processing_baseline`` and ``eo:cloud_cover``.

Every pixel is a known function of (scene, band, absolute pixel position) and, for a scene with
a ``greenness``, of that vegetation state: :func:`expected` says exactly what a patch cut from the
scene must hold. Without a greenness the values are a hash-like pattern (1..9000, good for
bit-exact checks); with one (0..1, e.g. :func:`seasonal_greenness` of the date) they are a
plausible surface between bare soil and full vegetation, so RGB images look like land and the
NDVI follows the season. Scenes of baseline 04.00 and later store the values + 1000, as ESA
does since January 2022. Real BigEarthNet bands can be embedded at their own georeference
(``embed``), so a real patch must come back bit for bit.

Example:
    >>> scenes = scenes_around(patches, dates, Path("scenes"), greenness=seasonal_greenness)
    ... # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from pyproj import Transformer
from rasterio.io import MemoryFile

from lake.bigearthnet import S2_BANDS
from pipelines.sources.scenes import EARTH_SEARCH_KEYS

COLLECTION = "sentinel-2-l2a"
#: Pixel size of each band (and of SCL).
RESOLUTION: Mapping[str, int] = {
    **{b: 10 for b in ("B02", "B03", "B04", "B08")},
    **{b: 20 for b in ("B05", "B06", "B07", "B8A", "B11", "B12")},
    **{b: 60 for b in ("B01", "B09")},
    "SCL": 20,
}
_BAND_NUMBER = {b: i for i, b in enumerate((*S2_BANDS, "SCL"))}
#: SCL classes the generator draws from: vegetation, bare, water, cloud shadow, cloud (high).
SCL_CYCLE = np.array([4, 5, 6, 4, 3, 5, 9, 4, 8, 6, 10], np.uint8)


#: Bare soil and full vegetation, DN per band (L2A reflectance x 10,000, typical spectra): a
#: scene with a greenness g holds soil + (vegetation - soil) x g (x the field's share), + texture.
SOIL: Mapping[str, int] = {
    "B01": 1200, "B02": 1000, "B03": 1300, "B04": 1600, "B05": 1800, "B06": 1900,
    "B07": 2000, "B08": 2100, "B8A": 2200, "B09": 600, "B11": 2800, "B12": 2300,
}  # fmt: skip
VEGETATION: Mapping[str, int] = {
    "B01": 300, "B02": 250, "B03": 600, "B04": 250, "B05": 900, "B06": 2800,
    "B07": 3400, "B08": 3800, "B8A": 3900, "B09": 1000, "B11": 1600, "B12": 700,
}  # fmt: skip
#: Fields of a vegetated scene: 240 x 180 m blocks whose vegetation is 60, 80 or 100 % of g.
_FIELD_SHARE = np.array([6, 8, 10], np.int64)


def value(
    scene: int,
    band: str,
    col: np.ndarray,
    row: np.ndarray,
    greenness: float | None = None,
) -> np.ndarray:
    """The harmonised DN of a band at absolute pixel (col, row) = (easting, northing) // res.

    Args:
        scene: The scene's index.
        band: The ESA band name.
        col: Absolute pixel columns.
        row: Absolute pixel rows (northing // res).
        greenness: The scene's vegetation state (0: bare soil, 1: full vegetation), or None for
            the hash-like pattern of the bit-exact tests.

    Returns:
        uint16 values, never 0 (nodata) and below 10,000.

    Raises:
        ValueError: ``greenness`` outside 0..1.
    """
    k = _BAND_NUMBER[band]
    if greenness is None:
        v = (col * 7 + row * 13 + k * 1009 + scene * 4093) % 9000 + 1
        return np.asarray(v, dtype=np.uint16)
    if not 0.0 <= greenness <= 1.0:
        raise ValueError(f"greenness={greenness!r}: use a value from 0 (bare) to 1 (vegetation)")
    c, r = np.asarray(col, np.int64), np.asarray(row, np.int64)
    metres = RESOLUTION[band]
    x, y = c * metres, r * metres
    share = _FIELD_SHARE[(x // 240 * 2 + y // 180) % len(_FIELD_SHARE)]
    g = round(greenness * 1000) * share // 10  # per mille
    texture = (c * 7 + r * 13 + scene * 31) % 200
    v = SOIL[band] + (VEGETATION[band] - SOIL[band]) * g // 1000 + texture + 1
    return np.asarray(v, dtype=np.uint16)


def seasonal_greenness(patch: int, when: datetime) -> float:
    """A growing season of the northern hemisphere for ``scenes_around(greenness=...)``.

    Bare (0.05) outside the season, a bell of about three months around the peak: the peak day
    (day 175, 195 or 215 of the year) and the peak's height (0.9, 0.6, 0.75, 0.45) change with
    the patch, so a few patches differ.

    Args:
        patch: The patch's position in ``scenes_around``'s list.
        when: The acquisition time.

    Returns:
        The greenness, 0.05 up to the patch's peak.
    """
    peak_day = 175 + 20 * (patch % 3)
    high = (0.9, 0.6, 0.75, 0.45)[patch % 4]
    days = (when.timetuple().tm_yday - peak_day + 182) % 365 - 182  # wrapped to -182..182
    return 0.05 + (high - 0.05) * math.exp(-((days / 45) ** 2))


def scl_value(scene: int, col: np.ndarray, row: np.ndarray) -> np.ndarray:
    """The SCL class at absolute 20 m pixel (col, row)."""
    return SCL_CYCLE[(col // 3 + row // 2 + scene) % len(SCL_CYCLE)]


def expected(
    scene: int,
    band: str,
    bounds: Sequence[float],
    *,
    nodata_east_of: float | None = None,
    greenness: float | None = None,
) -> np.ndarray:
    """What a cut of ``bounds`` (xmin, ymin, xmax, ymax) from a generated scene holds.

    Args:
        scene: The scene's index.
        band: An ESA band name or ``SCL``.
        bounds: The cut, in the scene's CRS (multiples of the band's pixel size).
        nodata_east_of: The scene's swath edge (0 east of it), or None.
        greenness: The scene's vegetation state, or None (see :func:`value`).
    """
    res = RESOLUTION[band]
    xmin, ymin, xmax, ymax = (int(b) for b in bounds)
    cols = np.arange(xmin // res, xmax // res)
    rows = np.arange(ymax // res - 1, ymin // res - 1, -1)
    c, r = np.meshgrid(cols, rows)
    out = scl_value(scene, c, r) if band == "SCL" else value(scene, band, c, r, greenness)
    if nodata_east_of is not None:
        out = np.where(c * res >= nodata_east_of, 0, out).astype(out.dtype)
    return out


@dataclass(frozen=True)
class Scene:
    """One generated scene.

    Attributes:
        index: Its number (enters every pixel value).
        tile: The MGRS tile (``33UUP``).
        epsg: The tile's UTM zone.
        bounds: The window ``(xmin, ymin, xmax, ymax)``, multiples of 60 m.
        when: Its acquisition time (UTC).
        baseline: ``s2:processing_baseline`` (``"05.09"``: DNs stored + 1000).
        cloud_cover: ``eo:cloud_cover`` (percent).
        nodata_east_of: Easting from which the scene has no data (its swath edge), or None.
        greenness: Its vegetation state (0..1) for plausible values, or None (see :func:`value`).
    """

    index: int
    tile: str
    epsg: int
    bounds: tuple[float, float, float, float]
    when: datetime
    baseline: str = "02.14"
    cloud_cover: float = 10.0
    nodata_east_of: float | None = None
    greenness: float | None = None

    @property
    def id(self) -> str:
        """An ESA-like product id."""
        stamp = self.when.strftime("%Y%m%dT%H%M%S")
        baseline = self.baseline.replace(".", "")
        return f"S2B_MSIL2A_{stamp}_N{baseline}_R022_T{self.tile}_{self.index:03d}"

    @property
    def offset(self) -> int:
        """What the stored DNs add to :func:`value` (1000 from baseline 04.00)."""
        major, minor = (int(x) for x in self.baseline.split("."))
        return 1000 if (major, minor) >= (4, 0) else 0


def window_around(
    bounds: Sequence[Sequence[float]], margin: float = 1200.0
) -> tuple[float, float, float, float]:
    """A window holding every bounds (same CRS) plus ``margin``, snapped out to 60 m."""
    b = np.asarray(bounds, dtype=np.float64)
    xmin, ymin = b[:, 0].min() - margin, b[:, 1].min() - margin
    xmax, ymax = b[:, 2].max() + margin, b[:, 3].max() + margin
    return (
        float(np.floor(xmin / 60) * 60),
        float(np.floor(ymin / 60) * 60),
        float(np.ceil(xmax / 60) * 60),
        float(np.ceil(ymax / 60) * 60),
    )


def _write_cog(path: Path, data: np.ndarray, transform: Affine, epsg: int) -> None:
    """A Cloud-Optimized GeoTIFF (GDAL's COG driver; deflate, 256 px blocks, nodata 0)."""
    profile = {
        "driver": "GTiff",
        "height": data.shape[0],
        "width": data.shape[1],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": f"EPSG:{epsg}",
        "transform": transform,
        "nodata": 0,
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data, 1)
        with mem.open() as src:
            rasterio.shutil.copy(src, str(path), driver="COG", compress="DEFLATE", blocksize=256)


def write_scene(
    scene: Scene,
    folder: Path,
    *,
    embed: Mapping[str, tuple[np.ndarray, Affine]] | None = None,
    keys: str = "both",
) -> dict[str, Any]:
    """Write a scene's COGs under ``folder/<id>/`` and return its STAC Item (a dict).

    Args:
        scene: The scene.
        folder: Where its folder goes.
        embed: Band -> (values, transform): real pixels pasted at their georeference (stored
            as they are, plus the scene's offset).
        keys: ``both``, ``earth-search`` or ``planetary-computer``: which asset keys the Item has.
    """
    out = folder / scene.id
    out.mkdir(parents=True, exist_ok=True)
    xmin, ymin, xmax, ymax = scene.bounds
    assets: dict[str, Any] = {}
    for band in (*S2_BANDS, "SCL"):
        res = RESOLUTION[band]
        data = expected(
            scene.index,
            band,
            scene.bounds,
            nodata_east_of=scene.nodata_east_of,
            greenness=scene.greenness,
        )
        if band != "SCL" and scene.offset:
            data = np.where(data > 0, data + scene.offset, 0).astype(np.uint16)
        transform = Affine(res, 0.0, xmin, 0.0, -res, ymax)
        if embed and band in embed:
            values, where = embed[band]
            c0, r0 = round((where.c - xmin) / res), round((ymax - where.f) / res)
            h, w = values.shape
            data[r0 : r0 + h, c0 : c0 + w] = values
        path = out / f"{band}.tif"
        _write_cog(
            path, data.astype(np.uint8 if band == "SCL" else np.uint16), transform, scene.epsg
        )
        asset = {
            "href": str(path),
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "proj:shape": list(data.shape),
            "proj:transform": [res, 0.0, xmin, 0.0, -res, ymax],
            "proj:epsg": scene.epsg,
        }
        if keys in ("both", "planetary-computer"):
            assets[band] = asset
        if keys in ("both", "earth-search"):
            assets[EARTH_SEARCH_KEYS[band]] = dict(asset)
    to_wgs84 = Transformer.from_crs(scene.epsg, 4326, always_xy=True)
    ring = [(xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax), (xmin, ymin)]
    lon, lat = to_wgs84.transform([p[0] for p in ring], [p[1] for p in ring])
    coords = [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]
    return {
        "type": "Feature",
        # As Earth Search and the Planetary Computer publish them: STAC 1.0.0 with projection
        # 1.x (``proj:epsg``, which stackstac 0.5 and odc-stac read; projection 2.0 drops it).
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
        ],
        "id": scene.id,
        "collection": COLLECTION,
        "geometry": {"type": "Polygon", "coordinates": [coords]},
        "bbox": [min(lon), min(lat), max(lon), max(lat)],
        "properties": {
            "datetime": scene.when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "platform": "sentinel-2b",
            "proj:epsg": scene.epsg,
            "s2:mgrs_tile": scene.tile,
            "s2:processing_baseline": scene.baseline,
            "eo:cloud_cover": scene.cloud_cover,
        },
        "links": [],
        "assets": assets,
    }


def write_catalogue(items: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """The items as one FeatureCollection JSON file (what ``rustac serve`` loads)."""
    path.write_text(json.dumps({"type": "FeatureCollection", "features": list(items)}))
    return path


@dataclass(frozen=True)
class SceneSet:
    """Scenes written around some patches, and their items.

    Attributes:
        scenes: By id.
        items: Their STAC Items (dicts), in writing order.
        catalogue: The FeatureCollection file.
    """

    scenes: dict[str, Scene]
    items: list[dict[str, Any]]
    catalogue: Path


def scenes_around(
    patches: Sequence[tuple[str, int, Sequence[float]]],
    dates: Sequence[datetime],
    folder: Path,
    *,
    baselines: Sequence[str] | None = None,
    cloud_cover: Sequence[float] | None = None,
    nodata_east_of: Mapping[tuple[int, int], float] | None = None,
    keys: Sequence[str] | None = None,
    greenness: Callable[[int, datetime], float] | None = None,
    margin: float = 1200.0,
) -> SceneSet:
    """One scene per (date, patch) window: the patch plus ``margin`` m on each side.

    Args:
        patches: ``(tile, epsg, bounds)`` of each patch (from the lake's ``patches`` table).
        dates: The acquisition times (one per date).
        folder: Where the scenes go.
        baselines: Each date's processing baseline (default ``02.14``).
        cloud_cover: Each date's ``eo:cloud_cover`` (default 10).
        nodata_east_of: ``(date, patch)`` -> the easting where that scene's data ends.
        keys: Each date's asset keys (``both``, ``earth-search``, ``planetary-computer``).
        greenness: ``(patch, date) -> 0..1``: plausible values with that vegetation state (e.g.
            :func:`seasonal_greenness`); None: the hash-like pattern of the bit-exact tests.
        margin: Metres of scene around each patch (snapped out to 60 m; less is faster).
    """
    scenes: dict[str, Scene] = {}
    items: list[dict[str, Any]] = []
    for d, when in enumerate(dates):
        for p, (tile, epsg, bounds) in enumerate(patches):
            scene = Scene(
                index=d * len(patches) + p,
                tile=tile,
                epsg=epsg,
                bounds=window_around([bounds], margin),
                when=when,
                baseline=baselines[d] if baselines else "02.14",
                cloud_cover=cloud_cover[d] if cloud_cover else 10.0,
                nodata_east_of=(nodata_east_of or {}).get((d, p)),
                greenness=None if greenness is None else greenness(p, when),
            )
            scenes[scene.id] = scene
            items.append(write_scene(scene, folder, keys=keys[d] if keys else "both"))
    return SceneSet(scenes, items, write_catalogue(items, folder / "items.json"))

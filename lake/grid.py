"""Georeferencing of BigEarthNet patches: the UTM zone of the tile and the 1200 m patch grid.

A patch's upper-left corner is ``(tile x_min + 1200 x, tile y_max - 1200 y)``, where
``(x_min, y_max)`` is the upper-left corner of the 109.8 km Sentinel-2 tile, which is the
upper-left corner of its 100 km MGRS square. We compute the square from its letters (standard
MGRS lettering, WGS 84) instead of a lookup table, so every tile of the grid works.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from affine import Affine
from pyproj import Transformer

from lake.errors import BadInput

PATCH_METRES = 1200
TILE_METRES = 109_800
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # MGRS letters: no I, no O
_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"
_BANDS = "CDEFGHJKLMNPQRSTUVWX"  # latitude bands, 8 degrees each from 80 S (X is 12)


@dataclass(frozen=True)
class TileGrid:
    """The UTM frame of one MGRS tile.

    Attributes:
        tile: The tile name (``33UUP``).
        epsg: EPSG code of its UTM zone (northern hemisphere: 326zz).
        x_min: Easting of the tile's upper-left corner, in metres.
        y_max: Northing of the tile's upper-left corner, in metres.
    """

    tile: str
    epsg: int
    x_min: int
    y_max: int

    def patch_origin(self, x: int, y: int) -> tuple[int, int]:
        """Upper-left corner (easting, northing) of patch column ``x``, row ``y``."""
        return self.x_min + PATCH_METRES * x, self.y_max - PATCH_METRES * y

    def patch_transform(self, x: int, y: int, resolution: int) -> Affine:
        """Affine transform of patch (x, y) at the given pixel size in metres."""
        ulx, uly = self.patch_origin(x, y)
        return Affine(resolution, 0.0, ulx, 0.0, -resolution, uly)

    def patch_bounds(self, x: int, y: int) -> tuple[int, int, int, int]:
        """Bounds (xmin, ymin, xmax, ymax) of patch (x, y) in the tile's UTM CRS."""
        ulx, uly = self.patch_origin(x, y)
        return ulx, uly - PATCH_METRES, ulx + PATCH_METRES, uly


@lru_cache(maxsize=256)
def tile_grid(tile: str) -> TileGrid:
    """The UTM frame of an MGRS tile such as ``33UUP`` (northern hemisphere only).

    Raises:
        BadInput: The name is not a northern-hemisphere MGRS tile.
    """
    if len(tile) != 5 or not tile[:2].isdigit() or tile[2] not in _BANDS[10:]:
        raise BadInput(tile, "bad_tile", "not a northern-hemisphere MGRS tile such as 33UUP")
    zone, band, col, row = int(tile[:2]), tile[2], tile[3], tile[4]
    if not 1 <= zone <= 60 or col not in _LETTERS or row not in _ROW_LETTERS:
        raise BadInput(tile, "bad_tile", "not a valid MGRS tile name")
    col_set = "ABCDEFGH", "JKLMNPQR", "STUVWXYZ"
    letters = col_set[(zone - 1) % 3]
    if col not in letters:
        raise BadInput(tile, "bad_tile", f"column letter {col} is not used in UTM zone {zone}")
    easting = (letters.index(col) + 1) * 100_000
    offset = 0 if zone % 2 == 1 else 5  # even zones start their row letters at F
    row_northing = ((_ROW_LETTERS.index(row) - offset) % 20) * 100_000
    epsg = 32600 + zone
    # The latitude band removes the 2000 km ambiguity of the row letter.
    band_lat = -80 + 8 * _BANDS.index(band)
    to_utm = Transformer.from_crs(4326, epsg, always_xy=True)
    _, band_min_northing = to_utm.transform(zone * 6 - 183, band_lat)
    northing = row_northing
    while northing + 100_000 <= band_min_northing - 50_000:
        northing += 2_000_000
    return TileGrid(tile=tile, epsg=epsg, x_min=easting, y_max=northing + 100_000)


@lru_cache(maxsize=64)
def _to_wgs84(epsg: int) -> Transformer:
    return Transformer.from_crs(epsg, 4326, always_xy=True)


def footprint_wgs84(tile: str, x: int, y: int) -> list[tuple[float, float]]:
    """The patch outline as a closed ring of (lon, lat) in WGS 84, counter-clockwise.

    The four corners are densified with edge midpoints so the ring follows the UTM square.
    """
    grid = tile_grid(tile)
    xmin, ymin, xmax, ymax = grid.patch_bounds(x, y)
    xm, ym = (xmin + xmax) / 2, (ymin + ymax) / 2
    ring = [
        (xmin, ymin),
        (xm, ymin),
        (xmax, ymin),
        (xmax, ym),
        (xmax, ymax),
        (xm, ymax),
        (xmin, ymax),
        (xmin, ym),
        (xmin, ymin),
    ]
    lons, lats = _to_wgs84(grid.epsg).transform([p[0] for p in ring], [p[1] for p in ring])
    return [(round(lo, 7), round(la, 7)) for lo, la in zip(lons, lats, strict=True)]


def centre_wgs84(tile: str, x: int, y: int) -> tuple[float, float]:
    """The patch centre as (lon, lat) in WGS 84."""
    grid = tile_grid(tile)
    xmin, ymin, xmax, ymax = grid.patch_bounds(x, y)
    lon, lat = _to_wgs84(grid.epsg).transform((xmin + xmax) / 2, (ymin + ymax) / 2)
    return float(lon), float(lat)

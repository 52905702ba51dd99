"""Georeferencing of BigEarthNet patches: the UTM zone of the tile and the 1200 m patch grid.

A patch's upper-left corner is ``(tile x_min + 1200 x, tile y_max - 1200 y)``, where
``(x_min, y_max)`` is the upper-left corner of the 109.8 km Sentinel-2 tile.

The rule for that corner: a Sentinel-2 tile is its 100 km MGRS square (computed from the
letters, standard MGRS lettering, WGS 84, so every tile of the grid works) widened outwards to
the 60 m lattice of UTM coordinates, so that the 10, 20 and 60 m rasters of the tile share one
corner. The west edge is rounded down and the north edge up to a multiple of 60 m::

    x_min = 60 * floor(square west easting / 60)     # 500000 -> 499980, 400000 -> 399960
    y_max = 60 * ceil(square north northing / 60)    # 5800000 -> 5800020, 4400000 -> 4400040

So the corner equals the MGRS square's only where both are multiples of 60 m (33UUP: 300000,
5400000); elsewhere it lies 20 or 40 m west and/or north of it, and so does every BigEarthNet
patch of the tile. (In the southern hemisphere the lattice counts from the equator, not from the
false northing: 40KED has y_max 7900000; this module handles the northern hemisphere only.)

Evidence (the northern-hemisphere items are checked by ``tests/lake/test_grid_origins.py``):

* The real BigEarthNet v2.0 sample patches of 33UUP (``../shared/data/bigearthnet-v2/sample``):
  UL (390000, 5348400) for x=75, y=43 on the tile corner (300000, 5400000).
* A BigEarthNet v1 ``_labels_metadata.json`` quoted in public code (tile_source
  ``S2A_MSIL1C_20171221T112501_N0206_R037_T29SND``, EPSG:32629): ulx 540780, uly 4312440, which
  is patch (34, 73) of the corner (499980, 4400040) and on no 1200 m grid from (500000, 4400000).
* ESA's Sentinel-2 tiling grid KML as quoted in SAR-ARD/s1ard issue 38: 33XVP is
  ``POLYGON ((399960 9400020, ..., 509760 9290220, ...))`` where the MGRS square is
  (400000, 9400000).
* An Earth Search item of 40KED (southern hemisphere) quoted in public code: ``proj:transform``
  ``[10, 0, 499980, 0, -10, 7900000]``: x on the lattice, y counted from the equator.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from affine import Affine
from pyproj import Transformer

from lake.errors import BadInput

PATCH_METRES = 1200
TILE_METRES = 109_800
#: Sentinel-2 tile corners lie on this lattice of UTM metres (the coarsest band's pixel size).
ORIGIN_LATTICE_METRES = 60
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # MGRS letters: no I, no O
_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"
_BANDS = "CDEFGHJKLMNPQRSTUVWX"  # latitude bands, 8 degrees each from 80 S (X is 12)


@dataclass(frozen=True)
class TileGrid:
    """The UTM frame of one MGRS tile.

    Attributes:
        tile: The tile name (``33UUP``).
        epsg: EPSG code of its UTM zone (northern hemisphere: 326zz).
        x_min: Easting of the tile's upper-left corner, in metres (a multiple of 60).
        y_max: Northing of the tile's upper-left corner, in metres (a multiple of 60).
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
    lattice = ORIGIN_LATTICE_METRES
    x_min = (easting // lattice) * lattice  # west edge rounded down (west)
    y_max = -((-(northing + 100_000)) // lattice) * lattice  # north edge rounded up (north)
    return TileGrid(tile=tile, epsg=epsg, x_min=x_min, y_max=y_max)


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

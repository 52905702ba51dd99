"""The Sentinel-2 tile corners of lake.grid against every real footprint we hold.

The sources are named in lake/grid.py's docstring: the BigEarthNet v2.0 sample GeoTIFFs
(33UUP), a BigEarthNet v1 patch of 29SND (labels_metadata.json), ESA's tiling-grid KML polygon
of 33XVP, and the 60 m lattice rule checked over all 54 tiles of BigEarthNet.
"""

import pyarrow.parquet as pq
import pytest
import rasterio

from lake.grid import ORIGIN_LATTICE_METRES, PATCH_METRES, TILE_METRES, tile_grid
from lake.names import parse_patch_id, parse_s1_name
from tests.conftest import METADATA, SAMPLE

# (tile, published upper-left corner of the Sentinel-2 tile)
PUBLISHED_TILE_CORNERS = [
    ("33UUP", (300000, 5400000)),  # the BigEarthNet v2.0 sample GeoTIFFs
    ("29SND", (499980, 4400040)),  # the BigEarthNet v1 patch below
    ("33XVP", (399960, 9400020)),  # ESA's tiling-grid KML (SAR-ARD/s1ard issue 38)
]


@pytest.mark.parametrize(("tile", "corner"), PUBLISHED_TILE_CORNERS)
def test_published_tile_corners(tile: str, corner: tuple[int, int]) -> None:
    g = tile_grid(tile)
    assert (g.x_min, g.y_max) == corner


def test_every_real_sample_raster_lies_on_its_patch() -> None:
    """All 15 sample GeoTIFFs (12 S2 bands, S1 VV/VH, a reference map), every pixel size."""
    files = sorted(SAMPLE.rglob("*.tif"))
    assert len(files) == 15
    for path in files:
        stem = path.stem
        map_suffix = "_reference_map"
        name = (
            stem.removesuffix(map_suffix) if stem.endswith(map_suffix) else stem.rsplit("_", 1)[0]
        )
        parsed = parse_s1_name(name) if name.startswith("S1") else parse_patch_id(name)
        tile, x, y = parsed.tile, parsed.x, parsed.y
        g = tile_grid(tile)
        with rasterio.open(path) as ds:
            res = int(ds.transform.a)
            assert ds.crs.to_epsg() == g.epsg, path.name
            assert tuple(ds.transform)[:6] == tuple(g.patch_transform(x, y, res))[:6], path.name
            assert tuple(ds.bounds) == g.patch_bounds(x, y), path.name


def test_a_real_bigearthnet_v1_patch_of_29snd() -> None:
    """``{"ulx": 540780, "uly": 4312440, "lrx": 541980, "lry": 4311240}``, EPSG:32629."""
    g = tile_grid("29SND")
    assert g.epsg == 32629
    assert g.patch_bounds(34, 73) == (540780, 4311240, 541980, 4312440)


def test_the_kml_polygon_of_33xvp() -> None:
    """``POLYGON ((399960 9400020, 399960 9290220, 509760 9290220, 509760 9400020, ...))``."""
    g = tile_grid("33XVP")
    assert (g.x_min, g.y_max - TILE_METRES, g.x_min + TILE_METRES, g.y_max) == (
        399960,
        9290220,
        509760,
        9400020,
    )


def test_every_bigearthnet_tile_is_its_mgrs_square_widened_to_the_60m_lattice() -> None:
    ids = pq.read_table(METADATA, columns=["patch_id"]).column("patch_id").to_pylist()
    tiles = {parse_patch_id(p).tile for p in ids}
    assert len(tiles) == 54
    moved = 0
    for tile in sorted(tiles):
        g = tile_grid(tile)
        assert g.x_min % ORIGIN_LATTICE_METRES == 0 and g.y_max % ORIGIN_LATTICE_METRES == 0
        # the 100 km square's west / north edges are 0-40 m inside the tile's
        west, north = -g.x_min % 100_000, g.y_max % 100_000
        assert west in (0, 20, 40) and north in (0, 20, 40), tile
        moved += (west, north) != (0, 0)
        # the 1200 m grid covers the tile: patch 90 ends inside it (91 x 1200 m = 109.2 km)
        assert g.patch_bounds(90, 90)[2] <= g.x_min + TILE_METRES
        assert 91 * PATCH_METRES <= TILE_METRES
    assert moved == 44  # only 10 of the 54 tiles have a corner on both 100 km lines

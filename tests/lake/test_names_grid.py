import itertools

import pyarrow.parquet as pq
import pytest
import rasterio

from lake.errors import BadInput
from lake.grid import centre_wgs84, footprint_wgs84, tile_grid
from lake.names import pair_files, parse_patch_id, parse_s1_name, split_member
from tests.conftest import METADATA, SAMPLE

S2_ID = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"
S1_ID = "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_70_48"


def test_parse_names():
    s2 = parse_patch_id(S2_ID)
    assert (s2.platform, s2.orbit, s2.tile, s2.x, s2.y) == ("S2A", 22, "33UUP", 75, 43)
    assert s2.product == "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
    assert s2.datetime.isoformat() == "2017-06-13T10:10:31+00:00"
    s1 = parse_s1_name(S1_ID)
    assert (s1.platform, s1.tile, s1.x, s1.y) == ("S1A", "33UUP", 70, 48)
    assert s1.scene == "S1A_IW_GRDH_1SDV_20170613T165043"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "S2C_MSIL2A_x",
        S2_ID + "_1",
        "S2A_MSIL1C_20170613T101031_N9999_R022_T33UUP_75_43",
        S2_ID + "\n",  # a trailing newline ($ alone accepts it)
        S2_ID.replace("_75_", "_\uff17\uff15_"),  # fullwidth digits (\d without re.ASCII)
        "../" + S2_ID,
    ],
)
def test_bad_patch_ids_are_named(bad):
    with pytest.raises(BadInput) as info:
        parse_patch_id(bad)
    assert info.value.subject == bad and info.value.reason == "bad_name"


@pytest.mark.parametrize(
    "bad", [S1_ID + "\n", S1_ID.replace("_70_", "_\uff17\uff10_"), S1_ID + "/.."]
)
def test_bad_s1_names_are_named(bad):
    with pytest.raises(BadInput) as info:
        parse_s1_name(bad)
    assert info.value.subject == bad and info.value.reason == "bad_name"


def test_pair_files_match_the_real_layout():
    files = pair_files(S2_ID, "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_75_43")
    for band in ("B01", "B8A", "B12"):
        assert (SAMPLE / files[band]).exists()
    assert len(files) == 15
    assert split_member(files["VV"]) == (
        "BigEarthNet-S1",
        "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_75_43",
        "VV",
    )
    assert split_member(files["reference_map"])[2] == "reference_map"
    assert split_member("BigEarthNet-S2/x/y/notes.txt") is None


def test_tile_grid_matches_the_real_sample():
    g = tile_grid("33UUP")
    assert (g.epsg, g.x_min, g.y_max) == (32633, 300000, 5400000)
    for path, (x, y), res in [
        (next(SAMPLE.rglob("*_75_43_B02.tif")), (75, 43), 10),
        (next(SAMPLE.rglob("*_75_43_B05.tif")), (75, 43), 20),
        (next(SAMPLE.rglob("*_70_48_VV.tif")), (70, 48), 10),
        (next(SAMPLE.rglob("*_26_57_reference_map.tif")), (26, 57), 10),
    ]:
        with rasterio.open(path) as ds:
            assert ds.crs.to_epsg() == g.epsg
            assert tuple(ds.transform)[:6] == tuple(g.patch_transform(x, y, res))[:6]


def test_every_real_tile_resolves_inside_its_grid():
    ids = pq.read_table(METADATA, columns=["patch_id"]).column("patch_id").to_pylist()
    tiles = {parse_patch_id(p).tile for p in ids[::500]}
    for tile in tiles:
        g = tile_grid(tile)
        lon, lat = centre_wgs84(tile, 45, 45)
        assert 34 < lat < 71 and -11 < lon < 33, tile
        assert g.epsg == 32600 + int(tile[:2])


def test_footprint_is_closed_and_counter_clockwise():
    ring = footprint_wgs84("33UUP", 75, 43)
    assert ring[0] == ring[-1] and len(ring) == 9
    area2 = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in itertools.pairwise(ring))
    assert area2 > 0


@pytest.mark.parametrize("bad", ["33", "33AUP", "33UIP", "33UUI", "99UUP", "33UAP"])
def test_bad_tiles(bad):
    with pytest.raises(BadInput):
        tile_grid(bad)

"""The must-show of augmentation: after every transform, the text is still true of the map.

Boxes, points and position words of the synthetic lake's rows were drawn from each pair's
reference map by the generator's rules (``pipelines/synth/text.py``). Transforming the map and
the row together must give a row that the same rules, applied to the transformed map, confirm.
The generator's helpers are used here, in the tests only, as the independent oracle.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from lake.bigearthnet import CLASSES_ORIGINAL
from lake.vlm.augment import TRANSFORMS, Transform, transform_image, transform_row
from lake.vlm.boxes import parse_box, parse_point_as
from pipelines.synth.text import MapStats, map_stats, point_pixel, position_of
from tests.lake.vlm.helpers import SIZE, PairText, pixel_edges

_REF = re.compile(r"<ref>(?:the largest area of |the )?(?P<name>[^<]+)</ref>")
_POINT = re.compile(r"<point>\((?P<x>[\d.]+), (?P<y>[\d.]+)\)</point>")
_NAMES = {name.lower(): i for i, name in enumerate(CLASSES_ORIGINAL)}


def _class_of(text: str) -> int:
    match = _REF.search(text)
    assert match is not None, text
    return _NAMES[match["name"]]


def _pixel(x: float) -> int:
    """The map pixel a 0..1 coordinate falls in."""
    return min(math.floor(x * SIZE + 1e-9), SIZE - 1)


def _region_edges(stats: MapStats, label: int) -> tuple[int, int, int, int]:
    c0, r0, c1, r1 = stats.region_box(label)
    return (c0, r0, c1 + 1, r1 + 1)


def _assert_box(got: tuple[float, float, float, float] | None, edges: tuple[int, ...]) -> None:
    """A 2-decimal box against exact pixel edges (0.005 rounding + the generator's 0.01 bump)."""
    assert got is not None
    assert np.allclose(np.array(got) * SIZE, edges, atol=0.015 * SIZE), (got, edges)
    assert all(abs(a - b) <= 1 for a, b in zip(pixel_edges(got), edges, strict=True))


@pytest.mark.parametrize("t", TRANSFORMS)
def test_boxes_still_bound_their_region(vlm_pairs: list[PairText], t: Transform) -> None:
    checked = {"reference": 0, "point": 0}
    for pair in vlm_pairs:
        stats = map_stats(transform_image(pair.codes, t))
        for row in pair.rows:
            if row["type"] != "bounding box":
                continue
            moved = transform_row(row, t)
            if row["category"] == "reference":
                c = _class_of(moved["input"])
                edges = _region_edges(stats, int(stats.largest[c]))
            else:
                point = parse_point_as(moved["input"], "unit")
                assert point is not None, moved["input"]
                label = int(stats.region[_pixel(point[1]), _pixel(point[0])])
                edges = _region_edges(stats, label)
            _assert_box(moved["box"], edges)
            _assert_box(parse_box(moved["output"]), edges)
            checked[row["category"]] += 1
    assert checked["reference"] > 50 and checked["point"] > 50, checked


@pytest.mark.parametrize("t", TRANSFORMS)
def test_relative_positions_name_the_moved_centroid(
    vlm_pairs: list[PairText], t: Transform
) -> None:
    checked = 0
    for pair in vlm_pairs:
        before = map_stats(pair.codes)
        after = map_stats(transform_image(pair.codes, t))
        for row in pair.rows:
            if row["category"] != "relative position":
                continue
            c = _class_of(row["input"])
            assert row["options"][row["answer_index"]] == position_of(*before.centroid[c])
            moved = transform_row(row, t)
            correct = moved["options"][moved["answer_index"]]
            assert correct == position_of(*after.centroid[c]), (pair.patch_id, row, moved)
            letter = "ABCD"[moved["answer_index"]]
            assert f"\n{letter}. {correct}" in moved["input"]
            checked += 1
    assert checked > 50


@pytest.mark.parametrize("t", TRANSFORMS)
def test_points_land_on_the_same_class(vlm_pairs: list[PairText], t: Transform) -> None:
    checked = 0
    for pair in vlm_pairs:
        before = map_stats(pair.codes)
        after = map_stats(transform_image(pair.codes, t))
        for row in pair.rows:
            if "<point>" not in row["input"]:
                continue
            moved = transform_row(row, t)
            old = [_POINT.search(row["input"]), _POINT.search(moved["input"])]
            assert old[0] is not None and old[1] is not None
            ox, oy = (round(float(old[0][k]) * 100) for k in ("x", "y"))
            was = before.cls[point_pixel(oy), point_pixel(ox)]
            nx, ny = float(old[1]["x"]), float(old[1]["y"])
            assert after.cls[_pixel(ny), _pixel(nx)] == was, (pair.patch_id, row["input"], t)
            checked += 1
    assert checked > 100

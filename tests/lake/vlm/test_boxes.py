"""Boxes and points: every format both ways, tolerant parsing, bad inputs, IoU, the lake's rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lake.errors import ConfigError
from lake.vlm.boxes import (
    BOX_FORMATS,
    Box,
    BoxFormat,
    convert_text,
    format_box,
    format_point,
    iou,
    parse_any_box,
    parse_box,
    parse_box_as,
    parse_point_as,
)
from tests.lake.vlm.helpers import PairText

SOURCE: Box = (0.12, 0.30, 0.55, 0.80)


def _tolerance(fmt: BoxFormat, size: int) -> float:
    """Half a quantisation step of the format (what a round trip may lose)."""
    return {"unit": 0.005, "pixel": 0.5 / size, "qwen": 5e-4, "internvl": 5e-4, "geochat": 5e-3}[
        fmt
    ] + 1e-12


def test_the_documented_forms_of_one_box() -> None:
    assert format_box(SOURCE) == "[0.12 0.30, 0.55 0.80]"
    assert format_box(SOURCE, "pixel", size=120) == "[14 36, 66 96]"
    assert format_box(SOURCE, "pixel", size=224) == "[27 67, 123 179]"
    assert format_box(SOURCE, "qwen") == '{"bbox_2d": [120, 300, 550, 800]}'
    assert format_box(SOURCE, "internvl") == "<box>[[120, 300, 550, 800]]</box>"
    assert format_box(SOURCE, "geochat") == "{<12><30><55><80>}"


def test_the_documented_forms_of_one_point() -> None:
    p = (0.33, 0.05)
    assert format_point(p) == "<point>(0.33, 0.05)</point>"
    assert format_point(p, "pixel", size=120) == "<point>(39, 6)</point>"  # the pixel holding it
    assert format_point((1.0, 0.0), "pixel", size=120) == "<point>(119, 0)</point>"
    assert format_point(p, "qwen") == '{"point_2d": [330, 50]}'
    assert format_point(p, "internvl") == "<point>[[330, 50]]</point>"
    assert format_point(p, "geochat") == "{<33><5>}"


@pytest.mark.parametrize("fmt", BOX_FORMATS)
@pytest.mark.parametrize("size", [120, 224, 336, 448])
def test_every_format_round_trips_within_its_quantisation(fmt: BoxFormat, size: int) -> None:
    rng = np.random.default_rng(size)
    for _ in range(200):
        edges = np.sort(rng.integers(0, 121, size=(2, 2)), axis=0)  # pixel edges of 120 px
        box: Box = (edges[0, 0] / 120, edges[0, 1] / 120, edges[1, 0] / 120, edges[1, 1] / 120)
        text = f"The answer: {format_box(box, fmt, size=size)}."
        back = parse_box_as(text, fmt, size=size)
        assert back is not None, text
        assert np.allclose(back, box, rtol=0, atol=_tolerance(fmt, size)), (box, text, back)
        assert parse_any_box(text, size=size) == back
        point = (float(rng.random()), float(rng.random()))
        ptext = f"at {format_point(point, fmt, size=size)} here"
        pback = parse_point_as(ptext, fmt, size=size)
        assert pback is not None, ptext
        step = 1 / size if fmt == "pixel" else 2 * _tolerance(fmt, size)
        assert np.allclose(pback, point, rtol=0, atol=step), (point, ptext, pback)
        if fmt == "pixel":  # it reads back inside the same pixel
            assert [math.floor(v * size) for v in pback] == [
                min(math.floor(v * size), size - 1) for v in point
            ]


@pytest.mark.parametrize(
    ("fmt", "answer"),
    [
        ("unit", "The box is [0.1 0.2, 0.5 0.6]."),
        ("unit", "[0.1, 0.2, 0.5, 0.6]"),
        ("unit", "[(0.1, 0.2), (0.5, 0.6)]"),
        ("unit", "((0.1,0.2),(0.5,0.6))"),
        ("unit", " 0.1 0.2, 0.5 0.6. "),
        ("unit", "[0.5 0.6, 0.1 0.2]"),  # swapped corners are reordered
        ("qwen", '{"bbox_2d": [100, 200, 500, 600]}'),
        ("qwen", 'Sure! ```json\n[{"bbox_2d": [100,200,500,600], "label": "forest"}]\n```'),
        ("qwen", "<|box_start|>(100,200),(500,600)<|box_end|>"),
        ("internvl", "<ref>forest</ref><box>[[100,200,500,600]]</box>"),
        ("internvl", "<box>[100, 200, 500, 600]</box>"),
        ("geochat", "{<10><20><50><60>}"),
        ("geochat", "The forest is at {<10><20><50><60>|<0>}."),
        ("geochat", "<10><20><50><60>"),
    ],
)
def test_tolerant_parsing_of_model_answers(fmt: BoxFormat, answer: str) -> None:
    assert parse_box_as(answer, fmt) == pytest.approx((0.1, 0.2, 0.5, 0.6))
    assert parse_any_box(answer) == pytest.approx((0.1, 0.2, 0.5, 0.6))


def test_pixel_answers_need_the_image_size() -> None:
    assert parse_box_as("[12, 24, 60, 72]", "pixel", size=120) == (0.1, 0.2, 0.5, 0.6)
    assert parse_any_box("[12, 24, 60, 72]", size=120) == (0.1, 0.2, 0.5, 0.6)
    assert parse_any_box("[12, 24, 60, 72]") is None  # 0..1 fails, pixel not tried
    assert parse_box_as("[12, 24, 60, 121]", "pixel", size=120) is None


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "no box here",
        "[nan 0.2, 0.5 0.6]",
        "[0.1 0.2, 0.5 1.6]",
        "[-0.1 0.2, 0.5 0.6]",
        "[0.1 0.2 0.5]",
        "[1e999 0.2, 0.5 0.6]",
    ],
)
def test_no_box_or_a_bad_one_gives_none(answer: str) -> None:
    assert parse_box(answer) is None
    for fmt in BOX_FORMATS:
        if fmt != "pixel" or "1.6" not in answer:  # 1.6 px is a fine pixel coordinate
            assert parse_box_as(answer, fmt, size=120) is None, fmt


def test_out_of_range_answers_of_each_format_give_none() -> None:
    assert parse_box_as('{"bbox_2d": [100, 200, 500, 1001]}', "qwen") is None
    assert parse_box_as("<box>[[100, 200, 500, 1200]]</box>", "internvl") is None
    assert parse_box_as("{<10><20><50><101>}", "geochat") is None
    assert parse_point_as('{"point_2d": [1001, 5]}', "qwen") is None
    assert parse_point_as("<point>(120, 5)</point>", "pixel", size=120) is None
    assert parse_point_as("<point>(1.5, 0.5)</point>", "unit") is None
    assert parse_point_as("nothing", "geochat") is None


@pytest.mark.parametrize("bad", ["yolo", "", "UNIT", None])
def test_an_unknown_format_is_named(bad: object) -> None:
    with pytest.raises(ConfigError, match=f"box format {bad!r} is unknown.*unit, pixel"):
        format_box(SOURCE, bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="is unknown"):
        parse_box_as("[0.1 0.2, 0.3 0.4]", bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="is unknown"):
        convert_text("x", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [None, 0, -5, 2.5, True])
def test_pixel_without_a_valid_size_is_refused(size: object) -> None:
    for call in (
        lambda: format_box(SOURCE, "pixel", size=size),  # type: ignore[arg-type]
        lambda: format_point((0.5, 0.5), "pixel", size=size),  # type: ignore[arg-type]
        lambda: parse_box_as("[1 2, 3 4]", "pixel", size=size),  # type: ignore[arg-type]
        lambda: convert_text("[0.1 0.2, 0.3 0.4]", "pixel", size=size),  # type: ignore[arg-type]
    ):
        with pytest.raises(ConfigError, match=f"needs size=.*got size={size!r}"):
            call()


@pytest.mark.parametrize(
    "box",
    [(0.5, 0.2, 0.1, 0.6), (0.1, 0.2, 0.5, 1.5), (0.1, float("nan"), 0.5, 0.6), (0.1, 0.2, 0.5)],
)
def test_format_box_refuses_a_bad_box_by_value(box: tuple[float, ...]) -> None:
    with pytest.raises(ConfigError, match=r"box=\("):
        format_box(box)  # type: ignore[arg-type]


def test_format_point_refuses_a_bad_point() -> None:
    with pytest.raises(ConfigError, match=r"point=\(1.2, 0.5\) is not a point"):
        format_point((1.2, 0.5))
    with pytest.raises(ConfigError, match="is not two numbers"):
        format_point("ab")  # type: ignore[arg-type]


def test_iou_against_hand_computations() -> None:
    a: Box = (0.0, 0.0, 0.5, 0.5)
    assert iou(a, a) == 1.0
    assert iou(a, (0.25, 0.25, 0.75, 0.75)) == pytest.approx(0.0625 / (0.25 + 0.25 - 0.0625))
    assert iou(a, (0.5, 0.0, 1.0, 0.5)) == 0.0  # touching edges do not intersect
    assert iou(a, (0.6, 0.6, 0.9, 0.9)) == 0.0
    assert iou((0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 0.5, 1.0)) == 0.5
    assert iou((0.2, 0.2, 0.2, 0.4), (0.2, 0.2, 0.2, 0.4)) == 0.0  # no area, no union
    with pytest.raises(ConfigError, match=r"b=\(0.5, 0.5, 0.1, 0.1\) is not a box"):
        iou(a, (0.5, 0.5, 0.1, 0.1))


def test_convert_text_rewrites_boxes_and_points_and_keeps_the_rest() -> None:
    text = "Is the <ref>forest</ref> at <point>(0.33, 0.05)</point> in [0.10 0.20, 0.50 0.60]?"
    assert convert_text(text, "unit") == text
    assert convert_text(text, "qwen") == (
        'Is the <ref>forest</ref> at {"point_2d": [330, 50]} in {"bbox_2d": [100, 200, 500, 600]}?'
    )
    assert convert_text(text, "internvl") == (
        "Is the <ref>forest</ref> at <point>[[330, 50]]</point> in "
        "<box>[[100, 200, 500, 600]]</box>?"
    )
    assert convert_text(text, "geochat") == (
        "Is the <ref>forest</ref> at {<33><5>} in {<10><20><50><60>}?"
    )
    assert convert_text(text, "pixel", size=224) == (
        "Is the <ref>forest</ref> at <point>(73, 11)</point> in [22 45, 112 134]?"
    )
    # numbers outside 0..1 are not boxes; three decimals survive in unit
    assert convert_text("[1 2, 3 4] and [0.125 0.2, 0.5 0.6]", "unit") == (
        "[1 2, 3 4] and [0.125 0.200, 0.500 0.600]"
    )


def test_every_box_row_of_the_lake_parses_to_its_box_columns(vlm_pairs: list[PairText]) -> None:
    n = 0
    for pair in vlm_pairs:
        for row in pair.rows:
            if row["type"] != "bounding box":
                assert row["box"] is None
                continue
            parsed = parse_box(row["output"])
            assert parsed is not None and row["box"] is not None, row
            assert parsed == row["box"], row
            assert np.array_equal(np.array(parsed, np.float32), np.array(row["box"], np.float32))
            for fmt in BOX_FORMATS:
                text = convert_text(row["output"], fmt, size=224)
                back = parse_box_as(text, fmt, size=224)
                assert back is not None
                assert np.allclose(back, parsed, atol=_tolerance(fmt, 224)), (fmt, text)
            n += 1
    assert n > 100

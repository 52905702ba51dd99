"""Augmentation: group laws, images vs coordinates, text rewriting, bad inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lake.errors import ConfigError
from lake.vlm.augment import (
    FLIPS,
    ROTATIONS,
    TRANSFORMS,
    Transform,
    compose,
    draw_transform,
    inverse,
    transform_box,
    transform_image,
    transform_point,
    transform_row,
    transform_text,
)
from lake.vlm.rows import TextRow

#: Every kind of thing transform_text rewrites, in every case pattern (lone "upper"/"lower" aside:
#: they come back as "top"/"bottom" after a turn through left/right, see below).
TEXT = (
    "Top left, the upper-right corner, NORTH-WEST, northwestern, the Left side, top-left, "
    "the bottom right, lower left, Upper Right, topmost, leftmost, southerly, eastward, "
    "westwards, north east, southeast, a horizontal road, vertically, the centre, "
    "<point>(0.33, 0.05)</point> [0.10 0.20, 0.50 0.60] and [0.125 0.250, 0.500 0.875]"
)


def test_rot90_is_counter_clockwise_like_np_rot90() -> None:
    image = np.arange(6).reshape(2, 3)  # 2 rows, 3 columns
    assert transform_image(image, "rot90").tolist() == np.rot90(image).tolist()
    assert transform_image(image, "rot90").tolist() == [[2, 5], [1, 4], [0, 3]]
    assert transform_point((1.0, 0.0), "rot90") == (0.0, 0.0)  # top right -> top left
    assert transform_point((0.0, 0.0), "rot90") == (0.0, 1.0)  # top left -> bottom left
    assert transform_text("top", "rot90") == "left"
    assert transform_text("left", "rot90") == "bottom"
    assert transform_text("bottom", "rot90") == "right"
    assert transform_text("right", "rot90") == "top"
    assert transform_text("top left", "rot90") == "bottom left"


@pytest.mark.parametrize("t", TRANSFORMS)
def test_images_and_coordinates_move_together(t: Transform) -> None:
    """The pixel at a point's place in the transformed image is the point's pixel."""
    rng = np.random.default_rng(0)
    for h, w in ((120, 120), (5, 5), (4, 7)):
        image = rng.integers(0, 1000, size=(2, h, w))
        moved = transform_image(image, t)
        assert moved.flags.c_contiguous and moved.shape[0] == 2
        nh, nw = moved.shape[-2:]
        for r, c in itertools.product(range(0, h, max(1, h // 7)), range(0, w, max(1, w // 7))):
            x, y = transform_point(((c + 0.5) / w, (r + 0.5) / h), t)
            assert np.array_equal(moved[:, int(y * nh), int(x * nw)], image[:, r, c])
        # a box of pixel edges covers the same pixels after the move
        box = (1 / w, 1 / h, 3 / w, 4 / h) if h > 4 else (0.0, 0.0, 1 / w, 1 / h)
        mask = np.zeros((h, w), bool)
        mask[round(box[1] * h) : round(box[3] * h), round(box[0] * w) : round(box[2] * w)] = True
        x1, y1, x2, y2 = transform_box(box, t)
        want = np.zeros((nh, nw), bool)
        want[round(y1 * nh) : round(y2 * nh), round(x1 * nw) : round(x2 * nw)] = True
        assert np.array_equal(transform_image(mask, t), want)


def test_group_laws() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 9, size=(3, 6, 6))
    point = (0.25, 0.75)
    box = (0.125, 0.25, 0.5, 0.875)
    assert compose("rot90", compose("rot90", compose("rot90", "rot90"))) == "identity"
    four = image
    for _ in range(4):
        four = transform_image(four, "rot90")
    assert np.array_equal(four, image)
    text4 = TEXT
    for _ in range(4):
        text4 = transform_text(text4, "rot90")
    assert text4 == TEXT
    for t in TRANSFORMS:
        u = inverse(t)
        assert compose(t, u) == "identity" == compose(u, t)
        assert np.array_equal(transform_image(transform_image(image, t), u), image)
        assert transform_point(transform_point(point, t), u) == point
        assert transform_box(transform_box(box, t), u) == box
        assert transform_text(transform_text(TEXT, t), u) == TEXT, t
        for s in TRANSFORMS:  # compose is the composition on every kind of thing
            st = compose(t, s)
            assert np.array_equal(
                transform_image(transform_image(image, t), s), transform_image(image, st)
            )
            assert transform_point(transform_point(point, t), s) == transform_point(point, st)
            assert transform_text(transform_text(TEXT, t), s) == transform_text(TEXT, st)
    assert compose("hflip", "hflip") == "identity"
    assert inverse("rot90") == "rot270" and inverse("transpose") == "transpose"
    assert len({transform_text(TEXT, t) for t in TRANSFORMS}) == 8


def test_words_keep_their_case_and_compounds_read_naturally() -> None:
    assert transform_text("Top left", "hflip") == "Top right"
    assert transform_text("TOP LEFT", "vflip") == "BOTTOM LEFT"
    assert transform_text("Top Left", "rot90") == "Bottom Left"
    assert transform_text("the upper-left corner", "rot270") == "the upper-right corner"
    assert transform_text("North-West", "rot180") == "South-East"
    assert transform_text("northwest of the lake", "transpose") == "northwest of the lake"
    assert transform_text("in the north", "rot90") == "in the west"
    assert transform_text("the northern part", "rot270") == "the eastern part"
    assert transform_text("the uppermost field", "antitranspose") == "the rightmost field"
    assert transform_text("A horizontal road", "rot90") == "A vertical road"
    assert transform_text("a north-westerly wind", "rot90") == "a south-westerly wind"
    assert transform_text("North Eastern", "rot90") == "North Western"
    assert transform_text("the centre, the center, the middle", "rot90") == (
        "the centre, the center, the middle"
    )


def test_lone_upper_and_lower_come_back_as_top_and_bottom() -> None:
    """``upper`` has no horizontal partner: it turns into ``left`` and comes back as ``top``."""
    assert transform_text("the upper field", "rot90") == "the left field"
    assert transform_text("the Lowermost field", "rot180") == "the Uppermost field"
    text = "the upper field"
    for _ in range(4):
        text = transform_text(text, "rot90")
    assert text == "the top field"


def test_words_that_only_contain_directions_stay() -> None:
    text = "rightly, leftover, topography, bottomland, Northumbria, westerns, uppercase, Topless"
    for t in TRANSFORMS:
        assert transform_text(text, t) == text


def test_mcq_options_move_so_the_letter_stays_right() -> None:
    question = (
        "Where is the <ref>coniferous forest</ref> located in the image?\n"
        "A. bottom right\nB. top left\nC. centre\nD. top right"
    )
    row = TextRow(
        id=1,
        type="mcq",
        category="relative position",
        input=question,
        output="B",
        options=["bottom right", "top left", "centre", "top right"],
        answer_index=1,
        answer_bool=-1,
        box=None,
    )
    moved = transform_row(row, "rot90")
    assert moved["input"].splitlines()[1:] == [
        "A. top right",
        "B. bottom left",
        "C. centre",
        "D. top left",
    ]
    assert moved["options"] == ["top right", "bottom left", "centre", "top left"]
    assert moved["output"] == "B" and moved["answer_index"] == 1
    assert row["options"][1] == "top left"  # the original is untouched


def test_transform_row_moves_the_box_and_its_text() -> None:
    row = TextRow(
        id=2,
        type="bounding box",
        category="point",
        input="Give the bounding box of the region at <point>(0.25, 0.10)</point>.",
        output="[0.10 0.20, 0.50 0.60]",
        options=[],
        answer_index=-1,
        answer_bool=-1,
        box=(0.1, 0.2, 0.5, 0.6),
    )
    moved = transform_row(row, "hflip")
    assert moved["input"] == "Give the bounding box of the region at <point>(0.75, 0.10)</point>."
    assert moved["output"] == "[0.50 0.20, 0.90 0.60]"
    assert moved["box"] == pytest.approx((0.5, 0.2, 0.9, 0.6))
    assert transform_row(row, "identity") == row


def test_draw_transform_is_seeded_and_draws_from_the_asked_set() -> None:
    def draws(**kw: bool) -> list[str]:
        rng = np.random.default_rng(7)
        return [draw_transform(rng, **kw) for _ in range(400)]

    assert draws() == draws()
    assert set(draws()) == set(TRANSFORMS)
    assert set(draws(rotations=False)) == set(FLIPS)
    assert set(draws(flips=False)) == set(ROTATIONS)
    assert set(draws(flips=False, rotations=False)) == {"identity"}


@pytest.mark.parametrize("bad", ["rot45", "", None, ["hflip"]])
def test_an_unknown_transform_is_named(bad: object) -> None:
    for call in (
        lambda: transform_image(np.zeros((2, 2)), bad),  # type: ignore[arg-type]
        lambda: transform_box((0.1, 0.1, 0.2, 0.2), bad),  # type: ignore[arg-type]
        lambda: transform_point((0.1, 0.1), bad),  # type: ignore[arg-type]
        lambda: transform_text("top", bad),  # type: ignore[arg-type]
        lambda: inverse(bad),  # type: ignore[arg-type]
    ):
        with pytest.raises(
            ConfigError, match=r"transform .* is unknown: use one of identity, hflip"
        ):
            call()


def test_transform_image_needs_two_axes() -> None:
    with pytest.raises(ConfigError, match=r"\(\.\.\., H, W\), got \(5,\)"):
        transform_image(np.zeros(5), "hflip")

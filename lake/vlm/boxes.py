"""Boxes and points in the dataset's own format and in the formats VLMs are trained on.

The convention (``docs/vlm.md``, checked against reference maps by ``tests/lake/vlm``): a box is
``(x1, y1, x2, y2)`` in 0..1 with the origin at the top-left corner of the image, x along the
columns (to the right) and y along the rows (down), measured at pixel EDGES (``x1`` = first
column / W, ``x2`` = (last column + 1) / W), so ``box * size`` is the pixel-edge box in any square
grid of side ``size``. A point ``(x, y)`` is in 0..1 on the same axes.

The formats (:data:`BoxFormat`), each written by :func:`format_box` / :func:`format_point` and
read back, tolerantly and anywhere inside a model's answer, by :func:`parse_box_as` /
:func:`parse_point_as`:

=========  ================================  ===================================  ==========
format     box                               point                                scale
=========  ================================  ===================================  ==========
unit       ``[0.12 0.30, 0.55 0.80]``        ``<point>(0.12, 0.30)</point>``      0..1, 2 dp
pixel      ``[13 36, 66 96]``                ``<point>(13, 36)</point>``          0..size
qwen       ``{"bbox_2d": [120, 300, 550,      ``{"point_2d": [120, 300]}``         0..1000
           800]}``
internvl   ``<box>[[120, 300, 550, 800]]</box>``  ``<point>[[120, 300]]</point>``      0..1000
geochat    ``{<12><30><55><80>}``            ``{<12><30>}``                       0..100
=========  ================================  ===================================  ==========

Integers are the nearest value (halves up); a pixel point is the pixel that holds it (column
``floor(x * size)``) and reads back as that pixel's centre. Parsing also accepts the usual
variants: commas or spaces between numbers, ``[x1, y1, x2, y2]``, ``[(x1, y1), (x2, y2)]``,
single or double brackets for InternVL, Qwen2-VL's ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>``
for ``qwen`` and GeoChat's optional angle ``{<x1><y1><x2><y2>|<angle>}``. Swapped corners are
reordered; a box or point with a coordinate outside its scale gives None (never an exception).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Final, Literal, get_args

from lake.errors import ConfigError

#: The box (and point) formats: see the module docstring.
BoxFormat = Literal["unit", "pixel", "qwen", "internvl", "geochat"]
#: Every :data:`BoxFormat`, in the order :func:`parse_any_box` does NOT use (documentation order).
BOX_FORMATS: Final[tuple[BoxFormat, ...]] = get_args(BoxFormat)
#: ``(x1, y1, x2, y2)`` in 0..1, top-left origin, pixel edges, ``x1 <= x2`` and ``y1 <= y2``.
Box = tuple[float, float, float, float]
#: ``(x, y)`` in 0..1, top-left origin.
Point = tuple[float, float]

#: The integer range of each format that writes integers (``pixel`` uses the image side).
SCALES: Final = {"qwen": 1000, "internvl": 1000, "geochat": 100}

_N = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SEP = r"\s*[,;\s]\s*"
# [x1 y1, x2 y2], [x1, y1, x2, y2], [(x1, y1), (x2, y2)], ((x1,y1),(x2,y2)) ...
_BRACKETED: Final = re.compile(
    rf"[\[\(]\s*\(?\s*(?P<x1>{_N}){_SEP}(?P<y1>{_N})(?:\s*\)\s*[,;]?\s*\(\s*|{_SEP})"
    rf"(?P<x2>{_N}){_SEP}(?P<y2>{_N})\s*\)?\s*[\]\)]"
)
# the whole answer is four numbers, brackets optional ("0.1 0.2, 0.5 0.6.")
_BARE: Final = re.compile(
    rf"^\s*[\[\(]*\s*(?P<x1>{_N}){_SEP}(?P<y1>{_N})[\s,;\(\)\[\]]+"
    rf"(?P<x2>{_N}){_SEP}(?P<y2>{_N})\s*[\)\]]*\s*\.?\s*$"
)
_QWEN_BOX: Final = (
    re.compile(
        rf"""["']?bbox_2d["']?\s*:\s*\[\s*(?P<x1>{_N}){_SEP}(?P<y1>{_N}){_SEP}"""
        rf"(?P<x2>{_N}){_SEP}(?P<y2>{_N})\s*\]"
    ),
    re.compile(
        rf"<\|box_start\|>\s*\(\s*(?P<x1>{_N}){_SEP}(?P<y1>{_N})\s*\)\s*,?\s*"
        rf"\(\s*(?P<x2>{_N}){_SEP}(?P<y2>{_N})\s*\)\s*<\|box_end\|>"
    ),
)
_INTERNVL_BOX: Final = re.compile(
    rf"<box>\s*\[{{1,2}}\s*(?P<x1>{_N}){_SEP}(?P<y1>{_N}){_SEP}"
    rf"(?P<x2>{_N}){_SEP}(?P<y2>{_N})\s*\]{{1,2}}\s*</box>"
)
_GEOCHAT_BOX: Final = re.compile(
    rf"\{{?\s*<\s*(?P<x1>{_N})\s*>\s*<\s*(?P<y1>{_N})\s*>\s*<\s*(?P<x2>{_N})\s*>\s*"
    rf"<\s*(?P<y2>{_N})\s*>\s*(?:\|\s*<\s*{_N}\s*>\s*)?\}}?"
)
_UNIT_POINT: Final = re.compile(rf"<point>\s*\(?\s*(?P<x>{_N}){_SEP}(?P<y>{_N})\s*\)?\s*</point>")
_QWEN_POINT: Final = re.compile(
    rf"""["']?point_2d["']?\s*:\s*\[\s*(?P<x>{_N}){_SEP}(?P<y>{_N})\s*\]"""
)
_INTERNVL_POINT: Final = re.compile(
    rf"<point>\s*\[{{1,2}}\s*(?P<x>{_N}){_SEP}(?P<y>{_N})\s*\]{{1,2}}\s*</point>"
)
_GEOCHAT_POINT: Final = re.compile(rf"\{{\s*<\s*(?P<x>{_N})\s*>\s*<\s*(?P<y>{_N})\s*>\s*\}}")
#: A box of the dataset's own format inside a text (what :func:`convert_text` rewrites): one
#: bracketed group of four numbers, each in 0..1 (checked after matching).
DATASET_BOX: Final = _BRACKETED
#: A point of the dataset's own format inside a text: ``<point>(x, y)</point>``.
DATASET_POINT: Final = _UNIT_POINT
# Both, points first: at a ``<point>`` the point wins, so a box is never found inside one.
_GEOMETRY: Final = re.compile(f"{_UNIT_POINT.pattern}|{_BRACKETED.pattern}")


def _check_format(fmt: object, size: int | None) -> None:
    if fmt not in BOX_FORMATS:
        raise ConfigError(f"box format {fmt!r} is unknown: use one of {', '.join(BOX_FORMATS)}")
    if fmt == "pixel" and (
        size is None or isinstance(size, bool) or not isinstance(size, int) or size < 1
    ):
        raise ConfigError(
            f"box format 'pixel' needs size= the side of the image in pixels (an int >= 1), "
            f"got size={size!r}"
        )


def _scale(fmt: BoxFormat, size: int | None) -> int:
    if fmt == "pixel":
        assert size is not None
        return size
    return SCALES.get(fmt, 1)


def _ordered(x1: float, y1: float, x2: float, y2: float) -> Box | None:
    """The box with its corners in order, or None when a coordinate is not in 0..1."""
    values = (x1, y1, x2, y2)
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        return None
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def _box_of(match: re.Match[str] | None, scale: float) -> Box | None:
    if match is None:
        return None
    try:
        x1, y1, x2, y2 = (float(match[k]) / scale for k in ("x1", "y1", "x2", "y2"))
    except (ValueError, OverflowError):
        return None
    return _ordered(x1, y1, x2, y2)


def _first(patterns: tuple[re.Pattern[str], ...], text: str) -> re.Match[str] | None:
    found = [m for m in (p.search(text) for p in patterns) if m is not None]
    return min(found, key=lambda m: m.start()) if found else None


def parse_box(text: str) -> Box | None:
    """The dataset's own box ``[x1 y1, x2 y2]`` (0..1) of a text, tolerant of its variants.

    Finds the first bracketed group of four numbers (commas, spaces, inner parentheses in any of
    the usual variants); a text that is only four numbers needs no brackets.

    Args:
        text: An ``output`` of a ``bounding box`` row, or a model's answer.

    Returns:
        ``(x1, y1, x2, y2)`` with swapped corners reordered, or None when there is no box or a
        coordinate is outside 0..1 (or not a number).
    """
    return parse_box_as(text, "unit")


def parse_box_as(text: str, fmt: BoxFormat, *, size: int | None = None) -> Box | None:
    """The first box of format ``fmt`` anywhere in ``text``, as a 0..1 :data:`Box`.

    Args:
        text: A model's answer or an exported text.
        fmt: The format to look for (see the module docstring for the variants accepted).
        size: The image side in pixels (``pixel`` only).

    Returns:
        The box (corners reordered), or None when the text holds no box of that format or its
        first one has a coordinate outside the format's range.

    Raises:
        ConfigError: Unknown ``fmt``, or ``pixel`` without a valid ``size``.
    """
    _check_format(fmt, size)
    scale = _scale(fmt, size)
    if fmt in ("unit", "pixel"):
        match = _BRACKETED.search(text) or _BARE.match(text)
    elif fmt == "qwen":
        match = _first(_QWEN_BOX, text)
    elif fmt == "internvl":
        match = _INTERNVL_BOX.search(text)
    else:
        match = _GEOCHAT_BOX.search(text)
    return _box_of(match, scale)


#: The order :func:`parse_any_box` tries the formats in: marked formats first.
ANY_ORDER: Final[tuple[BoxFormat, ...]] = ("qwen", "internvl", "geochat", "unit", "pixel")


def parse_any_box(text: str, *, size: int | None = None) -> Box | None:
    """A box in any format: the first of :data:`ANY_ORDER` that finds one.

    The formats with their own markup (``bbox_2d``, ``<box>``, ``{<..>}``) come first, then the
    dataset's 0..1 box, then (only when ``size`` is given) a pixel box.

    Args:
        text: A model's answer.
        size: The side in pixels of the image the model saw (enables ``pixel``).

    Returns:
        The box, or None.
    """
    for fmt in ANY_ORDER:
        if fmt == "pixel" and size is None:
            continue
        box = parse_box_as(text, fmt, size=size)
        if box is not None:
            return box
    return None


def _quantise(v: float, scale: int) -> int:
    """Nearest integer of ``v * scale`` (halves up)."""
    return math.floor(v * scale + 0.5)


def check_box(box: Box, name: str = "box") -> Box:
    """``box`` as four floats, after checking that it is a valid 0..1 box.

    Raises:
        ConfigError: Not four finite numbers in 0..1 with ``x1 <= x2`` and ``y1 <= y2``.
    """
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={box!r} is not four numbers (x1, y1, x2, y2)") from None
    ok = _ordered(x1, y1, x2, y2)
    if ok is None or x1 > x2 or y1 > y2:
        raise ConfigError(
            f"{name}={box!r} is not a box: use (x1, y1, x2, y2) in 0..1 with x1 <= x2 and "
            "y1 <= y2 (top-left corner first)"
        )
    return (x1, y1, x2, y2)


def check_point(point: Point, name: str = "point") -> Point:
    """``point`` as two floats, after checking that it lies in 0..1.

    Raises:
        ConfigError: Not two finite numbers in 0..1.
    """
    try:
        x, y = (float(v) for v in point)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={point!r} is not two numbers (x, y)") from None
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (x, y)):
        raise ConfigError(f"{name}={point!r} is not a point: use (x, y) in 0..1")
    return (x, y)


def format_box(
    box: Box, fmt: BoxFormat = "unit", *, size: int | None = None, decimals: int = 2
) -> str:
    """Write a 0..1 box in format ``fmt`` (see the module docstring for each form).

    Args:
        box: ``(x1, y1, x2, y2)`` in 0..1, top-left corner first.
        fmt: The format.
        size: The image side in pixels (``pixel`` only).
        decimals: Decimals of the ``unit`` format (the dataset writes 2).

    Returns:
        The box as text.

    Raises:
        ConfigError: An invalid box, unknown ``fmt``, or ``pixel`` without a valid ``size``.
    """
    _check_format(fmt, size)
    x1, y1, x2, y2 = check_box(box)
    if fmt == "unit":
        return f"[{x1:.{decimals}f} {y1:.{decimals}f}, {x2:.{decimals}f} {y2:.{decimals}f}]"
    q1, r1, q2, r2 = (_quantise(v, _scale(fmt, size)) for v in (x1, y1, x2, y2))
    if fmt == "pixel":
        return f"[{q1} {r1}, {q2} {r2}]"
    if fmt == "qwen":
        return f'{{"bbox_2d": [{q1}, {r1}, {q2}, {r2}]}}'
    if fmt == "internvl":
        return f"<box>[[{q1}, {r1}, {q2}, {r2}]]</box>"
    return f"{{<{q1}><{r1}><{q2}><{r2}>}}"


def format_point(
    point: Point, fmt: BoxFormat = "unit", *, size: int | None = None, decimals: int = 2
) -> str:
    """Write a 0..1 point in format ``fmt`` (see the module docstring for each form).

    A ``pixel`` point names the pixel that holds it: ``min(floor(x * size), size - 1)``.

    Raises:
        ConfigError: An invalid point, unknown ``fmt``, or ``pixel`` without a valid ``size``.
    """
    _check_format(fmt, size)
    x, y = check_point(point)
    if fmt == "unit":
        return f"<point>({x:.{decimals}f}, {y:.{decimals}f})</point>"
    if fmt == "pixel":
        assert size is not None
        px, py = (min(math.floor(v * size), size - 1) for v in (x, y))
        return f"<point>({px}, {py})</point>"
    qx, qy = (_quantise(v, SCALES[fmt]) for v in (x, y))
    if fmt == "qwen":
        return f'{{"point_2d": [{qx}, {qy}]}}'
    if fmt == "internvl":
        return f"<point>[[{qx}, {qy}]]</point>"
    return f"{{<{qx}><{qy}>}}"


def parse_point_as(text: str, fmt: BoxFormat, *, size: int | None = None) -> Point | None:
    """The first point of format ``fmt`` anywhere in ``text``, as a 0..1 :data:`Point`.

    A ``pixel`` point reads back as the centre of its pixel, ``(px + 0.5) / size``.

    Returns:
        The point, or None when there is none or it lies outside the format's range.

    Raises:
        ConfigError: Unknown ``fmt``, or ``pixel`` without a valid ``size``.
    """
    _check_format(fmt, size)
    pattern = {
        "unit": _UNIT_POINT,
        "pixel": _UNIT_POINT,
        "qwen": _QWEN_POINT,
        "internvl": _INTERNVL_POINT,
        "geochat": _GEOCHAT_POINT,
    }[fmt]
    match = pattern.search(text)
    if match is None:
        return None
    try:
        x, y = float(match["x"]), float(match["y"])
    except (ValueError, OverflowError):
        return None
    if fmt == "pixel":
        assert size is not None
        if not all(math.isfinite(v) and 0 <= v < size for v in (x, y)):
            return None
        return ((math.floor(x) + 0.5) / size, (math.floor(y) + 0.5) / size)
    scale = _scale(fmt, size)
    x, y = x / scale, y / scale
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (x, y)):
        return None
    return (x, y)


def _decimals(text: str) -> int:
    """Decimals of the most precise number of a matched box or point (at least 2)."""
    return max([2, *(len(d) for d in re.findall(r"\.(\d+)", text))])


def map_dataset_geometry(
    text: str,
    on_box: Callable[[Box, int], str],
    on_point: Callable[[Point, int], str],
) -> str:
    """Rewrite every dataset-format box and point of a text through two functions.

    Boxes are bracketed groups of four numbers in 0..1 (:data:`DATASET_BOX`; a group with a
    value outside 0..1 is not a box and stays as it is), points ``<point>(x, y)</point>`` in 0..1
    (:data:`DATASET_POINT`), in one left-to-right pass.

    Args:
        text: Any text.
        on_box: ``(box, decimals) -> replacement`` (``decimals``: of the most precise number).
        on_point: ``(point, decimals) -> replacement``.

    Returns:
        The text with every box and point replaced.
    """

    def one(m: re.Match[str]) -> str:
        if m["x"] is not None:
            try:
                x, y = float(m["x"]), float(m["y"])
            except (ValueError, OverflowError):
                return m[0]
            if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (x, y)):
                return m[0]
            return on_point((x, y), _decimals(m[0]))
        found = _box_of(m, 1.0)
        return m[0] if found is None else on_box(found, _decimals(m[0]))

    return _GEOMETRY.sub(one, text)


def convert_text(text: str, fmt: BoxFormat, *, size: int | None = None) -> str:
    """Rewrite every dataset-format box and ``<point>(x, y)</point>`` of a text into ``fmt``.

    Boxes become :func:`format_box` and points :func:`format_point` of ``fmt``; ``<ref>`` markup
    and everything else stay as they are. ``unit`` keeps the text's own precision.

    Args:
        text: An ``input`` or ``output`` of the dataset.
        fmt: The target format.
        size: The image side in pixels (``pixel`` only).

    Raises:
        ConfigError: Unknown ``fmt``, or ``pixel`` without a valid ``size``.
    """
    _check_format(fmt, size)
    return map_dataset_geometry(
        text,
        lambda b, d: format_box(b, fmt, size=size, decimals=d),
        lambda p, d: format_point(p, fmt, size=size, decimals=d),
    )


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two 0..1 boxes (0.0 when the union has no area).

    Raises:
        ConfigError: A box is not four numbers in 0..1 in corner order.
    """
    ax1, ay1, ax2, ay2 = check_box(a, "a")
    bx1, by1, bx2, by2 = check_box(b, "b")
    w = min(ax2, bx2) - max(ax1, bx1)
    h = min(ay2, by2) - max(ay1, by1)
    inter = w * h if w > 0 and h > 0 else 0.0
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0

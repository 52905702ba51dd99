"""Geometry-consistent augmentation: the 8 symmetries of the square on images, boxes, points, text.

A flip or a 90-degree rotation of an image moves its land cover, so every label that speaks of
positions must move with it: boxes, ``<point>(x, y)</point>`` markup and the words ``left``,
``top``, ``upper-right``, ``north-west``... This module applies one :data:`Transform` to all of
them consistently (the convention of :mod:`lake.vlm.boxes`: origin top-left, x to the right,
y down, 0..1 at pixel edges).

With centred coordinates ``u = 2x - 1``, ``v = 2y - 1`` each transform is a signed permutation:

=============  =====================  =====================================================
transform      image ``(..., H, W)``   ``(u, v) ->``
=============  =====================  =====================================================
identity       as is                  ``(u, v)``
hflip          mirror columns         ``(-u, v)``
vflip          mirror rows            ``(u, -v)``
rot90          ``np.rot90`` (k=1)     ``(v, -u)`` counter-clockwise: top -> left -> bottom
rot180         ``np.rot90`` (k=2)     ``(-u, -v)``
rot270         ``np.rot90`` (k=3)     ``(-v, u)`` clockwise
transpose      swap rows and columns  ``(v, u)``: top <-> left
antitranspose  transpose + rot180     ``(-v, -u)``: top <-> right
=============  =====================  =====================================================

:func:`transform_text` rewrites, as whole words and keeping their case (``Top left``, ``TOP
LEFT``, ``Top Left``):

* the direction words of three vocabularies, each mapped within its own vocabulary: ``top`` /
  ``bottom`` / ``left`` / ``right`` (also ``topmost``...), ``upper`` / ``lower`` (whose
  horizontal counterparts are ``left`` / ``right``, so a lone ``upper`` turned to the side and
  back reads ``top``), and ``north`` / ``south`` / ``east`` /
  ``west`` (also ``northern``, ``northernmost``, ``northward(s)``, ``northerly``...);
* compounds as one unit, vertical word first: ``top left``, ``top-left``, ``upper right``,
  ``north-west``, ``north west``, ``northwest``, ``north-western``, ``north-westerly``; under
  ``rot90`` ``top left`` becomes ``bottom left`` (not ``left bottom``);
* ``horizontal(ly)`` <-> ``vertical(ly)`` under the transforms that swap the axes;
* every dataset-format box ``[x1 y1, x2 y2]`` and point ``<point>(x, y)</point>`` (same decimals).

It leaves alone words that only contain a direction (``rightly``, ``leftover``, ``topography``,
``bottomland``), ``centre`` / ``center`` / ``middle``, and cannot tell a direction from another
sense of the same word (``on top of``, ``right`` as in correct, ``lower`` as in less): the
dataset's questions use these words as directions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Final, Literal, get_args

import numpy as np

from lake.errors import ConfigError
from lake.vlm.boxes import Box, Point, format_box, format_point, map_dataset_geometry
from lake.vlm.rows import TextRow

#: The 8 symmetries of the square (see the module docstring).
Transform = Literal[
    "identity", "hflip", "vflip", "rot90", "rot180", "rot270", "transpose", "antitranspose"
]
#: Every :data:`Transform`.
TRANSFORMS: Final[tuple[Transform, ...]] = get_args(Transform)
#: The mirror-image transforms :func:`draw_transform` draws with ``flips`` only.
FLIPS: Final[tuple[Transform, ...]] = ("identity", "hflip", "vflip")
#: The rotations it draws with ``rotations`` only.
ROTATIONS: Final[tuple[Transform, ...]] = ("identity", "rot90", "rot180", "rot270")

Matrix = tuple[tuple[int, int], tuple[int, int]]
#: ``(u', v') = M (u, v)`` on centred coordinates.
MATRICES: Final[dict[str, Matrix]] = {
    "identity": ((1, 0), (0, 1)),
    "hflip": ((-1, 0), (0, 1)),
    "vflip": ((1, 0), (0, -1)),
    "rot90": ((0, 1), (-1, 0)),
    "rot180": ((-1, 0), (0, -1)),
    "rot270": ((0, -1), (1, 0)),
    "transpose": ((0, 1), (1, 0)),
    "antitranspose": ((0, -1), (-1, 0)),
}
_BY_MATRIX: Final = {m: t for t, m in MATRICES.items()}


def _check(t: object) -> Matrix:
    if not isinstance(t, str) or t not in MATRICES:
        raise ConfigError(f"transform {t!r} is unknown: use one of {', '.join(TRANSFORMS)}")
    return MATRICES[t]


def _matmul(a: Matrix, b: Matrix) -> Matrix:
    return (
        (a[0][0] * b[0][0] + a[0][1] * b[1][0], a[0][0] * b[0][1] + a[0][1] * b[1][1]),
        (a[1][0] * b[0][0] + a[1][1] * b[1][0], a[1][0] * b[0][1] + a[1][1] * b[1][1]),
    )


def compose(first: Transform, then: Transform) -> Transform:
    """The single transform equal to applying ``first`` and then ``then``.

    Raises:
        ConfigError: An unknown transform.
    """
    return _BY_MATRIX[_matmul(_check(then), _check(first))]  # type: ignore[return-value]


def inverse(t: Transform) -> Transform:
    """The transform that undoes ``t`` (``rot90`` <-> ``rot270``; the others undo themselves).

    Raises:
        ConfigError: An unknown transform.
    """
    (a, b), (c, d) = _check(t)
    return _BY_MATRIX[((a, c), (b, d))]  # type: ignore[return-value]  # orthogonal: M^-1 = M^T


def draw_transform(
    rng: np.random.Generator, *, flips: bool = True, rotations: bool = True
) -> Transform:
    """A uniformly drawn transform: of all 8 (both), :data:`FLIPS`, :data:`ROTATIONS`, or identity.

    Args:
        rng: The generator (one draw of ``rng.integers``).
        flips: Allow mirror images.
        rotations: Allow 90-degree rotations.
    """
    if flips and rotations:
        choices = TRANSFORMS
    elif flips:
        choices = FLIPS
    elif rotations:
        choices = ROTATIONS
    else:
        return "identity"
    return choices[int(rng.integers(len(choices)))]


def transform_image(array: np.ndarray, t: Transform) -> np.ndarray:
    """Apply ``t`` to the last two axes ``(..., H, W)`` of an array (a C-contiguous copy).

    Raises:
        ConfigError: An unknown transform or an array with fewer than 2 axes.
    """
    _check(t)
    array = np.asarray(array)
    if array.ndim < 2:
        raise ConfigError(f"transform_image: expected an array (..., H, W), got {array.shape}")
    axes = (-2, -1)
    out = {
        "identity": lambda a: a,
        "hflip": lambda a: a[..., ::-1],
        "vflip": lambda a: a[..., ::-1, :],
        "rot90": lambda a: np.rot90(a, 1, axes=axes),
        "rot180": lambda a: np.rot90(a, 2, axes=axes),
        "rot270": lambda a: np.rot90(a, 3, axes=axes),
        "transpose": lambda a: np.swapaxes(a, -1, -2),
        "antitranspose": lambda a: np.rot90(np.swapaxes(a, -1, -2), 2, axes=axes),
    }[t](array)
    return np.array(out, order="C", copy=True)


def _coord(row: tuple[int, int], x: float, y: float) -> float:
    """One new coordinate: x, 1 - x, y or 1 - y (exact, no centring round trip)."""
    a, b = row
    if a:
        return x if a > 0 else 1.0 - x
    return y if b > 0 else 1.0 - y


def transform_point(p: Point, t: Transform) -> Point:
    """Apply ``t`` to a 0..1 point ``(x, y)``.

    Raises:
        ConfigError: An unknown transform.
    """
    m = _check(t)
    x, y = float(p[0]), float(p[1])
    return (_coord(m[0], x, y), _coord(m[1], x, y))


def transform_box(box: Box, t: Transform) -> Box:
    """Apply ``t`` to a 0..1 box (both corners move; the result is in corner order again).

    Raises:
        ConfigError: An unknown transform.
    """
    ax, ay = transform_point((box[0], box[1]), t)
    bx, by = transform_point((box[2], box[3]), t)
    return (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))


# ---------------------------------------------------------------------------------------------
# Direction words

#: The vocabularies: (vertical -1, vertical +1, horizontal -1, horizontal +1), y down.
_VOCABULARIES: Final = {
    "screen": ("top", "bottom", "left", "right"),
    "upper": ("upper", "lower", "left", "right"),
    "compass": ("north", "south", "west", "east"),
}
#: Suffixes of single words per vocabulary, and the compound separators and suffixes.
_SUFFIXES: Final = {
    "screen": ("", "most"),
    "upper": ("", "most"),
    "compass": ("", "ern", "ernmost", "erly", "ward", "wards"),
}
_COMPOUND: Final = {
    "screen": ((" ", "-"), ("",)),
    "upper": ((" ", "-"), ("",)),
    "compass": ((" ", "-", ""), ("", "ern", "erly")),
}
Vector = tuple[int, int]
#: A spelling: (vocabulary, (dx, dy), separator, suffix); separator None for a single word.
Spelling = tuple[str, Vector, str | None, str]


def _spell(vocabulary: str, vec: Vector, sep: str | None, suffix: str) -> str:
    up, down, left, right = _VOCABULARIES[vocabulary]
    dx, dy = vec
    vertical = {-1: up, 1: down}.get(dy)
    horizontal = {-1: left, 1: right}.get(dx)
    if vertical and horizontal:
        return f"{vertical}{sep}{horizontal}{suffix}"
    word = vertical or horizontal
    assert word is not None
    return word + suffix


# Every spelling of the lexicon, factored by first letters so that a scan is fast (a flat
# alternation of the ~150 spellings is ten times slower); compounds are tried first.
_FACTORED: Final = (
    r"\b(?:(?:top|bottom|upper|lower)[ -](?:left|right)"
    r"|(?:north|south)[ -]?(?:east|west)(?:ern|erly)?"
    r"|(?:top|bottom|left|right|upper|lower)(?:most)?"
    r"|(?:north|south|east|west)(?:ernmost|ern|erly|wards|ward)?"
    r"|(?:horizontal|vertical)(?:ly)?)\b"
)


@lru_cache(maxsize=1)
def _lexicon() -> tuple[dict[str, Spelling], re.Pattern[str]]:
    """Every spelling (lower case) -> its meaning, and the regex that finds them."""
    words: dict[str, Spelling] = {}
    vectors = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]
    for vocabulary in _VOCABULARIES:
        seps, compound_suffixes = _COMPOUND[vocabulary]
        for vec in vectors:
            if vec[0] and vec[1]:
                for sep in seps:
                    for suffix in compound_suffixes:
                        spelled = _spell(vocabulary, vec, sep, suffix)
                        words.setdefault(spelled, (vocabulary, vec, sep, suffix))
            else:
                for suffix in _SUFFIXES[vocabulary]:
                    spelled = _spell(vocabulary, vec, None, suffix)
                    # "left"/"right" belong to the screen vocabulary (they end "upper" compounds)
                    words.setdefault(spelled, (vocabulary, vec, None, suffix))
    for word, vec in (("horizontal", (1, 0)), ("vertical", (0, 1))):
        for suffix in ("", "ly"):
            words[word + suffix] = ("axis", vec, None, suffix)
    pattern = re.compile(_FACTORED, re.IGNORECASE)
    assert all(pattern.fullmatch(w) for w in words)  # the regex finds every spelling
    return words, pattern


def _apply_matrix(m: Matrix, vec: Vector) -> Vector:
    dx, dy = vec
    return (m[0][0] * dx + m[0][1] * dy, m[1][0] * dx + m[1][1] * dy)


def _respell(spelling: Spelling, m: Matrix) -> str:
    vocabulary, vec, sep, suffix = spelling
    if vocabulary == "axis":
        horizontal = bool(abs(_apply_matrix(m, vec)[0]))
        return ("horizontal" if horizontal else "vertical") + suffix
    return _spell(vocabulary, _apply_matrix(m, vec), sep, suffix)


def _same_case(original: str, new: str) -> str:
    """``new`` in the case pattern of ``original`` (lower, Capitalised, Title Case, UPPER)."""
    letters = [c for c in original if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return new.upper()
    if original == original.title() and original != original.lower():
        return new.title()
    if original[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def _word_rewriter(t: Transform) -> Callable[[str], str]:
    m = _check(t)
    words, pattern = _lexicon()

    def one(match: re.Match[str]) -> str:
        found = match[0]
        spelling = words.get(found.lower())
        return found if spelling is None else _same_case(found, _respell(spelling, m))

    return lambda text: pattern.sub(one, text)


def transform_text(text: str, t: Transform) -> str:
    """Rewrite a text for an image transformed by ``t`` (see the module docstring for what).

    Raises:
        ConfigError: An unknown transform.
    """
    rewrite_words = _word_rewriter(t)
    if t == "identity":
        return text
    moved = map_dataset_geometry(
        text,
        lambda b, d: format_box(transform_box(b, t), "unit", decimals=d),
        lambda p, d: format_point(transform_point(p, t), "unit", decimals=d),
    )
    return rewrite_words(moved)


def transform_row(row: TextRow, t: Transform) -> TextRow:
    """A copy of a text row for an image transformed by ``t``.

    ``input``, ``output`` and every option go through :func:`transform_text` and the box through
    :func:`transform_box`; the answer index and answer stay (the options are rewritten in place,
    so the same letter still names the right one).

    Raises:
        ConfigError: An unknown transform.
    """
    _check(t)
    box = row["box"]
    return TextRow(
        id=row["id"],
        type=row["type"],
        category=row["category"],
        input=transform_text(row["input"], t),
        output=transform_text(row["output"], t),
        options=[transform_text(o, t) for o in row["options"]],
        answer_index=row["answer_index"],
        answer_bool=row["answer_bool"],
        box=None if box is None else transform_box(box, t),
    )

"""GeoJSON geometries and bounding boxes of search requests, checked before shapely sees them.

Shapely accepts much that is not a usable WGS 84 geometry (NaN or infinite coordinates, rings
it closes silently, 10-dimensional positions) and raises errors of several kinds on the rest
(``GeometryTypeError`` is not a ``ValueError``). Here every geometry of a request (``intersects``,
and the geometries and bboxes of a CQL2 filter) is walked without recursion and checked; each
problem is a :class:`~lake.errors.QueryError` that says what is wrong and where.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from catalog.limits import check_json_depth
from lake.errors import QueryError

if TYPE_CHECKING:
    import shapely

#: The most positions (vertices) one geometry may have. Larger ones make every row's exact
#: intersection test slow enough to tie up the server; simplify them first.
MAX_POSITIONS = 10_000

#: GeoJSON geometry type -> how deep its ``coordinates`` nest above a position.
_LEVELS = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}
_TYPES = (*_LEVELS, "GeometryCollection")


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value, allow_nan=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = repr(type(value))
    return text[:200] + ("..." if len(text) > 200 else "")


def check_bbox(value: Sequence[Any], what: str | None = None) -> tuple[float, float, float, float]:
    """``minx,miny,maxx,maxy`` (or the 6-number 3D form) in WGS 84 degrees, as 4 floats.

    ``minx > maxx`` is a box across the antimeridian.

    Args:
        value: The numbers (or strings of them).
        what: What the box is, with its value as the user wrote it, for messages
            (default ``bbox [...]``).

    Raises:
        QueryError: Not 4 or 6 finite numbers, or outside -180..180 / -90..90, or miny > maxy.
    """
    label = what or f"bbox {_shown(value)}"
    try:
        if isinstance(value, str | bytes) or any(isinstance(v, bool) for v in value):
            raise TypeError("not a list of numbers")
        numbers = [float(v) for v in value]
    except (TypeError, ValueError, OverflowError):
        raise QueryError(f"{label} must be 4 (or 6) numbers: minx,miny,maxx,maxy") from None
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise QueryError(f"{label} must be 4 (or 6) finite numbers: minx,miny,maxx,maxy")
    minx, miny, maxx, maxy = numbers
    if not (
        -180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90
    ):
        raise QueryError(f"{label} is outside -180..180 (lon), -90..90 (lat)")
    if miny > maxy:
        raise QueryError(f"{label}: miny is above maxy")
    return minx, miny, maxx, maxy


def _position(value: Any, where: str) -> None:
    if not isinstance(value, list | tuple) or not 2 <= len(value) <= 3:
        raise QueryError(f"{where}: a position must be [lon, lat] or [lon, lat, height]")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise QueryError(f"{where}: coordinate {_shown(v)} is not a number")
        if not math.isfinite(v):
            raise QueryError(f"{where}: coordinate {v} is not a finite number")
    lon, lat = value[0], value[1]
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise QueryError(f"{where}: [{lon}, {lat}] is outside -180..180 (lon), -90..90 (lat)")


def _coordinates(kind: str, coords: Any, where: str) -> int:
    """Check ``coordinates`` of a simple geometry type; the number of positions."""
    levels = _LEVELS[kind]
    count = 0
    stack: list[tuple[Any, int, str]] = [(coords, levels, where)]
    while stack:
        node, level, at = stack.pop()
        if level == 0:
            _position(node, at)
            count += 1
            if count > MAX_POSITIONS:
                raise QueryError(
                    f"{where} has more than {MAX_POSITIONS:,} positions (the limit "
                    "MAX_POSITIONS): simplify it"
                )
            continue
        if not isinstance(node, list | tuple):
            raise QueryError(
                f"{at}: a {kind} needs {'an array of ' * level}positions, got {_shown(node)}"
            )
        if not node:
            raise QueryError(f"{at}: an empty array in the coordinates of a {kind}")
        if not all(isinstance(child, list | tuple) for child in node):
            raise QueryError(
                f"{at}: a {kind} needs {'an array of ' * levels}positions, got {_shown(node)}"
            )
        if kind in ("Polygon", "MultiPolygon") and level == 1:
            if len(node) < 4:
                raise QueryError(f"{at}: a polygon ring needs at least 4 positions")
            first, last = node[0], node[-1]
            lists = isinstance(first, list | tuple) and isinstance(last, list | tuple)
            if lists and list(first) != list(last):
                raise QueryError(f"{at}: a polygon ring must end where it starts (closed)")
        if kind in ("LineString", "MultiLineString") and level == 1 and len(node) < 2:
            raise QueryError(f"{at}: a line needs at least 2 positions")
        stack.extend((child, level - 1, f"{at}[{i}]") for i, child in enumerate(node))
    return count


def check_geometry(value: Any, what: str = "intersects") -> shapely.Geometry:
    """A GeoJSON geometry (dict or JSON text) in WGS 84, checked, as a shapely geometry.

    Args:
        value: The geometry.
        what: What it is, for messages (``intersects``, ``the filter's geometry``).

    Raises:
        QueryError: Not JSON, not a GeoJSON geometry (unknown type, coordinates nested wrongly,
            not finite, outside -180..180/-90..90, a ring not closed), more than
            :data:`MAX_POSITIONS` positions, empty, or invalid (a self-intersecting polygon).
    """
    import shapely.errors
    import shapely.geometry

    if isinstance(value, str | bytes):
        check_json_depth(what, value)
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise QueryError(f"{what} is not JSON ({exc})") from None
    if not isinstance(value, Mapping):
        raise QueryError(f"{what} {_shown(value)} is not a GeoJSON geometry (an object)")
    check_json_depth(what, value)
    positions = 0
    stack: list[tuple[Any, str]] = [(value, what)]
    while stack:
        node, at = stack.pop()
        if not isinstance(node, Mapping):
            raise QueryError(f"{at} {_shown(node)} is not a GeoJSON geometry (an object)")
        kind = node.get("type")
        if kind not in _TYPES:
            raise QueryError(
                f"{at}: type {_shown(kind)} is not a GeoJSON geometry type ({', '.join(_TYPES)})"
            )
        if kind == "GeometryCollection":
            parts = node.get("geometries")
            if not isinstance(parts, list) or not parts:
                raise QueryError(f"{at}: a GeometryCollection needs a non-empty 'geometries'")
            stack.extend((p, f"{at}.geometries[{i}]") for i, p in enumerate(parts))
            continue
        if "coordinates" not in node:
            raise QueryError(f"{at}: a {kind} needs 'coordinates'")
        positions += _coordinates(str(kind), node["coordinates"], f"{at}.coordinates")
        if positions > MAX_POSITIONS:
            raise QueryError(
                f"{what} has more than {MAX_POSITIONS:,} positions (the limit MAX_POSITIONS): "
                "simplify it"
            )
    try:
        geom = shapely.geometry.shape(value)
        valid = geom.is_valid or geom.geom_type in ("Point", "MultiPoint")
    except (shapely.errors.ShapelyError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise QueryError(f"{what} is not a valid GeoJSON geometry ({exc})") from None
    if geom.is_empty:
        raise QueryError(f"{what} {_shown(value)} is empty")
    if not valid:
        reason = shapely.is_valid_reason(geom)
        raise QueryError(f"{what} {_shown(value)} is not a valid geometry ({reason})")
    return geom

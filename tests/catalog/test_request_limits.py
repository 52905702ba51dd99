"""Filters and geometries are measured and checked before any parser sees them (issue 11, item 3).

Deep or long filters are refused with a QueryError that names the limit, from the Python API
and the CLI alike; filters at the limits and real ones still work; every bad geometry or bbox
is a QueryError, never a shapely or RecursionError. The depths here stay below what crashes the
cql2 parser (about 1,500 levels) so that a missing check fails the test instead of killing it;
test_stac_api_fuzz.py sends the crashing depths to a server in a child process.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

import catalog
from catalog.cql import filter_sql, parse_filter
from catalog.geometry import MAX_POSITIONS
from catalog.limits import (
    MAX_FILTER_CHARS,
    MAX_FILTER_DEPTH,
    MAX_JSON_DEPTH,
    json_text_depth,
    json_value_depth,
    text_depth,
)
from catalog.request import SearchRequest, parse_bbox, parse_intersects
from catalog.search import Catalog
from lake.config import StoreSpec
from lake.errors import QueryError
from pipelines.cli import app

COND = "country = 'Portugal'"


def nested_text(kind: str, depth: int) -> str:
    """A CQL2 text filter that nests ``depth`` levels by one construct."""
    if kind == "parentheses":
        return "(" * depth + COND + ")" * depth
    if kind == "not":
        return "NOT " * depth + COND
    if kind == "function":
        return "casei(country) = " + "casei(" * depth + "'Portugal'" + ")" * depth
    if kind == "minus":
        return "sample_index = " + "-" * depth + "1"
    if kind == "arithmetic":
        return "sample_index = " + "1 + " * depth + "1"
    if kind == "comparison":
        return " = ".join(["country"] * (depth + 1))
    if kind == "and-in-parentheses":
        return "(sample_index >= 0 AND " * depth + COND + ")" * depth
    raise AssertionError(kind)


def nested_json(depth: int) -> dict[str, Any]:
    """A CQL2 JSON filter of ``depth`` stacked ``not`` around a comparison (built iteratively)."""
    tree: dict[str, Any] = {"op": "=", "args": [{"property": "country"}, "Portugal"]}
    for _ in range(depth):
        tree = {"op": "not", "args": [tree]}
    return tree


def nested_json_text(depth: int) -> str:
    """``nested_json(depth)`` as JSON text, written without recursion."""
    inner = '{"op": "=", "args": [{"property": "country"}, "Portugal"]}'
    return '{"op": "not", "args": [' * depth + inner + "]}" * depth


TEXT_KINDS = [
    "parentheses",
    "not",
    "function",
    "minus",
    "arithmetic",
    "comparison",
    "and-in-parentheses",
]


# ---------------------------------------------------------------------- measuring


def test_text_depth_counts_parentheses_and_chained_operators() -> None:
    assert text_depth(COND) == 1
    assert text_depth("NOT NOT a = -b") == 4
    assert text_depth("a = 1 AND b = 2 OR c = 3") == 1
    assert text_depth("((a = 1))") == 3
    assert text_depth("country IN ('a', 'b', 'c')") == 2
    assert text_depth("country = '(((((((((( NOT NOT NOT'") == 1  # inside a string
    assert text_depth('"((((" = 1') == 1  # inside a quoted identifier
    assert text_depth("country = 'it''s ((((('") == 1
    polygon = "POLYGON((-9 38, -8 38, -8 39, -9 39, -9 38))"
    assert text_depth(f"S_INTERSECTS(geometry, {polygon})") == 4  # 3 parentheses, one minus
    for kind in TEXT_KINDS:
        assert text_depth(nested_text(kind, 200)) >= 200, kind


def test_unclosed_quotes_are_measured_in_one_pass() -> None:
    assert text_depth("'" + "(" * 100_000) == 0
    assert json_text_depth(b'"' + b'\\"[' * 100_000) == 0
    assert json_text_depth('{"a": "[[[[", "b": [[1]]}') == 3
    assert json_text_depth("[" * 10_000) == 10_000


def test_json_values_are_measured_without_recursion() -> None:
    assert json_value_depth(nested_json(3)) == (9, 4)
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    depth, ops = json_value_depth({"op": "=", "args": [deep, 1]})
    assert depth > MAX_JSON_DEPTH and ops == 1


# ---------------------------------------------------------------------- refusing


@pytest.mark.parametrize("kind", TEXT_KINDS)
def test_a_deep_text_filter_is_refused_naming_the_limit(kind: str) -> None:
    with pytest.raises(QueryError, match="MAX_FILTER_DEPTH") as info:
        parse_filter(nested_text(kind, 400))
    assert f"at most {MAX_FILTER_DEPTH}" in str(info.value)


def test_deep_json_filters_are_refused_naming_the_limit() -> None:
    with pytest.raises(QueryError, match="MAX_FILTER_DEPTH"):
        parse_filter(nested_json(400))
    with pytest.raises(QueryError, match="MAX_JSON_DEPTH"):
        parse_filter(nested_json_text(400))
    with pytest.raises(QueryError, match="MAX_FILTER_DEPTH"):
        parse_filter(nested_json_text(55))  # under the JSON depth limit, over the 'op' one
    arrays = '{"op": "=", "args": [' + "[" * 300 + "1" + "]" * 300 + ", 1]}"
    with pytest.raises(QueryError, match="MAX_JSON_DEPTH"):
        parse_filter(arrays, "cql2-json")


def test_a_long_filter_is_refused_naming_the_limit() -> None:
    long = f"country = '{'x' * MAX_FILTER_CHARS}'"
    with pytest.raises(QueryError, match="MAX_FILTER_CHARS"):
        parse_filter(long)
    as_json = {"op": "=", "args": [{"property": "country"}, "x" * MAX_FILTER_CHARS]}
    with pytest.raises(QueryError, match="MAX_FILTER_CHARS"):
        parse_filter(as_json)


def test_the_translator_never_raises_recursion_error(cat: Catalog) -> None:
    with pytest.raises(QueryError, match="too deep"):
        filter_sql(nested_json(3_000), cat.queryables)


def test_python_api_and_cli_refuse_deep_filters(cat: Catalog, lake_spec: StoreSpec) -> None:
    deep = nested_text("not", 500)  # was a RecursionError deep inside catalog/cql.py
    with pytest.raises(QueryError, match="MAX_FILTER_DEPTH"):
        catalog.search(cat, filter=deep)
    with pytest.raises(QueryError, match="MAX_FILTER_DEPTH"):
        SearchRequest.build(filter=nested_json(500), filter_lang="cql2-json")
    result = CliRunner().invoke(
        app, ["search", "--lake", lake_spec.url, "--filter", deep], env={"LAKE_URL": ""}
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "MAX_FILTER_DEPTH" in result.output


# ---------------------------------------------------------------------- real filters still work


@pytest.mark.parametrize("kind", TEXT_KINDS)
def test_filters_at_the_depth_limit_still_work(cat: Catalog, kind: str) -> None:
    depth = MAX_FILTER_DEPTH - 1
    text = nested_text(kind, depth)
    assert text_depth(text) <= MAX_FILTER_DEPTH
    parse_filter(text)  # accepted (some are not meaningful filters to run)
    if kind in ("parentheses", "and-in-parentheses", "function"):
        got = [i.id for i in catalog.search(cat, filter=text).items]
        assert got == [i.id for i in catalog.search(cat, filter=COND).items] and got


def test_a_json_filter_at_the_limit_and_a_long_id_list_work(cat: Catalog, all_items: list) -> None:
    even = nested_json(MAX_FILTER_DEPTH - 2)  # an even number of not: the comparison itself
    got = [i.id for i in catalog.search(cat, filter=even).items]
    assert got == [i.id for i in catalog.search(cat, filter=COND).items] and got
    ids = [i["id"] for i in all_items] + [f"{all_items[0]['id']}_{n}" for n in range(900)]
    text = "id IN (" + ", ".join(f"'{i}'" for i in ids) + ")"
    assert 50_000 < len(text) <= MAX_FILTER_CHARS
    assert len(catalog.search(cat, filter=text).items) == len(all_items)


def test_a_realistic_filter_is_far_from_the_limits(cat: Catalog) -> None:
    text = (
        "(country IN ('Portugal', 'Austria') OR NOT (season = 'Winter')) AND "
        "S_INTERSECTS(geometry, POLYGON((-12 35, 32 35, 32 71, -12 71, -12 35))) AND "
        "T_INTERSECTS(datetime, INTERVAL('2017-06-01T00:00:00Z', '2018-05-31T23:59:59Z')) AND "
        "A_OVERLAPS(labels, ('Coniferous forest', 'Pastures')) AND casei(country) LIKE 'p%'"
    )
    assert text_depth(text) <= 8
    catalog.search(cat, filter=text)


# ---------------------------------------------------------------------- geometries


def ring(*points: tuple[float, float]) -> list[list[float]]:
    return [list(p) for p in points]


SQUARE = ring((-9, 38), (-8, 38), (-8, 39), (-9, 39), (-9, 38))
NAN = float("nan")
BAD_GEOMETRIES: list[tuple[Any, str]] = [
    ({"type": "Nope", "coordinates": []}, "not a GeoJSON geometry type"),
    ({"type": "Point"}, "needs 'coordinates'"),
    ({"type": "Point", "coordinates": []}, "position"),
    ({"type": "Point", "coordinates": [[1, 2]]}, "position"),
    ({"type": "Point", "coordinates": [1, 2, 3, 4]}, "position"),
    ({"type": "Point", "coordinates": [NAN, 1]}, "not a finite number"),
    ({"type": "Point", "coordinates": [float("inf"), 1]}, "not a finite number"),
    ({"type": "Point", "coordinates": [200, 1]}, "outside"),
    ({"type": "Point", "coordinates": ["1", 2]}, "not a number"),
    ({"type": "Point", "coordinates": [True, 2]}, "not a number"),
    ({"type": "LineString", "coordinates": [[1, 2]]}, "at least 2"),
    ({"type": "Polygon", "coordinates": [0, 0]}, "array of positions"),
    ({"type": "Polygon", "coordinates": SQUARE}, "array of"),
    ({"type": "Polygon", "coordinates": [SQUARE[:-1]]}, "closed"),
    ({"type": "Polygon", "coordinates": [SQUARE[:3]]}, "at least 4"),
    ({"type": "Polygon", "coordinates": []}, "empty"),
    ({"type": "Polygon", "coordinates": [ring((0, 0), (1, 1), (1, 0), (0, 1), (0, 0))]}, "valid"),
    ({"type": "MultiPolygon", "coordinates": [SQUARE]}, "array of"),
    ({"type": "GeometryCollection", "geometries": []}, "geometries"),
    ({"type": "GeometryCollection", "geometries": [{"type": "Nope"}]}, "geometries[0]"),
    ({"coordinates": [1, 2]}, "not a GeoJSON geometry type"),
    ([1, 2], "not a GeoJSON geometry"),
    ({"type": "Polygon", "coordinates": [[[0, 0]] * (MAX_POSITIONS + 1)]}, "MAX_POSITIONS"),
]


@pytest.mark.parametrize(("geometry", "words"), BAD_GEOMETRIES)
def test_every_bad_intersects_is_a_query_error(geometry: Any, words: str) -> None:
    with pytest.raises(QueryError, match="intersects") as info:
        parse_intersects(geometry)
    assert words in str(info.value)
    with pytest.raises(QueryError, match="intersects"):
        parse_intersects(json.dumps(geometry))


@pytest.mark.parametrize(("geometry", "words"), BAD_GEOMETRIES)
def test_every_bad_filter_geometry_is_a_query_error(
    cat: Catalog, geometry: Any, words: str
) -> None:
    tree = {"op": "s_intersects", "args": [{"property": "geometry"}, geometry]}
    with pytest.raises(QueryError):
        catalog.search(cat, filter=tree)


@pytest.mark.parametrize(
    "text",
    [
        "S_INTERSECTS(geometry, POLYGON((0 0, 1 0, 1 1, 0 1)))",  # not closed
        "S_INTERSECTS(geometry, POINT(200 1))",  # outside
        "S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))",  # self-intersecting
        "S_INTERSECTS(geometry, BBOX(0, 0, 1))",
        "S_INTERSECTS(geometry, BBOX(0, 10, 1, 0))",
    ],
)
def test_bad_wkt_and_bbox_in_text_filters_are_query_errors(cat: Catalog, text: str) -> None:
    with pytest.raises(QueryError):
        catalog.search(cat, filter=text)


def test_good_geometries_are_accepted() -> None:
    for geometry in (
        {"type": "Point", "coordinates": [-9, 38.5]},
        {"type": "Point", "coordinates": [-9, 38.5, 100]},
        {"type": "MultiPoint", "coordinates": [[-9, 38.5], [0, 0]]},
        {"type": "LineString", "coordinates": [[-9, 38.5], [0, 0]]},
        {"type": "Polygon", "coordinates": [SQUARE]},
        {"type": "MultiPolygon", "coordinates": [[SQUARE]]},
        {
            "type": "GeometryCollection",
            "geometries": [{"type": "Polygon", "coordinates": [SQUARE]}],
        },
    ):
        assert parse_intersects(geometry) == geometry


@pytest.mark.parametrize(
    ("bbox", "words"),
    [
        ("1,2,3", "4 (or 6)"),
        ("nan,0,1,1", "finite"),
        ("1e400,0,1,1", "finite"),
        ([0, 0, 1, True], "numbers"),
        ([0, 0, 1, None], "numbers"),
        ([0, 0, 1, "x"], "numbers"),
        ([0, 10, 1, 0], "miny is above maxy"),
        ("0,0,181,1", "outside"),
        ("," * 100_000, "numbers"),
    ],
)
def test_every_bad_bbox_is_a_query_error(bbox: Any, words: str) -> None:
    with pytest.raises(QueryError, match="bbox") as info:
        parse_bbox(bbox)
    assert words in str(info.value)


@pytest.mark.parametrize("text", ["country LIKE '\\'", "country LIKE 'Port%\\'"])
def test_a_like_pattern_ending_in_an_escape_is_a_query_error(cat: Catalog, text: str) -> None:
    with pytest.raises(QueryError, match="escape"):
        catalog.search(cat, filter=text)
    assert catalog.search(cat, filter="country LIKE 'Port%\\\\'").items == []  # an escaped one

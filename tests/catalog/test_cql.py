"""Unit tests of :mod:`catalog.cql`: CQL2 filters to DuckDB SQL with bound parameters.

Each filter is parsed, translated and run with its parameters in plain DuckDB over a six-row
table with the column types of ``items.parquet``; the ids it selects are compared with ids worked
out by hand from the rows below. Also: every value is a parameter (never SQL text), and each
kind of mistake is a :class:`~lake.errors.QueryError` that names what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
import shapely

from catalog.cql import Sql, bbox_overlap, filter_sql, parse_filter
from catalog.queryables import Queryables
from lake.duck import duckdb_connect
from lake.errors import QueryError


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


#: id, country, season, sample_index, snow, labels, datetime, start, end, footprint, s1_name,
#: proj:code. The footprints are boxes (xmin, ymin, xmax, ymax): a and d overlap, g touches a.
ROWS: list[tuple[Any, ...]] = [
    ("a", "Portugal", "Summer", 1, False, ["Pastures", "Urban fabric"],
     _t("2017-06-13T10:10:31"), _t("2017-06-12T00:00:00"), _t("2017-06-13T10:10:31"),
     (-9.0, 38.0, -8.0, 39.0), "S1A_a", "EPSG:32629"),
    ("b", "Austria", "Winter", 2, True, ["Coniferous forest"],
     _t("2017-12-01T00:00:00"), _t("2017-12-01T00:00:00"), _t("2017-12-01T00:00:00"),
     (12.0, 47.0, 13.0, 48.0), "S1B_b", "EPSG:32633"),
    ("c", "Finland", "Fall", 3, False, ["Coniferous forest", "Mixed forest", "Pastures"],
     _t("2018-09-30T23:59:59"), _t("2018-09-29T00:00:00"), _t("2018-09-30T23:59:59"),
     (25.0, 60.0, 26.0, 61.0), "S1A_%_100", "EPSG:32635"),
    ("d", "Portugal", "Spring", 10, False, [],
     _t("2017-03-21T12:00:00"), _t("2017-03-20T00:00:00"), _t("2017-03-22T00:00:00"),
     (-8.5, 38.5, -7.5, 39.5), "it's; -- /*", "EPSG:32629"),
    ("e", None, "Summer", 20, None, ["Urban fabric"],
     _t("2018-06-01T00:00:00"), _t("2018-05-31T00:00:00"), _t("2018-06-01T00:00:00"),
     (170.0, -10.0, 171.0, -9.0), None, "EPSG:32660"),
    ("f", "Türkiye", "Fall", 7, False, ["Pastures"],
     _t("2017-06-30T00:00:00"), _t("2017-06-30T00:00:00"), _t("2017-06-30T00:00:00"),
     (30.0, 39.0, 31.0, 40.0), "S1A\\f", "EPSG:32636"),
]  # fmt: skip
ALL = "abcdef"

_DDL = """CREATE TABLE items (
    id VARCHAR, country VARCHAR, season VARCHAR, sample_index BIGINT,
    contains_seasonal_snow BOOLEAN, labels VARCHAR[], datetime TIMESTAMPTZ,
    start_datetime TIMESTAMPTZ, end_datetime TIMESTAMPTZ, geometry BLOB,
    bbox STRUCT(xmin DOUBLE, ymin DOUBLE, xmax DOUBLE, ymax DOUBLE), s1_name VARCHAR,
    "proj:code" VARCHAR
)"""


@pytest.fixture(scope="module")
def con() -> Iterator[Any]:
    """An in-memory DuckDB (spatial and icu loaded, as the catalog has) with the six rows."""
    connection = duckdb_connect(extensions=("spatial", "icu"))
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(_DDL)
    for row in ROWS:
        *head, box, s1_name, code = row
        xmin, ymin, xmax, ymax = box
        connection.execute(
            "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "{'xmin': ?, 'ymin': ?, 'xmax': ?, 'ymax': ?}, ?, ?)",
            [*head, shapely.to_wkb(shapely.box(*box)), xmin, ymin, xmax, ymax, s1_name, code],
        )
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def queryables(con: Any) -> Queryables:
    """The queryables of a catalog with the table's columns."""
    return Queryables.for_columns(r[0] for r in con.execute("DESCRIBE items").fetchall())


def translate(value: str | Mapping[str, Any], queryables: Queryables) -> Sql:
    """Parse (text or JSON) and translate a filter."""
    return filter_sql(parse_filter(value), queryables)


def selected(con: Any, sql: Sql) -> str:
    """The ids (as one string, in id order) of the rows a condition selects."""
    query = f"SELECT id FROM items WHERE {sql.sql} ORDER BY id"
    return "".join(r[0] for r in con.execute(query, list(sql.params)).fetchall())


def _string_values(node: Any) -> Iterator[str]:
    """Every string literal the user wrote in a CQL2 JSON tree (property names excluded)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for v in node:
            yield from _string_values(v)
    elif isinstance(node, Mapping) and "property" not in node:
        for key, v in node.items():
            if key != "op":
                yield from _string_values(v)


CASES: dict[str, list[tuple[str | dict[str, Any], str]]] = {
    "comparison": [
        ("country = 'Portugal'", "ad"),
        ("country <> 'Portugal'", "bcf"),  # NULL is neither equal nor unequal
        ("sample_index < 3", "ab"),
        ("sample_index <= 3", "abc"),
        ("sample_index > 7", "de"),
        ("sample_index >= 7", "def"),
        ("sample_index = 7.0", "f"),
        ("contains_seasonal_snow = true", "b"),
        ("contains_seasonal_snow = false", "acdf"),
        ("'Portugal' = country", "ad"),
        ("season > 'Spring'", "abe"),
    ],
    "logical": [
        ("country = 'Portugal' AND sample_index > 1", "d"),
        ("country = 'Austria' OR season = 'Fall'", "bcf"),
        ("NOT (country = 'Portugal')", "bcf"),
        ("(season = 'Summer' OR season = 'Fall') AND NOT sample_index > 10", "acf"),
        ({"op": "and", "args": [True, {"op": "=", "args": [{"property": "id"}, "c"]}]}, "c"),
    ],
    "isnull": [
        ("country IS NULL", "e"),
        ("country IS NOT NULL", "abcdf"),
        ("s1_name IS NULL AND contains_seasonal_snow IS NULL", "e"),
    ],
    "like": [
        ("s1_name LIKE 'S1A%'", "acf"),
        ("s1_name LIKE 'S1_\\_%'", "abc"),
        ("s1_name LIKE 'S1A_\\%\\_100'", "c"),  # escaped % and _ match themselves only
        ("s1_name LIKE 'S1A_%_1__'", "c"),
        ("s1_name LIKE 'S1A\\\\f'", "f"),  # an escaped backslash matches a backslash
        ("s1_name LIKE '%''s;%'", "d"),
        ("NOT s1_name LIKE 'S1%'", "d"),
        ("casei(s1_name) LIKE 's1b%'", "b"),
    ],
    "in": [
        ("season IN ('Summer', 'Fall')", "acef"),
        ("sample_index IN (1, 10)", "ad"),
        ("NOT season IN ('Summer', 'Fall')", "bd"),
        ("datetime IN ('2017-12-01T00:00:00Z', '2017-06-30')", "bf"),
    ],
    "between": [
        ("sample_index BETWEEN 2 AND 7", "bcf"),
        ("sample_index NOT BETWEEN 2 AND 7", "ade"),
        ("country BETWEEN 'B' AND 'P'", "c"),
        ("datetime BETWEEN '2017-06-01' AND '2017-06-30'", "af"),  # each end: its first instant
        (
            "datetime BETWEEN TIMESTAMP('2017-06-13T10:10:31Z') AND DATE('2017-12-01')",
            "abf",
        ),
    ],
    "casei and accenti": [
        ("casei(country) = casei('PORTUGAL')", "ad"),
        ("casei(country) = 'portugal'", "ad"),
        ("accenti(country) = accenti('Turkiye')", "f"),
        ("accenti(country) = 'Turkiye'", "f"),
        ("casei(accenti(country)) = casei(accenti('TÜRKIYE'))", "f"),
    ],
    "arithmetic": [
        ("sample_index + 1 > 10", "de"),
        ("sample_index - 1 = 0", "a"),
        ("sample_index * 2 = 20", "d"),
        ("sample_index / 4 = 2.5", "d"),
        ("sample_index % 3 = 1", "adf"),
        ("sample_index div 3 = 3", "d"),  # integer division, though cql2 reads 3 as 3.0
        ("sample_index div 4 = 2.5", ""),
        ({"op": "=", "args": [{"op": "div", "args": [-7, 2]}, -3]}, ALL),  # truncated
        ("sample_index ^ 2 = 100", "d"),
        ("(sample_index + 2) * 2 = 18", "f"),
    ],
    "array": [
        ("a_contains(labels, ('Pastures'))", "acf"),
        ("a_contains(labels, ('Coniferous forest', 'Pastures'))", "c"),
        ("a_overlaps(labels, ('Mixed forest', 'Urban fabric'))", "ace"),
        ("a_equals(labels, ('Coniferous forest'))", "b"),
        ("a_containedBy(labels, ('Pastures', 'Urban fabric'))", "adef"),
        ("NOT a_overlaps(labels, ('Pastures'))", "bde"),
    ],
    "spatial": [
        ("s_intersects(geometry, BBOX(-10, 38, 0, 42))", "ad"),
        ("s_intersects(geometry, POLYGON((-10 36, 4 36, 4 44, -10 44, -10 36)))", "ad"),
        ("s_intersects(POLYGON((-10 36, 4 36, 4 44, -10 44, -10 36)), geometry)", "ad"),
        ("s_intersects(geometry, POINT(-8.25 38.75))", "ad"),
        ("s_intersects(geometry, LINESTRING(12.5 40, 12.5 50))", "b"),
        ("s_disjoint(geometry, BBOX(-10, 38, 0, 42))", "bcef"),
        ("s_within(geometry, POLYGON((-10 36, 4 36, 4 44, -10 44, -10 36)))", "ad"),
        ("s_contains(geometry, POINT(25.5 60.5))", "c"),
        ("s_equals(geometry, POLYGON((12 47, 13 47, 13 48, 12 48, 12 47)))", "b"),
        ("s_touches(geometry, BBOX(-8, 38, -7.8, 38.2))", "a"),
        ("s_touches(geometry, BBOX(-8.75, 38.25, -8.25, 38.75))", ""),  # meets a and d inside
        ("s_overlaps(geometry, BBOX(-8.75, 38.25, -8.25, 38.75))", "d"),  # inside a: not a
        ("s_overlaps(geometry, BBOX(-9.5, 38.5, -8.5, 39.5))", "a"),
        ("s_crosses(geometry, LINESTRING(11 47.5, 14 47.5))", "b"),
        (
            {
                "op": "s_intersects",
                "args": [
                    {"property": "geometry"},
                    {
                        "type": "Polygon",
                        "coordinates": [[[169, -11], [172, -11], [172, -8], [169, -8], [169, -11]]],
                    },
                ],
            },
            "e",
        ),
        (
            {
                "op": "s_intersects",
                "args": [
                    {"property": "geometry"},
                    {
                        "type": "GeometryCollection",
                        "geometries": [
                            {"type": "Point", "coordinates": [30.5, 39.5]},
                            {"type": "Point", "coordinates": [12.5, 47.5]},
                        ],
                    },
                ],
            },
            "bf",
        ),
        ({"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [0, 0, 1, 1]}]}, ""),
    ],
    "temporal": [
        ("t_after(datetime, TIMESTAMP('2018-01-01T00:00:00Z'))", "ce"),
        ("t_after(datetime, TIMESTAMP('2018-06-01T00:00:00Z'))", "c"),  # e equals it: not after
        ("t_before(datetime, DATE('2017-06-14'))", "ad"),
        ("t_before(datetime, '2017-06-13T10:10:31Z')", "d"),
        ("t_equals(datetime, TIMESTAMP('2017-12-01T00:00:00Z'))", "b"),
        ("t_intersects(datetime, INTERVAL('2017-06-01', '2017-06-30'))", "af"),  # to 06-30's end
        ("t_intersects(datetime, INTERVAL('2018', '..'))", "ce"),
        ("t_intersects(datetime, INTERVAL('..', '2017-06'))", "adf"),
        ("t_disjoint(datetime, INTERVAL('2017-06-01', '2017-06-30'))", "bcde"),
        ("t_intersects(datetime, '2017-06')", "af"),  # a string stands for its whole month
        ("t_during(INTERVAL(start_datetime, end_datetime), INTERVAL('2017', '2017'))", "abdf"),
        ("t_contains(INTERVAL(start_datetime, end_datetime), DATE('2018-09-30'))", "c"),
        ("t_starts(INTERVAL(start_datetime, end_datetime), INTERVAL('2018-05-31', '2019'))", "e"),
        (
            "t_startedby(INTERVAL('2018-09-29', '2019'), INTERVAL(start_datetime, end_datetime))",
            "c",
        ),
        (
            "t_finishes(INTERVAL(start_datetime, end_datetime),"
            " INTERVAL('2017', '2017-03-22T00:00:00Z'))",
            "d",
        ),
        ("t_meets(INTERVAL(start_datetime, end_datetime), TIMESTAMP('2017-12-01T00:00:00Z'))", "b"),
        ("t_metby(INTERVAL(start_datetime, end_datetime), TIMESTAMP('2017-06-30T00:00:00Z'))", "f"),
        (
            "t_overlaps(INTERVAL(start_datetime, end_datetime),"
            " INTERVAL('2017-06-13T00:00:00Z', '2017-06-14T00:00:00Z'))",
            "a",
        ),
        (
            "t_overlappedby(INTERVAL(start_datetime, end_datetime),"
            " INTERVAL('2017-03-19T00:00:00Z', '2017-03-21T00:00:00Z'))",
            "d",
        ),
        (
            "t_overlappedby(INTERVAL(start_datetime, end_datetime),"
            " INTERVAL('2017-03-20T00:00:00Z', '2017-03-21T00:00:00Z'))",
            "",  # the same start: d starts it, it does not overlap d
        ),
        (
            "t_during(INTERVAL(start_datetime, end_datetime),"
            " INTERVAL('2017-06-12T00:00:00Z', '2017-06-13T10:10:31Z'))",
            "",  # equal to a's interval: not during it
        ),
        (
            "t_meets(INTERVAL(start_datetime, end_datetime), TIMESTAMP('2017-06-13T10:10:31Z'))",
            "a",
        ),
        (
            "t_finishedby(INTERVAL(start_datetime, end_datetime),"
            " INTERVAL('2018-09-29T12:00:00Z', '2018-09-30T23:59:59Z'))",
            "c",
        ),
        (
            {
                "op": "t_after",
                "args": [{"property": "datetime"}, {"interval": ["..", "2017-06-13T10:10:30Z"]}],
            },
            "abcef",
        ),
    ],
    "times": [
        ("datetime = TIMESTAMP('2017-06-13T10:10:31Z')", "a"),
        ("datetime = TIMESTAMP('2017-06-13T12:10:31+02:00')", "a"),
        ("datetime = '2017-06-13T10:10:31Z'", "a"),  # a string compared with a time is a time
        ("datetime > '2018'", "ce"),  # a partial date compares as its first instant
        ("datetime >= DATE('2017-12-01')", "bce"),
        ("'2018-01-01' < datetime", "ce"),
    ],
    "properties": [
        ("\"proj:code\" = 'EPSG:32629'", "ad"),
        ({"op": "=", "args": [{"property": "properties.country"}, "Austria"]}, "b"),
        ({"op": "=", "args": [{"property": "proj:code"}, "EPSG:32633"]}, "b"),
        ("id = 'e'", "e"),
    ],
    "values that look like SQL": [
        ("s1_name = 'it''s; -- /*'", "d"),
        ("country = 'x'' OR 1=1 --'", ""),
        ("country = 'Portugal''; DROP TABLE items; --'", ""),
        ("country IN ('*/ OR TRUE /*', ''') OR (''1''=''1')", ""),
        ("s1_name LIKE '%''; SELECT 1; --'", ""),
        ("a_contains(labels, ('x''] OR TRUE --'))", ""),
        ("casei(country) = casei('\" OR 1=1 --')", ""),
    ],
}
FLAT = [
    pytest.param(value, want, id=f"{group}: {value if isinstance(value, str) else i}")
    for group, cases in CASES.items()
    for i, (value, want) in enumerate(cases)
]


@pytest.mark.parametrize(("value", "want"), FLAT)
def test_filter_selects_the_rows_worked_out_by_hand(
    con: Any, queryables: Queryables, value: str | dict[str, Any], want: str
) -> None:
    sql = translate(value, queryables)
    assert sql.kind == "boolean"
    assert selected(con, sql) == want


@pytest.mark.parametrize(("value", "want"), FLAT)
def test_text_and_json_forms_translate_alike(
    queryables: Queryables, value: str | dict[str, Any], want: str
) -> None:
    tree = parse_filter(value)
    from_json = parse_filter(json.dumps(tree), "cql2-json")
    again = filter_sql(from_json, queryables)
    first = filter_sql(tree, queryables)
    assert (again.sql, _comparable(again.params)) == (first.sql, _comparable(first.params))


def _comparable(params: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(p.hex() if isinstance(p, bytes) else p for p in params)


@pytest.mark.parametrize(("value", "want"), FLAT)
def test_every_value_is_a_parameter_never_sql_text(
    queryables: Queryables, value: str | dict[str, Any], want: str
) -> None:
    tree = parse_filter(value)
    sql = filter_sql(tree, queryables)
    assert sql.sql.count("?") == len(sql.params)
    text = sql.sql.replace("ESCAPE '\\'", "")  # the one quoted literal of ours
    assert "'" not in text and "--" not in text and ";" not in text and "/*" not in text
    for literal in _string_values(tree):
        if len(literal) >= 3:  # shorter ones may be parts of column names
            assert literal not in text, f"{literal!r} pasted into {sql.sql}"


def test_literals_with_quotes_semicolons_and_comments_arrive_as_parameters(
    con: Any, queryables: Queryables
) -> None:
    evil = "Portugal'; DROP TABLE items; -- /* */"
    sql = translate({"op": "=", "args": [{"property": "country"}, evil]}, queryables)
    assert sql.sql == '("country" = ?)'
    assert sql.params == (evil,)
    assert selected(con, sql) == ""
    assert con.execute("SELECT count(*) FROM items").fetchone() == (len(ROWS),)

    pattern = translate("s1_name LIKE 'it''s; -- /*'", queryables)
    assert pattern.sql == "(\"s1_name\" LIKE ? ESCAPE '\\')"
    assert pattern.params == ("it's; -- /*",)

    listed = translate("season IN ('a''b', 'c;d', 'e--f')", queryables)
    assert listed.sql == '("season" IN (?, ?, ?))'
    assert listed.params == ("a'b", "c;d", "e--f")


def test_property_names_are_quoted_columns(queryables: Queryables) -> None:
    sql = translate("\"proj:code\" = 'EPSG:32629' AND country = 'Portugal'", queryables)
    assert sql.sql == '(("proj:code" = ?) AND ("country" = ?))'
    assert sql.params == ("EPSG:32629", "Portugal")


def test_spatial_test_on_geometry_has_a_bbox_prefilter_parquet_statistics_can_use(
    queryables: Queryables,
) -> None:
    sql = translate("s_intersects(geometry, BBOX(-10, 38, 0, 42))", queryables)
    overlap = bbox_overlap((-10, 38, 0, 42))
    assert sql.sql.startswith(f"({overlap.sql} AND ST_Intersects(ST_GeomFromWKB(")
    assert sql.params[:4] == overlap.params == (0.0, -10.0, 42.0, 38.0)
    assert shapely.from_wkb(sql.params[4]).equals(shapely.box(-10, 38, 0, 42))
    disjoint = translate("s_disjoint(geometry, BBOX(-10, 38, 0, 42))", queryables)
    assert "bbox.xmin" not in disjoint.sql  # a prefilter would drop the disjoint rows


def test_bbox_overlap_selects_the_rows_whose_bbox_meets_the_box(con: Any) -> None:
    assert selected(con, bbox_overlap((-8.0, 39.0, 12.0, 47.0))) == "abd"  # edges touch
    assert selected(con, bbox_overlap((-7.4, 39.6, 11.9, 46.9))) == ""


def test_a_contains_binds_one_parameter_per_value(queryables: Queryables) -> None:
    sql = translate("a_contains(labels, ('Pastures', 'Mixed forest'))", queryables)
    assert sql.sql == '(list_contains("labels", ?) AND list_contains("labels", ?))'
    assert sql.params == ("Pastures", "Mixed forest")


def test_a_true_or_false_filter_is_a_condition(con: Any, queryables: Queryables) -> None:
    assert selected(con, translate("true", queryables)) == ALL
    assert selected(con, translate({"op": "=", "args": [True, False]}, queryables)) == ""


ERRORS: list[tuple[str | dict[str, Any], str]] = [
    ("nope = 1", "unknown property 'nope': queryable properties are "),
    ({"op": "=", "args": [{"property": 'country" OR 1=1 --'}, 1]}, "unknown property"),
    ("s_intersects(footprint, BBOX(0, 0, 1, 1))", "unknown property 'footprint'"),
    ("foo(country) = 'x'", "operator or function 'foo' is not supported"),
    ({"op": "s_nearby", "args": [{"property": "geometry"}, 1]}, "'s_nearby' is not supported"),
    ({"op": "unknown_op", "args": []}, "'unknown_op' is not supported"),
    ("country = 5", r"cannot compare country \(string\) with 5"),
    ("sample_index = 'five'", r"cannot compare sample_index \(number\) with 'five'"),
    ("datetime > 'soon'", "'soon'"),
    ("geometry = 'x'", "use the s_\\*, a_\\* or t_\\* functions"),
    ("labels = 'Pastures'", "use the s_\\*, a_\\* or t_\\* functions"),
    ("sample_index LIKE '1%'", "like compares strings"),
    ({"op": "like", "args": [{"property": "country"}, "Port\\"]}, "lone escape character"),
    ("contains_seasonal_snow BETWEEN 0 AND 1", "between needs a number, time or string"),
    ("country + 1 > 2", "arithmetic \\+ needs numbers"),
    ("casei(sample_index) = 'x'", r"casei takes a string, not sample_index \(number\)"),
    ("a_contains(country, ('x'))", r"a_contains compares arrays, not country \(string\)"),
    (
        {"op": "a_contains", "args": [{"property": "labels"}, [{"property": "country"}]]},
        "only literal strings, numbers or booleans",
    ),
    ("s_intersects(country, BBOX(0, 0, 1, 1))", r"compares geometries, not country \(string\)"),
    ("t_after(country, DATE('2017-01-01'))", r"compares times or intervals, not country"),
    ("t_after(datetime, 5)", "compares times or intervals, not 5"),
    ({"op": "t_after", "args": [{"property": "datetime"}, {"interval": ["2017"]}]}, "start and"),
    (
        {
            "op": "t_after",
            "args": [{"property": "datetime"}, {"interval": [{"property": "id"}, ".."]}],
        },
        "interval end id is not a time",
    ),
    ({"op": "in", "args": [{"property": "season"}, []]}, "value and a non-empty list"),
    ({"op": "and", "args": [True]}, "and needs at least two conditions"),
    ({"op": "or", "args": [True, {"property": "country"}]}, "or: country is not a condition"),
    ({"op": "not", "args": [True, False]}, "not takes 1 argument\\(s\\), got 2"),
    ({"op": "not", "args": [{"property": "sample_index"}]}, "not: sample_index is not a cond"),
    ({"op": "+", "args": [{"property": "sample_index"}, 1]}, "must be a condition, not a number"),
    ({"op": "casei", "args": [{"property": "country"}]}, "must be a condition, not a string"),
    (
        {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [0, 0, 1]}]},
        "the filter's bbox .* must be 4 \\(or 6\\)",
    ),
    (
        {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [0, 91, 1, 92]}]},
        "outside -180..180",
    ),
    ("country = ", "not valid cql2-text"),
    ('{"op": "="}', "not valid cql2-json"),
]


@pytest.mark.parametrize(("value", "words"), ERRORS)
def test_mistakes_are_query_errors_that_name_them(
    queryables: Queryables, value: str | dict[str, Any], words: str
) -> None:
    with pytest.raises(QueryError, match=words) as info:
        translate(value, queryables)
    assert isinstance(info.value, ValueError)


def test_unknown_filter_language_is_named() -> None:
    with pytest.raises(QueryError, match="filter-lang 'sql' is not supported: use cql2-text"):
        parse_filter("country = 'x'", "sql")


def test_a_filter_that_is_not_text_or_json_is_refused() -> None:
    with pytest.raises(QueryError, match="must be CQL2 text or a CQL2 JSON object"):
        parse_filter(42)  # type: ignore[arg-type]


def test_a_property_this_catalog_lacks_is_unknown_even_if_others_have_it() -> None:
    narrow = Queryables.for_columns(["id", "country"])
    assert translate("country = 'x'", narrow).params == ("x",)
    with pytest.raises(
        QueryError, match="unknown property 'season': queryable properties are country, id"
    ):
        translate("season = 'Summer'", narrow)

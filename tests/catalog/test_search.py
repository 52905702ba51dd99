"""Search semantics through the Python API: each parameter against an independent reference
(shapely for geometry, Python for times, the cql2 package's own evaluator for filters), paging,
sorting, fields, Arrow output, and the errors a user meets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import cql2
import pyarrow as pa
import pystac
import pytest
import shapely
import shapely.geometry

import catalog
from catalog.request import SearchRequest
from catalog.search import Catalog
from lake.config import StoreSpec
from lake.errors import QueryError


def ids_of(result: Any) -> list[str]:
    if isinstance(result, pa.Table):
        return list(result["id"].to_pylist())
    return [i.id for i in result.items]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_no_parameters_gives_every_item_in_id_order(cat: Catalog, all_items: list) -> None:
    result = catalog.search(cat)
    assert isinstance(result, pystac.ItemCollection)
    assert ids_of(result) == sorted(i["id"] for i in all_items)


def test_default_order_is_the_order_by_id(cat: Catalog) -> None:
    unsorted = catalog.search(cat, filter="sample_index >= 5", as_arrow=True)
    by_id = catalog.search(cat, filter="sample_index >= 5", sortby="+id", as_arrow=True)
    assert ids_of(unsorted) == ids_of(by_id) == sorted(ids_of(by_id))


def test_bbox_matches_shapely(cat: Catalog, all_items: list) -> None:
    for item in all_items[::10]:
        x, y = shapely.geometry.shape(item["geometry"]).centroid.coords[0]
        box = [x - 1.0, y - 0.5, x + 1.0, y + 0.5]
        expected = sorted(
            i["id"]
            for i in all_items
            if shapely.geometry.shape(i["geometry"]).intersects(shapely.box(*box))
        )
        assert ids_of(catalog.search(cat, bbox=box)) == expected
        assert item["id"] in expected
        assert ids_of(catalog.search(cat, bbox=",".join(map(str, box)))) == expected


def test_bbox_across_the_antimeridian_and_3d(cat: Catalog, all_items: list) -> None:
    assert ids_of(catalog.search(cat, bbox=[170, -90, -170, 90])) == []  # Europe is not there
    whole = catalog.search(cat, bbox=[-180, -90, -100, 180, 90, 100])
    assert len(ids_of(whole)) == len(all_items)


def test_intersects_matches_shapely(cat: Catalog, all_items: list) -> None:
    item = all_items[7]
    point = shapely.geometry.shape(item["geometry"]).centroid
    geom = point.buffer(0.8)
    expected = sorted(
        i["id"] for i in all_items if shapely.geometry.shape(i["geometry"]).intersects(geom)
    )
    got = ids_of(catalog.search(cat, intersects=shapely.geometry.mapping(geom)))
    assert got == expected and item["id"] in got
    point_hit = catalog.search(
        cat, intersects={"type": "Point", "coordinates": list(point.coords[0])}
    )
    assert ids_of(point_hit) == [item["id"]]


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2017-06/2017-09", "2017-06-01T00:00:00Z", "2017-09-30T23:59:59.999999Z"),
        ("../2017-10-15T00:00:00Z", None, "2017-10-15T00:00:00Z"),
        ("2018-01-01T00:00:00Z/..", "2018-01-01T00:00:00Z", None),
        (
            "2017-11-01T00:00:00+01:00/2018-02-01",
            "2017-10-31T23:00:00Z",
            "2018-02-01T23:59:59.999999Z",
        ),
        ("2017", "2017-01-01T00:00:00Z", "2017-12-31T23:59:59.999999Z"),
    ],
)
def test_datetime_intervals_meet_the_s1_s2_span(
    cat: Catalog, all_items: list, text: str, start: str | None, end: str | None
) -> None:
    lo = _time(start) if start else datetime.min.replace(tzinfo=UTC)
    hi = _time(end) if end else datetime.max.replace(tzinfo=UTC)
    expected = [
        i["id"]
        for i in all_items
        if _time(i["properties"]["end_datetime"]) >= lo
        and _time(i["properties"]["start_datetime"]) <= hi
    ]
    assert ids_of(catalog.search(cat, datetime=text)) == expected


def test_datetime_instant(cat: Catalog, all_items: list) -> None:
    item = all_items[3]
    got = ids_of(catalog.search(cat, datetime=item["properties"]["datetime"]))
    assert item["id"] in got
    assert all(
        _time(i["properties"]["start_datetime"]) <= _time(item["properties"]["datetime"])
        for i in all_items
        if i["id"] in got
    )


def test_ids_and_collections(cat: Catalog, all_items: list) -> None:
    wanted = [all_items[i]["id"] for i in (40, 2, 17)]
    assert ids_of(catalog.search(cat, ids=wanted)) == sorted(wanted)
    assert ids_of(catalog.search(cat, ids=",".join(wanted))) == sorted(wanted)
    assert ids_of(catalog.search(cat, ids=["nope"])) == []
    every = ids_of(catalog.search(cat, collections=["bigearthnet-v2", "other"]))
    assert len(every) == len(all_items)


FILTERS = [
    "country = 'Portugal'",
    "country <> 'Portugal' AND season = 'Summer'",
    "a_contains(labels, ('Pastures'))",
    "a_contains(labels, ('Coniferous forest', 'Mixed forest'))",
    "a_overlaps(labels, ('Pastures', 'Urban fabric'))",
    "season IN ('Summer', 'Fall') AND sample_index < 30",
    "sample_index BETWEEN 3 AND 19",
    "sample_index + 1 > 30",
    "s_intersects(geometry, bbox(-10, 38, 0, 42))",
    "s_within(geometry, POLYGON((-10 36, 4 36, 4 44, -10 44, -10 36)))",
    "t_intersects(datetime, interval('2017-06-01T00:00:00Z', '2017-09-01T00:00:00Z'))",
    "datetime > TIMESTAMP('2017-10-01T00:00:00Z')",
    "t_before(datetime, DATE('2017-10-01'))",
    "casei(country) = 'portugal'",
    "s1_name LIKE 'S1A%'",
    "NOT (country = 'Finland') OR annotations_binary > 5",
    "\"proj:code\" = 'EPSG:32629'",
    "collection = 'bigearthnet-v2' AND split = 'validation'",
    "\"ml-aoi:split\" = 'validate'",
    "contains_seasonal_snow = false AND annotations_captioning >= 1",
]


@pytest.mark.parametrize("text", FILTERS)
def test_filters_agree_with_the_cql2_evaluator(cat: Catalog, all_items: list, text: str) -> None:
    expr = cql2.parse_text(text)
    expected = [i["id"] for i in all_items if expr.matches(i)]
    assert ids_of(catalog.search(cat, filter=text)) == expected
    as_json = catalog.search(cat, filter=expr.to_json(), filter_lang="cql2-json")
    assert ids_of(as_json) == expected


def test_filters_select_something(cat: Catalog) -> None:
    hits = [len(ids_of(catalog.search(cat, filter=f, as_arrow=True))) for f in FILTERS]
    assert sum(1 for h in hits if 0 < h < 60) >= len(FILTERS) - 3


def test_all_parameters_together(cat: Catalog, all_items: list) -> None:
    box = [-10.0, 36.0, 30.0, 70.0]
    expr = cql2.parse_text("season = 'Fall'")
    expected = [
        i["id"]
        for i in all_items
        if shapely.geometry.shape(i["geometry"]).intersects(shapely.box(*box))
        and expr.matches(i)
        and _time(i["properties"]["end_datetime"]) >= _time("2017-09-01T00:00:00Z")
    ]
    got = catalog.search(
        cat, bbox=box, datetime="2017-09-01T00:00:00Z/..", filter="season = 'Fall'"
    )
    assert ids_of(got) == expected and expected


def test_sortby(cat: Catalog, all_items: list) -> None:
    got = catalog.search(cat, sortby="-datetime,+id")
    expected = sorted(all_items, key=lambda i: i["id"])
    expected = sorted(expected, key=lambda i: i["properties"]["datetime"], reverse=True)
    assert ids_of(got) == [i["id"] for i in expected]
    by_dict = catalog.search(
        cat,
        sortby=[
            {"field": "properties.country", "direction": "asc"},
            {"field": "sample_index", "direction": "desc"},
        ],
    )
    keyed = sorted(all_items, key=lambda i: -i["properties"]["sample_index"])
    keyed = sorted(keyed, key=lambda i: i["properties"]["country"])
    assert ids_of(by_dict) == [i["id"] for i in keyed]


@pytest.mark.parametrize("sortby", [None, "-datetime", "+country,-sample_index"])
def test_paging_gives_every_hit_exactly_once(cat: Catalog, sortby: str | None) -> None:
    whole = ids_of(catalog.search(cat, filter="sample_index >= 3", sortby=sortby))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = catalog.search(cat, filter="sample_index >= 3", sortby=sortby, limit=7, token=token)
        seen += ids_of(page)
        pages += 1
        token = page.extra_fields.get("next_token")
        if token is None:
            break
    assert pages == -(-len(whole) // 7) and pages > 1
    assert seen == whole and len(set(seen)) == len(seen)


def test_fields_include_and_exclude(cat: Catalog) -> None:
    request = SearchRequest.build(
        fields={"include": ["properties.country", "labels"], "exclude": ["assets", "geometry"]},
        limit=3,
    )
    items = cat.search(request).items()
    for item in items:
        assert set(item) == {
            "id",
            "type",
            "stac_version",
            "collection",
            "bbox",
            "links",
            "properties",
        }
        assert set(item["properties"]) == {"datetime", "country", "labels"}
    only_s1 = cat.search(
        SearchRequest.build(fields="id,-assets.s2_10m,-assets.reference_map", limit=1)
    )
    assert set(only_s1.items()[0]["assets"]) == {"s1", "s2_20m", "s2_60m"}
    columns = cat.columns(request.fields)
    assert not any("assets" in c or "geometry" in c for c in columns)  # never read


def test_fields_that_break_pystac_ask_for_arrow(cat: Catalog) -> None:
    with pytest.raises(QueryError, match="as_arrow=True"):
        catalog.search(cat, fields="-properties.datetime,-geometry", limit=2)
    table = catalog.search(cat, fields="-properties.datetime,-geometry", limit=2, as_arrow=True)
    assert "geometry" not in table.column_names and "datetime" not in table.column_names


def test_arrow_output_is_stac_geoparquet_rows(cat: Catalog, lake_spec: StoreSpec) -> None:
    table = catalog.search(lake_spec, filter="country = 'Portugal'", limit=2, as_arrow=True)
    assert isinstance(table, pa.Table) and table.num_rows == 2
    assert {"id", "geometry", "bbox", "assets", "datetime", "stac_version"} <= set(
        table.column_names
    )
    assert table.schema.metadata[b"next_token"]
    import stac_geoparquet.arrow as sga

    items = list(sga.stac_table_to_items(table))
    assert [i["id"] for i in items] == table["id"].to_pylist()


def test_item_hrefs_are_absolute_in_results(cat: Catalog, lake_spec: StoreSpec) -> None:
    item = catalog.search(cat, limit=1).items[0]
    assert item.assets["s2_10m"].href.startswith(lake_spec.url + "/patches/r1.zarr/s2_10m#sample=")


def test_search_by_url_opens_and_closes_the_catalog(lake_spec: StoreSpec, all_items: list) -> None:
    assert len(catalog.search(lake_spec.url, limit=5).items) == 5
    assert catalog.search(lake_spec.url, ids=all_items[0]["id"], release="r1").items


def test_one_item_by_id(cat: Catalog, all_items: list) -> None:
    assert cat.item(all_items[5]["id"]) == all_items[5]
    with pytest.raises(KeyError, match="is not in release"):
        cat.item("S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_99_99")


BAD = [
    ({"bbox": [1, 2, 3]}, "bbox"),
    ({"bbox": "a,b,c,d"}, "bbox"),
    ({"bbox": [0, 10, 1, 5]}, "miny"),
    ({"bbox": [0, 0, 200, 1]}, "outside"),
    ({"bbox": [0, 0, 1, 1], "intersects": {"type": "Point", "coordinates": [0, 0]}}, "together"),
    ({"intersects": {"type": "Polygon", "coordinates": [[1, 2]]}}, "intersects"),
    ({"intersects": "{not json"}, "not JSON"),
    ({"datetime": "yesterday"}, "'yesterday'"),
    ({"datetime": "2017-13"}, "2017-13"),
    ({"datetime": "../.."}, "open at both ends"),
    ({"datetime": "2018-01-01/2017-01-01"}, "starts after"),
    ({"filter": "country = "}, "not valid cql2-text"),
    ({"filter": '{"op": "="}', "filter_lang": "cql2-json"}, "not valid cql2-json"),
    ({"filter": "nope = 1"}, "unknown property 'nope'"),
    ({"filter": "country = 5"}, "cannot compare country"),
    ({"filter": "datetime > 'soon'"}, "'soon'"),
    ({"filter": "foo(country) = 'x'"}, "not supported"),
    ({"filter": "country = 'x'", "filter_lang": "sql"}, "filter-lang 'sql'"),
    ({"collections": ["landsat"]}, "unknown collection"),
    ({"sortby": "-nope"}, "unknown property 'nope'"),
    ({"sortby": "labels"}, "cannot be sorted"),
    ({"sortby": [{"field": "id", "direction": "up"}]}, "direction"),
    ({"fields": {"include": "id"}}, "list of field names"),
    ({"limit": 0}, "at least 1"),
    ({"limit": "ten"}, "positive integer"),
    ({"token": "not-a-token"}, "paging token"),
]


@pytest.mark.parametrize(("kwargs", "words"), BAD)
def test_bad_input_is_a_clear_query_error(cat: Catalog, kwargs: dict, words: str) -> None:
    with pytest.raises(QueryError, match=words.replace("(", r"\(")) as info:
        catalog.search(cat, **kwargs)
    assert isinstance(info.value, ValueError)


def test_values_are_never_sql(cat: Catalog, all_items: list) -> None:
    assert ids_of(catalog.search(cat, filter="country = 'x'' OR 1=1 --'")) == []
    assert ids_of(catalog.search(cat, ids=["x') OR TRUE --"])) == []
    with pytest.raises(QueryError, match="unknown property"):
        evil = {"op": "=", "args": [{"property": 'country" OR 1=1 --'}, 1]}
        catalog.search(cat, filter=evil)
    where = cat.where(SearchRequest.build(filter="country = 'Portugal; DROP TABLE items'"))
    assert "Portugal" not in where.sql and "Portugal; DROP TABLE items" in where.params


def test_items_equal_what_stac_geoparquet_reads(cat: Catalog, lake_spec: StoreSpec) -> None:
    """Search reads only the varying columns and fills in the constant ones: same Items."""
    import pyarrow.parquet as pq
    import stac_geoparquet.arrow as sga

    from catalog.rows import resolve

    table = pq.read_table(lake_spec.path("stac/r1/items.parquet"))
    theirs = {i["id"]: i for i in sga.stac_table_to_items(table)}
    for ours in cat.search(SearchRequest(limit=None)).items(absolute=False):
        expected = theirs[ours["id"]]
        for key in ("datetime", "start_datetime", "end_datetime"):  # they print microseconds
            expected["properties"][key] = expected["properties"][key].replace(".000000Z", "Z")
        assert ours == expected
        absolute = cat.search(SearchRequest(ids=(ours["id"],))).items()[0]
        href = expected["assets"]["s1"]["href"]
        assert absolute["assets"]["s1"]["href"] == resolve(href, cat.base_url)


def test_a_catalog_written_by_stac_geoparquet_alone_is_searchable(
    lake_spec: StoreSpec, all_items: list, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No constant marks and no id order: every column is read and the order is by id."""
    import stac_geoparquet.arrow as sga

    from lake.config import store_spec
    from lake.storage import filesystem

    copy = tmp_path_factory.mktemp("foreign") / "lake"
    filesystem(lake_spec).cp(lake_spec.root, str(copy), recursive=True)
    with Catalog(lake_spec) as original:
        plain = original.search(SearchRequest(limit=None)).items(absolute=False)
    items_file = copy / "stac" / "r1" / "items.parquet"
    sga.parse_stac_items_to_parquet(list(reversed(plain)), output_path=str(items_file))
    with Catalog(store_spec(str(copy), environ={})) as foreign:
        assert not foreign.sorted_by_id and not foreign.constants
        assert ids_of(catalog.search(foreign)) == [i["id"] for i in all_items]
        got = catalog.search(foreign, filter="country = 'Portugal'", sortby="-datetime", limit=3)
        want = catalog.search(lake_spec, filter="country = 'Portugal'", sortby="-datetime", limit=3)
        assert ids_of(got) == ids_of(want)


def test_arrow_rows_equal_the_file_rows(cat: Catalog, lake_spec: StoreSpec) -> None:
    import pyarrow.parquet as pq

    stored = pq.read_table(lake_spec.path("stac/r1/items.parquet"))
    got = catalog.search(cat, as_arrow=True)
    assert got.schema.remove_metadata() == stored.schema.remove_metadata()
    assert got.equals(stored.replace_schema_metadata(None))
    some = catalog.search(cat, fields="id,-assets.s1,-links", as_arrow=True, limit=2)
    assert "links" not in some.column_names and "s1" not in some["assets"].type.names

"""The STAC API (uvicorn in a thread on a free port): pystac-client uses it unchanged and gets
exactly what catalog.search gives; bad input is a 400 (unknown ids a 404), never a 500."""

from __future__ import annotations

import json
from typing import Any

import pystac
import pytest
import requests
from pystac_client import Client

import catalog
from catalog.search import Catalog
from tests.catalog.helpers import N_PAIRS
from tests.support.stac import validate

QUERY: dict[str, Any] = {
    "bbox": [-12.0, 35.0, 32.0, 71.0],
    "datetime": "2017-06-01T00:00:00Z/2018-05-31T23:59:59Z",
    "filter": "season IN ('Summer', 'Fall', 'Winter') AND sample_index >= 2",
    "sortby": "-properties.datetime",
}


def test_open_and_list_collections(api_url: str) -> None:
    client = Client.open(api_url)
    assert client.conforms_to("ITEM_SEARCH") and client.conforms_to("FILTER")
    assert client.conforms_to("SORT") and client.conforms_to("FIELDS")
    collections = list(client.get_collections())
    assert [c.id for c in collections] == ["bigearthnet-v2"]
    assert collections[0].extent.spatial.bboxes
    assert validate(requests.get(f"{api_url}/collections/bigearthnet-v2", timeout=30).json()) == []


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_search_pages_and_matches_the_python_api(cat: Catalog, api_url: str, method: str) -> None:
    client = Client.open(api_url)
    search = client.search(**QUERY, limit=7, method=method)
    pages = list(search.pages())
    got = [i.id for page in pages for i in page.items]
    expected = catalog.search(cat, **{**QUERY, "sortby": "-datetime"})
    assert isinstance(expected, pystac.ItemCollection)
    assert len(pages) > 1 and len(got) == len(set(got))
    assert got == [i.id for i in expected.items] and len(got) > 20
    first = pages[0].items[0]
    assert first.get_self_href() == f"{api_url}/collections/bigearthnet-v2/items/{first.id}"
    assert first.assets["s1"].href.startswith(cat.spec.url + "/patches/")


def test_filter_as_cql2_json_over_post(cat: Catalog, api_url: str) -> None:
    body = {
        "filter": {"op": "=", "args": [{"property": "country"}, "Portugal"]},
        "filter-lang": "cql2-json",
        "limit": 100,
    }
    r = requests.post(f"{api_url}/search", json=body, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    got = [f["id"] for f in r.json()["features"]]
    assert got == [i.id for i in catalog.search(cat, filter="country = 'Portugal'").items]


def test_fields_and_items_endpoints(api_url: str, all_items: list) -> None:
    r = requests.get(
        f"{api_url}/collections/bigearthnet-v2/items",
        params={"limit": 5, "fields": "properties.country,-assets,-geometry"},
        timeout=30,
    )
    features = r.json()["features"]
    assert len(features) == 5 and all("assets" not in f and "geometry" not in f for f in features)
    assert all(set(f["properties"]) == {"datetime", "country"} for f in features)
    one = requests.get(
        f"{api_url}/collections/bigearthnet-v2/items/{all_items[4]['id']}", timeout=30
    ).json()
    assert validate(one) == [] and one["id"] == all_items[4]["id"]
    whole = requests.get(f"{api_url}/collections/bigearthnet-v2/items", params={"limit": 100})
    assert len(whole.json()["features"]) == N_PAIRS


def test_landing_conformance_and_queryables(api_url: str) -> None:
    landing = requests.get(f"{api_url}/", timeout=30).json()
    rels = {link["rel"] for link in landing["links"]}
    assert {"self", "conformance", "data", "search", "service-desc"} <= rels
    assert validate({k: v for k, v in landing.items() if k != "conformsTo"}) == []
    conformance = requests.get(f"{api_url}/conformance", timeout=30).json()["conformsTo"]
    assert "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json" in conformance
    for path in ("/queryables", "/collections/bigearthnet-v2/queryables"):
        q = requests.get(f"{api_url}{path}", timeout=30).json()
        assert {"country", "labels", "datetime", "geometry"} <= set(q["properties"])
    api = requests.get(f"{api_url}/api", timeout=30).json()
    assert "/search" in api["paths"]


BAD_GET = [
    ({"bbox": "1,2,3"}, "bbox"),
    ({"bbox": "a,b,c,d"}, "bbox"),
    ({"datetime": "last week"}, "datetime"),
    ({"datetime": "2018-01-01/2017-01-01"}, "starts after"),
    ({"filter": "country ="}, "cql2-text"),
    ({"filter": "nope = 1"}, "unknown property 'nope'"),
    ({"filter": "country = 1"}, "cannot compare"),
    ({"filter": "{bad json", "filter-lang": "cql2-json"}, "cql2-json"),
    ({"filter": "country = 'x'", "filter-lang": "ecql"}, "filter-lang"),
    ({"filter-crs": "EPSG:3857", "filter": "country = 'x'"}, "filter-crs"),
    ({"collections": "landsat-8"}, "unknown collection"),
    ({"sortby": "+nope"}, "unknown property"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"token": "bogus"}, "token"),
    ({"intersects": "{}"}, "intersects"),
    ({"bbox": "0,0,1,1", "intersects": '{"type": "Point", "coordinates": [0, 0]}'}, "together"),
]


@pytest.mark.parametrize(("params", "words"), BAD_GET)
def test_bad_get_search_is_a_400_that_says_why(api_url: str, params: dict, words: str) -> None:
    r = requests.get(f"{api_url}/search", params=params, timeout=30)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "InvalidParameterValue" and words in body["description"]


BAD_POST: list[tuple[Any, str]] = [
    ({"bbox": [0, 0, 1]}, "bbox"),
    ({"bbox": "0,0,1,1"}, "bbox"),
    ({"datetime": 2017}, "datetime"),
    ({"filter": {"op": "like", "args": [{"property": "labels"}, "x"]}}, "like"),
    ({"filter": {"op": "s_intersects", "args": [{"property": "geometry"}, {"type": "Nope"}]}}, ""),
    ({"sortby": [{"field": "country", "direction": "sideways"}]}, "direction"),
    ({"fields": {"include": "id"}}, "fields"),
    ({"limit": 0}, "limit"),
    ({"collections": ["landsat-8"]}, "unknown collection"),
    ("not an object", ""),
]


@pytest.mark.parametrize(("body", "words"), BAD_POST)
def test_bad_post_search_is_a_400_that_says_why(api_url: str, body: Any, words: str) -> None:
    headers = {"content-type": "application/json"}
    r = requests.post(f"{api_url}/search", data=json.dumps(body), headers=headers, timeout=30)
    assert r.status_code == 400, r.text
    assert words in r.json()["description"]


def test_unknown_collection_and_item_are_404(api_url: str) -> None:
    for path in (
        "/collections/landsat-8",
        "/collections/landsat-8/items",
        "/collections/landsat-8/queryables",
        "/collections/bigearthnet-v2/items/S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_99_99",
    ):
        r = requests.get(f"{api_url}{path}", timeout=30)
        assert r.status_code == 404 and r.json()["code"] == "NotFound", path


def test_pystac_client_errors_are_api_errors(api_url: str) -> None:
    from pystac_client.exceptions import APIError

    client = Client.open(api_url)
    with pytest.raises(APIError, match="unknown property"):
        list(client.search(filter="nope = 1", max_items=1).items())

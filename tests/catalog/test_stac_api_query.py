"""The STAC query extension, unknown parameters and numberMatched, through pystac-client.

Before issue 14, ``query={"country": {"eq": "Austria"}}`` was ignored (every country came back
with HTTP 200) and unknown parameters or body fields were dropped silently.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from pystac_client import Client
from pystac_client.exceptions import APIError

import catalog
from catalog.query import parse_query
from catalog.search import Catalog
from lake.errors import QueryError


def _countries(all_items: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in all_items:
        c = item["properties"]["country"]
        out[c] = out.get(c, 0) + 1
    return out


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_query_eq_through_pystac_client(
    api_url: str, all_items: list[dict[str, Any]], method: str
) -> None:
    country, count = max(_countries(all_items).items(), key=lambda kv: kv[1])
    assert count < len(all_items)  # the test lake has other countries: the query must filter
    client = Client.open(api_url)
    assert client.conforms_to("QUERY")
    search = client.search(query={"country": {"eq": country}}, limit=5, method=method)
    got = [i for i in search.items()]
    assert len(got) == count and {i.properties["country"] for i in got} == {country}
    assert search.matched() == count


def test_query_operators_match_their_cql2(cat: Catalog, all_items: list[dict[str, Any]]) -> None:
    countries = sorted(_countries(all_items))
    a, b = countries[0], countries[-1]
    cases = [
        ({"country": {"neq": a}}, f"country <> '{a}'"),
        ({"country": {"in": [a, b]}}, f"country IN ('{a}', '{b}')"),
        ({"country": {"startsWith": a[:3]}}, f"country LIKE '{a[:3]}%'"),
        ({"country": {"endsWith": a[-3:]}}, f"country LIKE '%{a[-3:]}'"),
        ({"country": {"contains": a[1:4]}}, f"country LIKE '%{a[1:4]}%'"),
        ({"sample_index": {"gte": 3, "lt": 9}}, "sample_index >= 3 AND sample_index < 9"),
        ({"properties.sample_index": {"lte": 4}}, "sample_index <= 4"),
    ]
    for query, cql in cases:
        got = [i.id for i in catalog.search(cat, query=query).items]
        want = [i.id for i in catalog.search(cat, filter=cql).items]
        assert got == want and got, query


def test_query_and_filter_combine(cat: Catalog, all_items: list[dict[str, Any]]) -> None:
    country = sorted(_countries(all_items))[0]
    both = catalog.search(cat, query={"country": {"eq": country}}, filter="sample_index >= 10")
    want = catalog.search(cat, filter=f"country = '{country}' AND sample_index >= 10")
    assert [i.id for i in both.items] == [i.id for i in want.items]


def test_query_escapes_like_wildcards(cat: Catalog) -> None:
    assert list(catalog.search(cat, query={"country": {"contains": "%"}}).items) == []
    assert list(catalog.search(cat, query={"country": {"startsWith": "_"}}).items) == []


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("{not json", "not JSON"),
        ('["country"]', "must be an object"),
        ('{"country": "Austria"}', "object of operators"),
        ('{"country": {"like": "A%"}}', "unknown operator 'like'"),
        ('{"country": {"in": []}}', "non-empty list"),
        ('{"country": {"eq": null}}', "string, number or boolean"),
        ('{"country": {"startsWith": 3}}', "takes a string"),
        ('{"": {"eq": 1}}', "property name"),
    ],
)
def test_bad_queries_are_named(query: str, words: str) -> None:
    with pytest.raises(QueryError, match="query") as info:
        parse_query(query)
    assert words in str(info.value)


def test_bad_query_over_http_is_a_400(api_url: str) -> None:
    r = requests.get(f"{api_url}/search", params={"query": '{"nope": {"eq": 1}}'}, timeout=30)
    assert r.status_code == 400 and "nope" in r.json()["description"]
    r = requests.post(f"{api_url}/search", json={"query": {"country": {"xx": 1}}}, timeout=30)
    assert r.status_code == 400 and "unknown operator 'xx'" in r.json()["description"]
    with pytest.raises(APIError):
        list(Client.open(api_url).search(query={"country": {"xx": 1}}, method="POST").items())


@pytest.mark.parametrize("path", ["/search", "/collections/bigearthnet-v2/items"])
def test_unknown_get_parameters_are_a_400_naming_them(api_url: str, path: str) -> None:
    r = requests.get(f"{api_url}{path}", params={"limit": 2, "countri": "Austria"}, timeout=30)
    assert r.status_code == 400
    assert "'countri'" in r.json()["description"] and "limit" in r.json()["description"]


def test_unknown_body_fields_are_a_400_naming_them(api_url: str) -> None:
    r = requests.post(f"{api_url}/search", json={"limit": 2, "qeury": {}, "x": 1}, timeout=30)
    assert r.status_code == 400
    description = r.json()["description"]
    assert "'qeury'" in description and "'x'" in description


def test_number_matched(api_url: str, all_items: list[dict[str, Any]]) -> None:
    r = requests.get(f"{api_url}/search", params={"limit": 3}, timeout=30).json()
    assert r["numberMatched"] == len(all_items) and r["numberReturned"] == 3
    country, count = next(iter(_countries(all_items).items()))
    body = {"limit": 1, "query": {"country": {"eq": country}}}
    r = requests.post(f"{api_url}/search", json=body, timeout=30).json()
    assert r["numberMatched"] == count

"""The STAC API refuses what is too big, too deep or not a geometry with a 4xx that names the
limit or the problem, and answers HEAD like GET on every route (issue 11, item 3).

These run against the threaded server of conftest.py with depths that do not crash the cql2
parser; test_stac_api_fuzz.py sends the crashing ones to a server in a child process.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from catalog.limits import MAX_BODY_BYTES, MAX_QUERY_BYTES
from tests.catalog.test_request_limits import BAD_GEOMETRIES, nested_json_text, nested_text


def _json_body(body: Any) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


@pytest.mark.parametrize(("geometry", "words"), BAD_GEOMETRIES)
def test_every_bad_intersects_is_a_400(api_url: str, geometry: Any, words: str) -> None:
    text = json.dumps(geometry, allow_nan=True)
    r = requests.get(f"{api_url}/search", params={"intersects": text}, timeout=30)
    assert r.status_code == 400, r.text
    assert words in r.json()["description"]
    headers = {"content-type": "application/json"}
    r = requests.post(
        f"{api_url}/search", data=_json_body({"intersects": geometry}), headers=headers, timeout=30
    )
    assert r.status_code == 400, r.text
    tree = {"op": "s_intersects", "args": [{"property": "geometry"}, geometry]}
    r = requests.post(f"{api_url}/search", data=_json_body({"filter": tree}), headers=headers)
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("kind", ["parentheses", "not", "function", "comparison"])
def test_deep_filters_are_400s_naming_the_limit(api_url: str, kind: str) -> None:
    r = requests.get(f"{api_url}/search", params={"filter": nested_text(kind, 500)}, timeout=30)
    assert r.status_code == 400 and "MAX_FILTER_DEPTH" in r.json()["description"], r.text
    body = {"filter": nested_text(kind, 500), "filter-lang": "cql2-text"}
    r = requests.post(f"{api_url}/search", json=body, timeout=30)
    assert r.status_code == 400 and "MAX_FILTER_DEPTH" in r.json()["description"], r.text


def test_deep_json_is_a_400_naming_the_limit(api_url: str) -> None:
    params = {"filter": nested_json_text(500), "filter-lang": "cql2-json"}
    r = requests.get(f"{api_url}/search", params=params, timeout=30)
    assert r.status_code == 400 and "MAX_JSON_DEPTH" in r.json()["description"], r.text
    body = '{"filter": ' + nested_json_text(2_500) + ', "filter-lang": "cql2-json"}'
    headers = {"content-type": "application/json"}
    r = requests.post(f"{api_url}/search", data=body, headers=headers, timeout=30)
    assert r.status_code == 400 and "MAX_JSON_DEPTH" in r.json()["description"], r.text
    for field in ("ids", "intersects", "sortby", "fields", "bbox"):
        deep = '{"' + field + '": ' + "[" * 5_000 + "]" * 5_000 + "}"
        r = requests.post(f"{api_url}/search", data=deep, headers=headers, timeout=30)
        assert r.status_code == 400 and "MAX_JSON_DEPTH" in r.json()["description"], r.text
    deep_geometry = '{"type": "Point", "coordinates": ' + "[" * 5_000 + "]" * 5_000 + "}"
    r = requests.get(f"{api_url}/search", params={"intersects": deep_geometry}, timeout=30)
    assert r.status_code == 400 and "MAX_JSON_DEPTH" in r.json()["description"], r.text


def test_too_long_requests_are_refused_naming_the_limit(api_url: str) -> None:
    long = "x" * MAX_QUERY_BYTES
    r = requests.get(f"{api_url}/search", params={"filter": long}, timeout=30)
    assert r.status_code == 414 and "MAX_QUERY_BYTES" in r.json()["description"], r.text
    body = {"ids": ["x" * 1_000] * (MAX_BODY_BYTES // 1_000)}
    r = requests.post(f"{api_url}/search", json=body, timeout=30)
    assert r.status_code == 413 and "MAX_BODY_BYTES" in r.json()["description"], r.text

    def chunks() -> Any:  # no Content-Length: counted as it arrives
        for _ in range(2 * MAX_BODY_BYTES // 65_536):
            yield b" " * 65_536

    headers = {"content-type": "application/json"}
    r = requests.post(f"{api_url}/search", data=chunks(), headers=headers, timeout=30)
    assert r.status_code == 413 and "MAX_BODY_BYTES" in r.json()["description"], r.text
    filter_text = f"country = '{'x' * 70_000}'"
    r = requests.post(f"{api_url}/search", json={"filter": filter_text}, timeout=30)
    assert r.status_code == 400 and "MAX_FILTER_CHARS" in r.json()["description"], r.text


def test_a_body_under_the_limits_is_searched(api_url: str, all_items: list) -> None:
    ids = [i["id"] for i in all_items] + [f"missing-{n:05d}-{'x' * 60}" for n in range(10_000)]
    body = {"ids": ids, "limit": 1_000}
    assert 0.5 * MAX_BODY_BYTES < len(json.dumps(body)) < MAX_BODY_BYTES
    r = requests.post(f"{api_url}/search", json=body, timeout=60)
    assert r.status_code == 200 and len(r.json()["features"]) == len(all_items)


GET_ROUTES = [
    "/",
    "/conformance",
    "/collections",
    "/collections/bigearthnet-v2",
    "/collections/bigearthnet-v2/items?limit=3",
    "/collections/bigearthnet-v2/items/{item}",
    "/collections/bigearthnet-v2/queryables",
    "/search?limit=2&sortby=-datetime",
    "/search?bbox=1,2,3",
    "/queryables",
    "/api",
    "/api.html",
    "/collections/landsat-8",
    "/collections/bigearthnet-v2/items/nope",
]


@pytest.mark.parametrize("route", GET_ROUTES)
def test_head_answers_like_get(api_url: str, all_items: list, route: str) -> None:
    url = api_url + route.format(item=all_items[3]["id"])
    got = requests.get(url, timeout=30)
    head = requests.head(url, timeout=30)
    assert head.status_code == got.status_code != 405
    assert head.content == b""

    def same(headers: Any) -> dict[str, str]:
        return {k.lower(): v for k, v in headers.items() if k.lower() != "date"}

    assert same(head.headers) == same(got.headers)
    assert int(head.headers["content-length"]) == len(got.content) > 0


def test_a_like_pattern_ending_in_an_escape_is_a_400(api_url: str) -> None:
    r = requests.get(f"{api_url}/search", params={"filter": "country LIKE '%\\'"}, timeout=30)
    assert r.status_code == 400 and "escape" in r.json()["description"], r.text

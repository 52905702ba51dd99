"""Every front door builds its search the same way: :meth:`SearchRequest.from_params`."""

from __future__ import annotations

import pytest

import catalog
from catalog.fields import Fields
from catalog.request import DEFAULT_LIMIT, PARAMETERS, SearchRequest, encode_token
from lake.errors import QueryError

GIVEN = {
    "bbox": "12,47,17,49",
    "datetime": "2017-06/2017-09",
    "ids": "a,b",
    "collections": ["bigearthnet-v2"],
    "filter": "country = 'Austria'",
    "filter_lang": "cql2-text",
    "sortby": "-datetime",
    "fields": "id,-geometry",
    "limit": "20",
    "token": encode_token(30),
}


def test_the_parameters_are_the_stac_apis() -> None:
    assert PARAMETERS == (
        "bbox",
        "intersects",
        "datetime",
        "ids",
        "collections",
        "filter",
        "filter_lang",
        "query",
        "sortby",
        "fields",
        "limit",
        "token",
    )


def test_a_mapping_and_keywords_give_the_same_request() -> None:
    request = SearchRequest.from_params(GIVEN)
    assert request == SearchRequest.build(**GIVEN)  # type: ignore[arg-type]
    assert request.bbox == (12.0, 47.0, 17.0, 49.0) and request.ids == ("a", "b")
    assert request.sortby == (("datetime", "desc"),) and request.limit == 20
    assert request.offset == 30
    assert request.filter is not None and request.fields.given


def test_none_is_not_given_and_the_default_limit_applies() -> None:
    empty = SearchRequest.from_params(dict.fromkeys(PARAMETERS))
    assert empty == SearchRequest() and empty.limit == DEFAULT_LIMIT
    assert SearchRequest.from_params({}, default_limit=None).limit is None
    kept = SearchRequest.from_params({"fields": Fields(("id",), (), given=True)})
    assert kept.fields == Fields(("id",), (), given=True)


def test_an_unknown_parameter_is_named() -> None:
    with pytest.raises(QueryError, match=r"unknown search parameter\(s\) 'bboxx': use bbox, "):
        SearchRequest.from_params({"bboxx": "1,2,3,4"})
    with pytest.raises(QueryError, match="'filter-lang'"):
        SearchRequest.from_params({"filter-lang": "cql2-text"})


def test_catalog_search_refuses_an_unknown_keyword_before_opening_the_lake() -> None:
    with pytest.raises(QueryError, match="'bboxx'"):
        catalog.search("memory://no-lake-here", bboxx="1,2,3,4")  # type: ignore[call-arg]

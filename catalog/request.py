"""A search request, parsed and checked: the same object for Python, the CLI and the STAC API.

Each parameter takes the forms STAC API clients send: GET strings (``bbox=1,2,3,4``,
``sortby=-datetime,+id``, ``fields=id,-geometry``) and POST JSON (lists and objects). Every bad
value raises :class:`~lake.errors.QueryError` naming the parameter and the value. Every front
door hands its parameters over as one mapping (:class:`SearchParams`) to
:meth:`SearchRequest.from_params`: ``catalog.search()``'s keywords, ``lake search``'s options,
the API's query string and POST body.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict, Unpack

from catalog.cql import parse_filter
from catalog.fields import Fields
from catalog.geometry import check_bbox, check_geometry
from catalog.limits import check_json_depth
from catalog.query import parse_query
from catalog.times import parse_interval
from lake.errors import QueryError

#: The most Items one page may hold (larger limits are lowered to it, as STAC APIs do).
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 10


class SearchParams(TypedDict, total=False):
    """The parameters of an item search as given, by name; a missing or None one is not given.

    The names are the STAC API's, with ``filter_lang`` for its ``filter-lang``; each value
    may be a GET string or a POST value (see the ``parse_*`` functions).
    """

    bbox: str | Sequence[float] | None
    intersects: str | Mapping[str, Any] | None
    datetime: str | None
    ids: str | Sequence[str] | None
    collections: str | Sequence[str] | None
    filter: str | Mapping[str, Any] | None
    filter_lang: str | None
    query: str | Mapping[str, Any] | None
    sortby: str | Sequence[str | Mapping[str, Any]] | None
    fields: str | Sequence[str] | Mapping[str, Any] | Fields | None
    limit: int | str | None
    token: str | None


#: The names :class:`SearchParams` knows, in the STAC API's order.
PARAMETERS: tuple[str, ...] = tuple(SearchParams.__annotations__)


def _strings(value: str | Sequence[str] | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for v in items:
        if not isinstance(v, str):
            raise QueryError(f"{what} must be strings, got {v!r}")
        if v.strip():
            out.append(v.strip())
    if not out:
        raise QueryError(f"{what} {value!r} names nothing")
    return tuple(out)


def parse_bbox(value: str | Sequence[float] | None) -> tuple[float, float, float, float] | None:
    """``minx,miny,maxx,maxy`` (or the 6-number 3D form) in WGS 84 degrees.

    ``minx > maxx`` is a box across the antimeridian.

    Raises:
        QueryError: Not 4 or 6 finite numbers, or outside -180..180 / -90..90, or miny > maxy.
    """
    if value is None:
        return None
    if isinstance(value, str):
        shown = repr(value) if len(value) <= 200 else repr(value[:200] + "...")
        return check_bbox(value.split(",") if len(value) <= 1_000 else [value], f"bbox {shown}")
    if not isinstance(value, Sequence):
        raise QueryError(f"bbox {value!r} must be 4 (or 6) numbers: minx,miny,maxx,maxy")
    return check_bbox(value)


def parse_intersects(value: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A GeoJSON geometry (dict or JSON text) in WGS 84, checked (:func:`check_geometry`).

    Raises:
        QueryError: Not JSON, not a GeoJSON geometry, nested wrongly, not finite, out of range,
            a ring not closed, too many positions, empty or invalid.
    """
    if value is None:
        return None
    if isinstance(value, str):
        check_json_depth("intersects", value)
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise QueryError(f"intersects is not JSON ({exc})") from None
    if not isinstance(value, Mapping):
        raise QueryError(f"intersects {str(value)[:200]} is not a GeoJSON geometry (an object)")
    check_geometry(value, "intersects")
    return dict(value)


def parse_sortby(
    value: str | Sequence[str | Mapping[str, Any]] | None,
) -> tuple[tuple[str, str], ...]:
    """``+a,-b`` or ``[{"field": "a", "direction": "asc"}]`` as ((field, asc|desc), ...).

    Raises:
        QueryError: A malformed entry or direction.
    """
    if value is None:
        return ()
    entries = value.split(",") if isinstance(value, str) else list(value)
    out: list[tuple[str, str]] = []
    for entry in entries:
        if isinstance(entry, Mapping):
            name, direction = str(entry.get("field", "")), str(entry.get("direction", "asc"))
            if direction.lower() not in ("asc", "desc"):
                raise QueryError(f"sortby direction {direction!r} must be asc or desc")
            out.append((name.strip(), direction.lower()))
        elif isinstance(entry, str):
            text = entry.strip()
            direction = "desc" if text.startswith("-") else "asc"
            out.append((text.lstrip("+-").strip(), direction))
        else:
            raise QueryError(f"sortby entry {entry!r} must be a field name or an object")
    for name, _ in out:
        if not name:
            raise QueryError(f"sortby {value!r} has an empty field name")
    return tuple(out)


def encode_token(offset: int) -> str:
    """The opaque paging token of the page that starts at ``offset``."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_token(token: str | None) -> int:
    """The offset a paging token stands for (0 for no token).

    Raises:
        QueryError: It is not a token this catalog issued.
    """
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, number = text.partition(":")
        offset = int(number)
        if kind != "offset" or offset < 0:
            raise ValueError(text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise QueryError(f"token {token!r} is not a paging token of this catalog") from None
    return offset


def parse_limit(value: int | str | None, default: int | None) -> int | None:
    """A page size: a positive integer, lowered to :data:`MAX_LIMIT`.

    Raises:
        QueryError: Not a positive integer.
    """
    if value is None:
        return default
    try:
        number = int(value)
        if isinstance(value, float | bool) or str(number) != str(value).strip().lstrip("+"):
            raise ValueError(value)
    except (TypeError, ValueError):
        raise QueryError(f"limit {value!r} must be a positive integer") from None
    if number < 1:
        raise QueryError(f"limit {value!r} must be at least 1")
    return min(number, MAX_LIMIT)


@dataclass(frozen=True)
class SearchRequest:
    """One item search, every parameter parsed and checked.

    Attributes:
        bbox: (minx, miny, maxx, maxy) in WGS 84, or None.
        intersects: A GeoJSON geometry, or None.
        datetime: (start, end) with None for open ends, or None.
        ids: Item ids, or None.
        collections: Collection ids, or None.
        filter: The CQL2 filter as CQL2 JSON (with the ``query`` extension's conditions and-ed
            to it), or None.
        sortby: ((property, asc|desc), ...); empty: by id.
        fields: The fields selection.
        limit: Items per page (None: all).
        offset: Items to skip (from the paging token).
    """

    bbox: tuple[float, float, float, float] | None = None
    intersects: dict[str, Any] | None = None
    datetime: tuple[datetime | None, datetime | None] | None = None
    ids: tuple[str, ...] | None = None
    collections: tuple[str, ...] | None = None
    filter: dict[str, Any] | None = None
    sortby: tuple[tuple[str, str], ...] = ()
    fields: Fields = field(default_factory=Fields)
    limit: int | None = DEFAULT_LIMIT
    offset: int = 0

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], *, default_limit: int | None = DEFAULT_LIMIT
    ) -> SearchRequest:
        """Parse and check every parameter of a mapping (GET strings or POST values).

        Args:
            params: Parameter name -> value (see :class:`SearchParams`); None means not given.
            default_limit: The page size when ``limit`` is not given (None: every match).

        Raises:
            QueryError: A parameter is malformed (the message names it and its value), or the
                mapping names one that :class:`SearchParams` does not know.
        """
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            raise QueryError(
                f"unknown search parameter(s) {', '.join(map(repr, unknown))}: "
                f"use {', '.join(PARAMETERS)}"
            )
        bbox = params.get("bbox")
        intersects = params.get("intersects")
        datetime = params.get("datetime")
        filter = params.get("filter")
        filter_lang = params.get("filter_lang")
        if bbox is not None and intersects is not None:
            raise QueryError("bbox and intersects cannot be used together: give one of them")
        if datetime is not None and not isinstance(datetime, str):
            raise QueryError(f"datetime {datetime!r} must be a string such as 2017-06/2017-09")
        parsed_filter = None
        if filter is not None and filter != "":
            parsed_filter = parse_filter(filter, filter_lang)
        elif filter_lang is not None:
            parse_filter("true", filter_lang)  # checks the language name
        query = parse_query(params.get("query"))
        if query is not None:
            both = {"op": "and", "args": [parsed_filter, query]}
            parsed_filter = query if parsed_filter is None else both
        return cls(
            bbox=parse_bbox(bbox),
            intersects=parse_intersects(intersects),
            datetime=parse_interval(datetime) if datetime else None,
            ids=_strings(params.get("ids"), "ids"),
            collections=_strings(params.get("collections"), "collections"),
            filter=parsed_filter,
            sortby=parse_sortby(params.get("sortby")),
            fields=Fields.parse(params.get("fields")),
            limit=parse_limit(params.get("limit"), default_limit),
            offset=decode_token(params.get("token")),
        )

    @classmethod
    def build(
        cls, *, default_limit: int | None = DEFAULT_LIMIT, **params: Unpack[SearchParams]
    ) -> SearchRequest:
        """:meth:`from_params` with the parameters as keywords (``build(bbox=..., limit=5)``).

        Raises:
            QueryError: A parameter is malformed; the message names it and its value.
        """
        return cls.from_params(params, default_limit=default_limit)

"""A STAC API over one release's catalog: a small FastAPI app on top of :mod:`catalog.search`.

Endpoints: the landing page, ``/conformance``, ``/collections`` (and one collection, its items and
one item), item search by ``GET`` and ``POST /search``, ``/queryables`` (and per collection); the
filter (CQL2 text and JSON), sort and fields extensions, and paging by ``next`` links with a
token. The OpenAPI document is at ``/api``, its HTML view at ``/api.html``. A bad parameter is a
400 whose ``description`` says what is wrong; an unknown collection or item by path is a 404.
Every request is measured before anything parses it (:class:`RequestGuard`, the limits of
:mod:`catalog.limits`): an over-long query string is a 414, an over-large body a 413, a filter
or JSON nested too deep a 400 naming the limit. ``HEAD`` answers like ``GET`` on every route.
See ``docs/decisions/0003-stac-api.md`` for why this is our own app and how the limits were
chosen.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog.collection import located_assets
from catalog.limits import MAX_BODY_BYTES, MAX_QUERY_BYTES, check_json_depth
from catalog.request import DEFAULT_LIMIT, SearchRequest
from catalog.search import Catalog, open_catalog
from catalog.stac import COLLECTION_ID, MEDIA_GEOJSON, MEDIA_JSON, STAC_VERSION
from lake.config import StoreSpec
from lake.errors import LakeError, PatchNotFound, QueryError

CONFORMANCE = (
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#fields",
    "https://api.stacspec.org/v1.0.0/ogcapi-features#fields",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0/ogcapi-features#sort",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0/ogcapi-features#query",
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "https://api.stacspec.org/v1.0.0-rc.2/ogcapi-features#filter",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/accent-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/array-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
)
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx answer."""

    code: str
    description: str


class SortField(BaseModel):
    """One ``sortby`` entry of a POST search."""

    field: str
    direction: str = "asc"


class FieldsBody(BaseModel):
    """The ``fields`` object of a POST search."""

    include: list[str] | None = None
    exclude: list[str] | None = None


class SearchBody(BaseModel):
    """The body of ``POST /search`` (a field it does not know is a 400 that names it)."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    bbox: list[float] | None = None
    intersects: dict[str, Any] | None = None
    datetime: str | None = None
    ids: list[str] | None = None
    collections: list[str] | None = None
    filter: str | dict[str, Any] | None = None
    filter_lang: str | None = Field(default=None, alias="filter-lang")
    filter_crs: str | None = Field(default=None, alias="filter-crs")
    query: dict[str, Any] | None = None
    sortby: list[SortField] | str | None = None
    fields: FieldsBody | str | None = None
    limit: int | None = None
    token: str | None = None


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A bad parameter; the description says which"},
    404: {"model": ErrorBody, "description": "No such collection or item"},
}


#: The query parameters of the GET searches, each described once.
BboxParam = Annotated[str | None, Field(description="minx,miny,maxx,maxy (WGS 84)")]
IntersectsParam = Annotated[str | None, Field(description="GeoJSON geometry")]
DatetimeParam = Annotated[
    str | None, Field(description="Instant, date or interval a/b (../b, a/..)")
]
IdsParam = Annotated[str | None, Field(description="Comma-separated item ids")]
CollectionsParam = Annotated[str | None, Field(description="Comma-separated collection ids")]
LimitParam = Annotated[int | None, Field(description="Items per page (at most 10000)")]
FilterParam = Annotated[str | None, Field(description="CQL2 filter")]
FilterLangParam = Annotated[
    str | None, Field(alias="filter-lang", description="cql2-text|cql2-json")
]
FilterCrsParam = Annotated[str | None, Field(alias="filter-crs", description=f"Only {CRS84}")]
QueryParam = Annotated[
    str | None, Field(description='Query extension JSON: {"country": {"eq": "Austria"}}')
]
SortbyParam = Annotated[str | None, Field(description="+field,-field")]
FieldsParam = Annotated[str | None, Field(description="field,-field (fields extension)")]
TokenParam = Annotated[str | None, Field(description="Paging token from a next link")]


class ItemsQuery(BaseModel):
    """The query string of ``GET /collections/{collection_id}/items``."""

    bbox: BboxParam = None
    datetime: DatetimeParam = None
    limit: LimitParam = None
    filter: FilterParam = None
    filter_lang: FilterLangParam = None
    filter_crs: FilterCrsParam = None
    query: QueryParam = None
    sortby: SortbyParam = None
    fields: FieldsParam = None
    token: TokenParam = None


class SearchQuery(ItemsQuery):
    """The query string of ``GET /search``: that of the items, plus intersects, ids, collections."""

    intersects: IntersectsParam = None
    ids: IdsParam = None
    collections: CollectionsParam = None


def _error(status: int, code: str, description: str) -> JSONResponse:
    return JSONResponse({"code": code, "description": description}, status_code=status)


class RequestGuard:
    """ASGI middleware that checks a request's size before anything parses it; HEAD as GET.

    * A query string over :data:`~catalog.limits.MAX_QUERY_BYTES` is a 414 and a body over
      :data:`~catalog.limits.MAX_BODY_BYTES` a 413 (by its ``Content-Length``, or as soon as
      more arrives), each naming the limit; at most that much of a body is ever held.
    * A body nested deeper than :data:`~catalog.limits.MAX_JSON_DEPTH` is a 400 before the JSON
      decoder (which raises ``RecursionError`` some 1,000 levels down) sees it.
    * ``HEAD`` runs the ``GET`` route and sends its status and headers without the body, on
      every route.

    Args:
        app: The app to guard.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then hand it to the app (or answer the refusal)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "HEAD":
            scope = {**scope, "method": "GET"}
            send = _without_body(send)
        refusal: JSONResponse | None = None
        query = scope.get("query_string", b"")
        if len(query) > MAX_QUERY_BYTES:
            refusal = _error(
                414,
                "URITooLong",
                f"the query string has {len(query):,} bytes; at most {MAX_QUERY_BYTES:,} (the "
                "limit MAX_QUERY_BYTES): send long searches as POST /search",
            )
        elif scope["method"] in ("POST", "PUT", "PATCH"):
            body, refusal = await _read_body(scope, receive)
            if refusal is None:
                receive = _replay(body, receive)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _too_large(size: str) -> JSONResponse:
    return _error(
        413,
        "PayloadTooLarge",
        f"the request body has {size} bytes; at most {MAX_BODY_BYTES:,} (the limit "
        "MAX_BODY_BYTES): split the search",
    )


async def _read_body(scope: Scope, receive: Receive) -> tuple[bytes, JSONResponse | None]:
    """The whole body (at most MAX_BODY_BYTES of it), or the error answer that refuses it."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                return b"", _error(400, "InvalidParameterValue", "Content-Length is not a number")
            if declared > MAX_BODY_BYTES:
                return b"", _too_large(f"{declared:,}")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the app sees an empty body
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"", _too_large(f"more than {MAX_BODY_BYTES:,}")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    try:
        check_json_depth("the request body", body)
    except QueryError as exc:
        return b"", _error(400, "InvalidParameterValue", str(exc))
    return body, None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then whatever the connection says."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _without_body(send: Send) -> Send:
    """A ``send`` that drops the body of the answer (HEAD), keeping status and headers."""

    async def head(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return head


def create_app(lake: str | StoreSpec | Catalog, release: str | None = None) -> FastAPI:
    """The STAC API app of a lake's release (the current one by default).

    The routes are the module's routers; they reach the catalog through ``app.state.catalog``
    (the :func:`served_catalog` dependency).

    Args:
        lake: The lake (URL or spec) or an open catalog.
        release: The release to serve.
    """
    cat = open_catalog(lake, release)
    app = FastAPI(
        title="BigEarthNet lake STAC API",
        version=STAC_VERSION,
        description=f"STAC API over release {cat.release!r} of {cat.spec.url}",
        openapi_url="/api",
        docs_url="/api.html",
        redoc_url=None,
        exception_handlers=_EXCEPTION_HANDLERS,
    )
    app.state.catalog = cat
    app.add_middleware(RequestGuard)
    for router in ROUTERS:
        app.include_router(router)
    return app


async def _query_error(request: Request, exc: QueryError) -> JSONResponse:
    return _error(400, "InvalidParameterValue", str(exc))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
    )
    return _error(400, "InvalidParameterValue", problems or "invalid request")


async def _not_found(request: Request, exc: PatchNotFound) -> JSONResponse:
    return _error(404, "NotFound", str(exc))


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return _error(
        exc.status_code, "NotFound" if exc.status_code == 404 else "Error", str(exc.detail)
    )


async def _lake_error(request: Request, exc: LakeError) -> JSONResponse:
    return _error(500, "ServerError", str(exc))


_Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]
#: How each error becomes an answer: a bad parameter is a 400, an unknown item a 404.
_EXCEPTION_HANDLERS: dict[int | type[Exception], _Handler] = {
    QueryError: _query_error,
    RequestValidationError: _validation_error,
    PatchNotFound: _not_found,
    StarletteHTTPException: _http,
    LakeError: _lake_error,
}


def served_catalog(request: Request) -> Catalog:
    """The catalog the app serves (a dependency of every route)."""
    cat: Catalog = request.app.state.catalog
    return cat


ServedCatalog = Annotated[Catalog, Depends(served_catalog)]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _check_collection(collection_id: str) -> None:
    if collection_id != COLLECTION_ID:
        raise StarletteHTTPException(
            404, f"collection {collection_id!r} is not here (this API serves {COLLECTION_ID})"
        )


def _collection(cat: Catalog, base: str) -> dict[str, Any]:
    doc = {k: v for k, v in cat.collection.items() if k != "links"}
    url = f"{base}/collections/{COLLECTION_ID}"
    doc["assets"] = located_assets(doc.get("assets", {}), cat.spec, cat.base_url)
    doc["links"] = [
        {"rel": "self", "href": url, "type": MEDIA_JSON},
        {"rel": "root", "href": f"{base}/", "type": MEDIA_JSON},
        {"rel": "parent", "href": f"{base}/", "type": MEDIA_JSON},
        {"rel": "items", "href": f"{url}/items", "type": MEDIA_GEOJSON},
        {"rel": QUERYABLES_REL, "href": f"{url}/queryables", "type": "application/schema+json"},
        *[link for link in cat.collection.get("links", []) if link["rel"] in ("license", "about")],
    ]
    return doc


def _item_links(item: dict[str, Any], base: str) -> dict[str, Any]:
    if "id" not in item:
        return item
    url = f"{base}/collections/{COLLECTION_ID}"
    item["links"] = [
        {"rel": "self", "href": f"{url}/items/{item['id']}", "type": MEDIA_GEOJSON},
        {"rel": "parent", "href": url, "type": MEDIA_JSON},
        {"rel": "collection", "href": url, "type": MEDIA_JSON},
        {"rel": "root", "href": f"{base}/", "type": MEDIA_JSON},
    ]
    return item


def _run(
    cat: Catalog, search: SearchRequest, base: str, next_link: dict[str, Any] | None
) -> JSONResponse:
    page = cat.search(search)
    features = []
    for item in page.items():
        if not search.fields.given or "links" in item:
            item = _item_links(item, base)
        features.append(item)
    links: list[dict[str, Any]] = [{"rel": "root", "href": f"{base}/", "type": MEDIA_JSON}]
    if page.next_token and next_link is not None:
        link = dict(next_link)
        if "body" in link:
            link["body"] = {**link["body"], "token": page.next_token}
        else:
            link["href"] = link["href"].replace("__TOKEN__", page.next_token)
        links.append(link)
    doc = {
        "type": "FeatureCollection",
        "features": features,
        "links": links,
        "numberMatched": cat.count(search),
        "numberReturned": len(features),
    }
    return JSONResponse(doc, media_type=MEDIA_GEOJSON)


def _get_next(request: Request) -> dict[str, Any]:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    params.append(("token", "__TOKEN__"))
    href = f"{_base(request)}{request.url.path}?{urlencode(params)}"
    return {"rel": "next", "href": href, "type": MEDIA_GEOJSON, "method": "GET"}


def _check_crs(crs: str | None) -> None:
    if crs is not None and crs != CRS84:
        raise QueryError(f"filter-crs {crs!r} is not supported: only {CRS84}")


def _check_known(given: Iterable[str], model: type[BaseModel], where: str) -> None:
    """Refuse parameters (or body fields) that ``model`` does not define, naming them."""
    known = {f.alias or name for name, f in model.model_fields.items()}
    unknown = sorted(set(given) - known)
    if unknown:
        raise QueryError(
            f"unknown {where} {', '.join(map(repr, unknown))}: this API takes "
            f"{', '.join(sorted(known))}"
        )


def _get_search(cat: Catalog, request: Request, query: ItemsQuery | SearchQuery) -> JSONResponse:
    """A search by GET: its query's parameters, a text filter unless told otherwise."""
    _check_known(request.query_params.keys(), type(query), "query parameter(s)")
    _check_crs(query.filter_crs)
    params = query.model_dump(exclude={"filter_crs"})
    params["filter_lang"] = query.filter_lang or ("cql2-text" if query.filter else None)
    search = SearchRequest.from_params(params, default_limit=DEFAULT_LIMIT)
    return _run(cat, search, _base(request), _get_next(request))


# ---------------------------------------------------------------------- the landing page

landing_routes = APIRouter()


@landing_routes.get("/", summary="Landing page")
def landing(request: Request, cat: ServedCatalog) -> JSONResponse:
    """The landing page: the catalog's id and title, the conformance classes, the links."""
    base = _base(request)
    doc = {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": cat.catalog_document["id"],
        "title": cat.catalog_document.get("title", ""),
        "description": cat.catalog_document.get("description", ""),
        "conformsTo": list(CONFORMANCE),
        "links": [
            {"rel": "self", "href": f"{base}/", "type": MEDIA_JSON},
            {"rel": "root", "href": f"{base}/", "type": MEDIA_JSON},
            {"rel": "conformance", "href": f"{base}/conformance", "type": MEDIA_JSON},
            {"rel": "data", "href": f"{base}/collections", "type": MEDIA_JSON},
            {"rel": "child", "href": f"{base}/collections/{COLLECTION_ID}", "type": MEDIA_JSON},
            {"rel": "search", "href": f"{base}/search", "type": MEDIA_GEOJSON, "method": "GET"},
            {"rel": "search", "href": f"{base}/search", "type": MEDIA_GEOJSON, "method": "POST"},
            {
                "rel": QUERYABLES_REL,
                "href": f"{base}/queryables",
                "type": "application/schema+json",
            },
            {
                "rel": "service-desc",
                "href": f"{base}/api",
                "type": "application/vnd.oai.openapi+json;version=3.0",
            },
            {"rel": "service-doc", "href": f"{base}/api.html", "type": "text/html"},
        ],
    }
    return JSONResponse(doc)


@landing_routes.get("/conformance", summary="Conformance classes")
def conformance() -> JSONResponse:
    """The conformance classes."""
    return JSONResponse({"conformsTo": list(CONFORMANCE)})


# ---------------------------------------------------------------------- the collection

collection_routes = APIRouter()


@collection_routes.get("/collections", summary="The collections")
def collections(request: Request, cat: ServedCatalog) -> JSONResponse:
    """Every collection (this API serves one)."""
    base = _base(request)
    return JSONResponse(
        {
            "collections": [_collection(cat, base)],
            "links": [
                {"rel": "self", "href": f"{base}/collections", "type": MEDIA_JSON},
                {"rel": "root", "href": f"{base}/", "type": MEDIA_JSON},
            ],
        }
    )


@collection_routes.get("/collections/{collection_id}", summary="One collection", responses=_ERRORS)
def collection(request: Request, cat: ServedCatalog, collection_id: str) -> JSONResponse:
    """One collection."""
    _check_collection(collection_id)
    return JSONResponse(_collection(cat, _base(request)))


@collection_routes.get(
    "/collections/{collection_id}/items", summary="Items of a collection", responses=_ERRORS
)
def items(
    request: Request,
    cat: ServedCatalog,
    collection_id: str,
    query: Annotated[ItemsQuery, Query()],
) -> JSONResponse:
    """The collection's Items, a page at a time."""
    _check_collection(collection_id)
    return _get_search(cat, request, query)


@collection_routes.get(
    "/collections/{collection_id}/items/{item_id}", summary="One item", responses=_ERRORS
)
def item(request: Request, cat: ServedCatalog, collection_id: str, item_id: str) -> JSONResponse:
    """One Item by id."""
    _check_collection(collection_id)
    doc = _item_links(cat.item(item_id), _base(request))
    return JSONResponse(doc, media_type=MEDIA_GEOJSON)


# ---------------------------------------------------------------------- item search

search_routes = APIRouter()


@search_routes.get("/search", summary="Item search (GET)", responses=_ERRORS)
def search_get(
    request: Request, cat: ServedCatalog, query: Annotated[SearchQuery, Query()]
) -> JSONResponse:
    """Item search with the parameters in the query string."""
    return _get_search(cat, request, query)


@search_routes.post("/search", summary="Item search (POST)", responses=_ERRORS)
def search_post(request: Request, cat: ServedCatalog, body: SearchBody) -> JSONResponse:
    """Item search with the parameters in a JSON body; the next link repeats the body."""
    _check_known((body.model_extra or {}).keys(), SearchBody, "body field(s)")
    _check_crs(body.filter_crs)
    params = body.model_dump(exclude_none=True, exclude={"filter_crs"})
    search = SearchRequest.from_params(params, default_limit=DEFAULT_LIMIT)
    sent = json.loads(body.model_dump_json(by_alias=True, exclude_none=True))
    link = {
        "rel": "next",
        "href": f"{_base(request)}/search",
        "type": MEDIA_GEOJSON,
        "method": "POST",
        "body": sent,
        "merge": False,
    }
    return _run(cat, search, _base(request), link)


# ---------------------------------------------------------------------- queryables

queryables_routes = APIRouter()


@queryables_routes.get("/queryables", summary="Queryable properties of every collection")
def queryables(request: Request, cat: ServedCatalog) -> JSONResponse:
    """The properties a filter may name, of every collection."""
    url = f"{_base(request)}/queryables"
    doc = cat.queryables.json_schema(url, "Queryables of the BigEarthNet lake")
    return JSONResponse(doc, media_type="application/schema+json")


@queryables_routes.get(
    "/collections/{collection_id}/queryables",
    summary="Queryable properties of a collection",
    responses=_ERRORS,
)
def collection_queryables(request: Request, cat: ServedCatalog, collection_id: str) -> JSONResponse:
    """The properties a filter may name, of one collection."""
    _check_collection(collection_id)
    url = f"{_base(request)}/collections/{collection_id}/queryables"
    doc = cat.queryables.json_schema(url, f"Queryables of {collection_id}")
    return JSONResponse(doc, media_type="application/schema+json")


#: Every route of the API, in the order of its OpenAPI document.
ROUTERS = (landing_routes, collection_routes, search_routes, queryables_routes)

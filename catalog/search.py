"""Item search over a release's ``items.parquet`` with DuckDB, locally or on S3.

DuckDB does the work: the filters become a ``WHERE`` with parameters that it pushes into the
Parquet scan (row groups whose ``bbox``, ``datetime`` or ``id`` statistics cannot match are
skipped), only the columns the result needs are read, and ``LIMIT``/``OFFSET`` stop the scan
early. Nothing loads the whole catalog into memory. The file is sorted by ``id``, so the default
order is the file's order and needs no sort.

Example:
    >>> import catalog
    >>> items = catalog.search("s3://bucket/lake", bbox=[-9.5, 38.5, -8.5, 39.5],
    ...                        datetime="2017-06/2017-09", filter="season = 'Summer'")
    ... # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Unpack

import pyarrow as pa

from catalog.cql import Sql, bbox_overlap, filter_sql
from catalog.derived import SOURCES, rules_of
from catalog.fields import TOP_LEVEL, Fields
from catalog.items import constants_of
from catalog.queryables import Queryables
from catalog.request import SearchParams, SearchRequest, encode_token
from catalog.rows import ASSET_PREFIX, to_items, to_table
from catalog.stac import COLLECTION_ID
from lake.config import StoreSpec, as_spec
from lake.duck import duckdb_connect, duckdb_url
from lake.errors import LayoutError, PatchNotFound, QueryError
from lake.layout import stac_items_path, stac_path
from lake.release import resolve_release
from lake.storage import filesystem, read_json

if TYPE_CHECKING:
    import pystac

#: DuckDB settings of a search connection.
_SETTINGS = (
    "SET GLOBAL enable_geoparquet_conversion = false",  # keep WKB: decode only the rows returned
    "SET GLOBAL parquet_metadata_cache = true",  # parse the footer once per connection
    "SET GLOBAL enable_http_metadata_cache = true",
)
#: Late materialization (filter and sort first, then read the wide columns of the page's rows)
#: pays off for sorted pages; unsorted pages stop the scan early anyway and only pay its join.
_LATE_SORTED = "SET late_materialization_max_rows = 10001"
_LATE_UNSORTED = "SET late_materialization_max_rows = 0"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Page:
    """One page of search results.

    Attributes:
        table: The rows as read (the columns the request needs).
        next_token: The token of the next page, or None on the last page.
        catalog: The catalog searched.
        fields: The fields selection of the request.
    """

    table: pa.Table
    next_token: str | None
    catalog: Catalog = field(repr=False)
    fields: Fields = field(default_factory=Fields)

    def items(self, *, absolute: bool = True) -> list[dict[str, Any]]:
        """The Items as dicts; relative hrefs made absolute (the lake's URLs) unless told not to.

        Args:
            absolute: Resolve relative hrefs against the catalog's folder in the lake; False
                keeps them as stored (relative to ``stac/<release>/``).
        """
        base = self.catalog.base_url if absolute else None
        keep = self.fields.needs if self.fields.given else None
        rows = to_items(self._complete(), self.catalog.constants, base=base, keep=keep)
        return [self.fields.apply(r) for r in rows]

    def _complete(self) -> pa.Table:
        """The rows with the derived asset fields computed (see :mod:`catalog.derived`)."""
        rules = self.catalog.rules
        if rules is None:
            return self.table
        assets = self.catalog.asset_keys(self.fields)
        return rules.materialize(self.table, assets, ASSET_PREFIX)

    def arrow(self) -> pa.Table:
        """The rows in the stac-geoparquet layout of ``items.parquet`` (hrefs as stored).

        The columns are those the fields selection needs (every column when no fields were
        given); ``next_token`` is in the schema metadata when there is a next page.
        """
        keep = self.fields.needs if self.fields.given else None
        table = to_table(self._complete(), self.catalog.schema, self.catalog.constants, keep)
        meta = {b"next_token": self.next_token.encode()} if self.next_token else {}
        return table.replace_schema_metadata(meta)


class Catalog:
    """The STAC catalog of one release, opened for searching.

    One DuckDB connection per catalog (with the lake's S3 secret); each search runs on its own
    cursor, so a catalog may serve several threads.

    Args:
        spec: The lake.
        release: The release (the lake's current one when None).

    Raises:
        ReleaseNotFound: The release is not published, or (None) nothing is published yet.
        LayoutError: The release has no catalog (it was published before catalogs were built).
    """

    def __init__(self, spec: StoreSpec, release: str | None = None) -> None:
        import pyarrow.parquet as pq

        name = resolve_release(spec, release)
        self.spec = spec
        self.release: str = name
        fs = filesystem(spec)
        path = spec.path(stac_items_path(name))
        if not fs.exists(path):
            raise LayoutError(
                f"release {name!r} of {spec.url} has no STAC catalog ({stac_items_path(name)}); "
                "ingest it again under a new --release name to get one"
            )
        with fs.open(path, "rb") as f:
            parquet = pq.ParquetFile(f)
            self.schema: pa.Schema = parquet.schema_arrow
            groups = parquet.metadata.num_row_groups
            sorting: Any = parquet.metadata.row_group(0).sorting_columns if groups else None
        id_column = self.schema.get_field_index("id")
        #: The file is in id order (as :mod:`catalog.build` writes it): no sort is needed.
        self.sorted_by_id = bool(sorting) and sorting[0].column_index == id_column
        self.constants: dict[str, Any] = constants_of(self.schema)
        self.rules = rules_of(self.schema)
        self.queryables = Queryables.for_columns(self.schema.names)
        self.collection: dict[str, Any] = read_json(
            fs, spec.path(stac_path(name), "collection.json")
        )
        self.catalog_document: dict[str, Any] = read_json(
            fs, spec.path(stac_path(name), "catalog.json")
        )
        self.base_url = f"{spec.url.rstrip('/')}/{stac_path(name)}/"
        self._con = duckdb_connect(spec, extensions=("httpfs", "spatial", "icu"))
        for setting in _SETTINGS:
            self._con.execute(setting)
        source = duckdb_url(spec, stac_items_path(name))
        literal = "'" + source.replace("'", "''") + "'"
        self._con.execute(f"CREATE VIEW items AS SELECT * FROM read_parquet({literal})")

    def close(self) -> None:
        """Close the DuckDB connection."""
        self._con.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ compiling

    def where(self, request: SearchRequest) -> Sql:
        """The ``WHERE`` condition of a request (``TRUE`` when it filters nothing).

        Raises:
            QueryError: An unknown collection or property, or a filter of the wrong type.
        """
        parts: list[Sql] = []
        if request.collections is not None and COLLECTION_ID not in request.collections:
            raise QueryError(
                f"unknown collection(s) {', '.join(request.collections)}: this catalog has "
                f"{COLLECTION_ID}"
            )
        if request.ids is not None:
            ids = sorted(set(request.ids))
            marks = ", ".join("?" for _ in ids)
            parts.append(
                Sql(f"(id BETWEEN ? AND ?) AND (id IN ({marks}))", (ids[0], ids[-1], *ids))
            )
        if request.bbox is not None:
            parts.append(_bbox_sql(request.bbox))
        if request.intersects is not None:
            parts.append(_intersects_sql(request.intersects))
        if request.datetime is not None:
            start, end = request.datetime
            if start is not None:
                parts.append(Sql("(end_datetime >= ?)", (start,)))
            if end is not None:
                parts.append(Sql("(start_datetime <= ?)", (end,)))
        if request.filter is not None:
            parts.append(filter_sql(request.filter, self.queryables))
        if not parts:
            return Sql("TRUE")
        return Sql(" AND ".join(p.sql for p in parts), tuple(v for p in parts for v in p.params))

    def order_by(self, request: SearchRequest) -> str:
        """The ``ORDER BY`` clause ("" for the file's own order, which is by ``id``).

        Raises:
            QueryError: An unknown or unsortable property.
        """
        terms = []
        for name, direction in request.sortby:
            q = self.queryables.get(name)
            if not q.sortable:
                raise QueryError(f"sortby {name!r}: the property cannot be sorted on")
            terms.append(f"{q.sql} {direction.upper()} NULLS LAST")
        if not terms and self.sorted_by_id:
            return ""
        if not any(name.removeprefix("properties.") == "id" for name, _ in request.sortby):
            terms.append("id ASC")
        return "ORDER BY " + ", ".join(terms)

    def asset_keys(self, fields: Fields) -> list[str]:
        """The assets a result with this fields selection holds."""
        if "assets" not in self.schema.names or not fields.needs("assets"):
            return []
        keys = self.schema.field("assets").type.names
        return [k for k in keys if fields.needs(f"assets.{k}")]

    def columns(self, fields: Fields) -> list[str]:
        """The SELECT list a result needs.

        The columns the fields selection keeps, without the constant ones; of ``assets`` only
        the fields that are neither constant nor derived (selected as ``assets.<key>.<field>``),
        plus the columns the derived ones are computed from.
        """
        out = ["id"]
        fixed = self.constants.get("assets", {})
        for f in self.schema:
            if f.name in ("id", "assets") or f.name in self.constants:
                continue
            key = f.name if f.name in TOP_LEVEL else f"properties.{f.name}"
            if fields.needs(key):
                out.append(_quote(f.name))
        assets = self.asset_keys(fields)
        if not assets:
            return out
        for asset in self.schema.field("assets").type:
            if asset.name not in assets:
                continue
            derived = set(self.rules.derived(asset.name)) if self.rules else set()
            for leaf in asset.type:
                if leaf.name in fixed.get(asset.name, {}) or leaf.name in derived:
                    continue
                alias = _quote(f"{ASSET_PREFIX}{asset.name}.{leaf.name}")
                out.append(f"assets.{_quote(asset.name)}.{_quote(leaf.name)} AS {alias}")
        if self.rules:
            out += [_quote(c) for c in SOURCES if _quote(c) not in out]
        return out

    # ------------------------------------------------------------------ running

    def search(self, request: SearchRequest) -> Page:
        """Run a search; one page of at most ``request.limit`` Items.

        Raises:
            QueryError: The request names an unknown property or collection, or DuckDB
                rejects a value of it.
        """
        import duckdb

        where = self.where(request)
        sql = f"SELECT {', '.join(self.columns(request.fields))} FROM items"
        order = self.order_by(request)
        sql += f" WHERE {where.sql} {order}"
        params = list(where.params)
        if request.limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [request.limit + 1, request.offset]
        elif request.offset:
            sql += " OFFSET ?"
            params.append(request.offset)
        cursor = self._con.cursor()
        try:
            cursor.execute(_LATE_SORTED if order else _LATE_UNSORTED)
            table = cursor.execute(sql, params).to_arrow_table()
        except (
            duckdb.ConversionException,
            duckdb.InvalidInputException,
            duckdb.OutOfRangeException,
            duckdb.SyntaxException,  # a value DuckDB refuses at run time (a LIKE pattern)
        ) as exc:
            raise QueryError(f"the search was rejected: {exc}") from None
        finally:
            cursor.close()
        token = None
        if request.limit is not None and table.num_rows > request.limit:
            table = table.slice(0, request.limit)
            token = encode_token(request.offset + request.limit)
        return Page(table, token, self, request.fields)

    def count(self, request: SearchRequest) -> int:
        """How many Items match a request, all pages together (the API's ``numberMatched``).

        One ``count(*)`` over the same condition: DuckDB answers it from the row-group
        statistics and the few columns the condition reads.

        Raises:
            QueryError: As :meth:`search`.
        """
        import duckdb

        where = self.where(request)
        cursor = self._con.cursor()
        try:
            row = cursor.execute(
                f"SELECT count(*) FROM items WHERE {where.sql}", list(where.params)
            ).fetchone()
        except (
            duckdb.ConversionException,
            duckdb.InvalidInputException,
            duckdb.OutOfRangeException,
            duckdb.SyntaxException,
        ) as exc:
            raise QueryError(f"the search was rejected: {exc}") from None
        finally:
            cursor.close()
        return int(row[0]) if row else 0

    def item(self, item_id: str) -> dict[str, Any]:
        """One Item by id.

        Raises:
            PatchNotFound: No Item has this id.
        """
        page = self.search(SearchRequest(ids=(item_id,), limit=1))
        items = page.items()
        if not items:
            raise PatchNotFound(
                f"item {item_id!r} is not in release {self.release!r} of {self.spec.url}"
            )
        return items[0]


def _bbox_sql(bbox: Sequence[float]) -> Sql:
    xmin, ymin, xmax, ymax = bbox
    boxes = [(xmin, ymin, xmax, ymax)]
    if xmin > xmax:  # across the antimeridian
        boxes = [(xmin, ymin, 180.0, ymax), (-180.0, ymin, xmax, ymax)]
    parts = []
    for box in boxes:
        exact = Sql(
            "ST_Intersects(ST_GeomFromWKB(geometry), ST_MakeEnvelope(?, ?, ?, ?))", tuple(box)
        )
        overlap = bbox_overlap(box)
        parts.append(Sql(f"({overlap.sql} AND {exact.sql})", overlap.params + exact.params))
    return Sql(
        "(" + " OR ".join(p.sql for p in parts) + ")", tuple(v for p in parts for v in p.params)
    )


def _intersects_sql(geometry: Mapping[str, Any]) -> Sql:
    import shapely
    import shapely.geometry

    geom = shapely.geometry.shape(geometry)
    overlap = bbox_overlap(geom.bounds)
    exact = Sql(
        "ST_Intersects(ST_GeomFromWKB(geometry), ST_GeomFromWKB(?))", (shapely.to_wkb(geom),)
    )
    return Sql(f"({overlap.sql} AND {exact.sql})", overlap.params + exact.params)


def open_catalog(lake: str | StoreSpec | Catalog, release: str | None = None) -> Catalog:
    """Open the catalog of a lake's release (the current one by default)."""
    if isinstance(lake, Catalog):
        return lake
    spec = as_spec(lake)
    return Catalog(spec, release)


def search(
    lake: str | StoreSpec | Catalog,
    *,
    release: str | None = None,
    as_arrow: bool = False,
    **params: Unpack[SearchParams],
) -> pystac.ItemCollection | pa.Table:
    """Search a lake's STAC Items, as the STAC API does.

    The search parameters (``bbox`` to ``token`` below) are keywords, checked by
    :meth:`~catalog.request.SearchRequest.from_params`; without a ``limit`` every match is
    returned.

    Args:
        lake: The lake (URL or spec) or an open :class:`Catalog` (reuse it for many searches).
        release: The release (the current one when None).
        as_arrow: Return the rows as an Arrow table (stac-geoparquet layout, hrefs relative to
            the catalog folder) instead of a pystac ItemCollection.
        bbox: ``[minx, miny, maxx, maxy]`` in WGS 84 (or ``"minx,miny,maxx,maxy"``).
        intersects: A GeoJSON geometry the footprint must intersect.
        datetime: An instant, a date (``2017-06``), or an interval ``a/b`` with open ends
            ``../b`` and ``a/..``; matches Items whose S1-S2 time span meets it.
        ids: Item ids (patch ids).
        collections: Collection ids (this catalog has one, ``bigearthnet-v2``).
        filter: A CQL2 filter, text (``"country = 'Portugal' AND season = 'Summer'"``) or JSON.
        filter_lang: ``cql2-text`` or ``cql2-json`` (guessed when None).
        query: The STAC query extension's ``{"country": {"eq": "Austria"}}`` (and-ed with
            ``filter``; see :mod:`catalog.query`).
        sortby: ``"-datetime,+id"`` or ``[{"field": "datetime", "direction": "desc"}]``.
        fields: ``"id,-geometry"``, a list of such names, or ``{"include": [...], "exclude":
            [...]}`` (the fields extension).
        limit: Items to return (None: every match).
        token: The paging token of a previous result (its ``next_token``).

    Returns:
        A :class:`pystac.ItemCollection` (``extra_fields["next_token"]`` holds the token of the
        next page when there is one) or a :class:`pyarrow.Table` (the token is in its schema
        metadata under ``next_token``).

    Raises:
        QueryError: A bad or unknown parameter (the message names it and the value).
        ReleaseNotFound: No such release.
    """
    request = SearchRequest.from_params(params, default_limit=None)
    cat = open_catalog(lake, release)
    try:
        page = cat.search(request)
        return page.arrow() if as_arrow else _item_collection(page)
    finally:
        if cat is not lake:
            cat.close()


def _item_collection(page: Page) -> pystac.ItemCollection:
    import pystac

    extra: dict[str, Any] = {"numberReturned": page.table.num_rows}
    if page.next_token:
        extra["next_token"] = page.next_token
    try:
        items = [pystac.Item.from_dict(d, preserve_dict=False, migrate=False) for d in page.items()]
    except (pystac.STACError, KeyError, TypeError, ValueError) as exc:
        raise QueryError(
            f"the fields {page.fields.to_get()!r} leave out parts of the Items that pystac needs "
            f"({exc}); keep the default fields or ask for an Arrow table (as_arrow=True)"
        ) from None
    return pystac.ItemCollection(items, extra_fields=extra, clone_items=False)

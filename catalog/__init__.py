"""The STAC view of a lake: one Item per S1/S2 pair, stored as stac-geoparquet, searchable.

* :func:`search` searches a release's Items (bbox, intersects, datetime, ids, collections, CQL2
  filter, sortby, fields, paging) and returns a pystac ItemCollection or an Arrow table.
* :func:`stack` turns search results into one lazy xarray cube (``patch_id`` x band x y x x).
* :class:`Catalog` keeps a catalog open for many searches (one DuckDB connection).
* :mod:`catalog.build` writes a release's catalog (ingest calls it before publishing).
* :mod:`catalog.api` is the STAC API app behind ``lake serve``.

Imports run one way: ``pipelines -> catalog -> lake``; ``lake`` never imports this package,
which is why the search function is ``catalog.search`` and not ``lake.search``.

Example:
    >>> import catalog
    >>> items = catalog.search("./lake-data", filter="country = 'Portugal'", limit=5)
    ... # doctest: +SKIP
"""

from catalog.request import SearchRequest
from catalog.search import Catalog, Page, open_catalog, search
from catalog.stack import stack

__all__ = ["Catalog", "Page", "SearchRequest", "open_catalog", "search", "stack"]

"""SQL selections for training: a query's ``patch_id`` or ``ID`` column as a list.

The streaming loader accepts such a list as its selection (the pairs, or the annotation rows, to
train on), so any query over the views can choose the data.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from lake.config import StoreSpec
from lake.errors import QueryError

Column = Literal["patch_id", "ID"]
_COLUMNS: tuple[Column, ...] = ("patch_id", "ID")


def selection(
    con_or_url: Any,
    query: str,
    *,
    by: Column | None = None,
    release: str | None = None,
    **s3: Any,
) -> list[Any]:
    """Run a query and return its ``patch_id`` values or its annotation ``ID`` values.

    Values keep the query's order; repeats are dropped (a query over annotation rows may name a
    pair many times).

    Example:
        >>> ids = selection("s3://bucket/lake", "SELECT patch_id FROM patches "
        ...                 "WHERE country = 'Portugal' AND split = 'train'")  # doctest: +SKIP

    Args:
        con_or_url: A session from :func:`lake.connect` (or any DuckDB connection with the
            views), or a lake URL / spec to open one.
        query: SQL returning a ``patch_id`` column (pairs) or an ``ID`` column (annotation rows).
        by: Which column to take when the query returns both (``patch_id`` or ``ID``).
        release: The release, when ``con_or_url`` is a URL.
        **s3: S3 options, when ``con_or_url`` is a URL.

    Returns:
        Patch ids (``str``) or annotation IDs (``int``).

    Raises:
        QueryError: The query returns neither column, both without ``by``, or ``by`` is not one
            of them.
    """
    if by is not None and by not in _COLUMNS:
        raise QueryError(f"selection by={by!r}: use 'patch_id' or 'ID'")
    if isinstance(con_or_url, str | os.PathLike | StoreSpec) or con_or_url is None:
        from lake.sql.session import connect

        with connect(con_or_url, release=release, text_index=False, **s3) as con:
            return _select(con, query, by)
    return _select(con_or_url, query, by)


def _select(con: Any, query: str, by: Column | None) -> list[Any]:
    rel = con.sql(query)
    if rel is None:
        raise QueryError(f"selection query returns no rows or columns: {query!r}")
    columns = list(rel.columns)
    present = [c for c in _COLUMNS if c in columns]
    if by is not None:
        if by not in columns:
            raise QueryError(
                f"selection by={by!r}: the query returns no {by} column "
                f"(it returns {', '.join(columns)})"
            )
        column = by
    elif len(present) == 1:
        column = present[0]
    elif not present:
        raise QueryError(
            "a selection query must return a patch_id column (pairs) or an ID column "
            f"(annotation rows); it returns {', '.join(columns)}"
        )
    else:
        raise QueryError(
            "the selection query returns both patch_id and ID: pass by='patch_id' (pairs) "
            "or by='ID' (annotation rows)"
        )
    values = rel.select(f'"{column}"').to_arrow_table().column(0).to_pylist()
    return list(dict.fromkeys(v for v in values if v is not None))

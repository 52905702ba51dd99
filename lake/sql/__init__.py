"""SQL over a lake release with DuckDB: views, ranked text search, and the read-only guard.

``import lake.sql`` is light: DuckDB and the reader are imported when a session is opened.

Example:
    >>> import lake
    >>> con = lake.connect("s3://bucket/lake")  # doctest: +SKIP
    >>> con.sql("SELECT * FROM text_search('coniferous forest near water') LIMIT 10").df()
    ... # doctest: +SKIP
"""

from lake.sql.guard import LakeConnection, LakeRelation, check_sql
from lake.sql.selection import selection
from lake.sql.session import build_text_index, connect
from lake.sql.views import VIEW_DOCS, schema_markdown, schema_text, schemas

#: The views of every session, in documentation order.
VIEWS = tuple(doc.name for doc in VIEW_DOCS)

__all__ = [
    "VIEWS",
    "VIEW_DOCS",
    "LakeConnection",
    "LakeRelation",
    "build_text_index",
    "check_sql",
    "connect",
    "schema_markdown",
    "schema_text",
    "schemas",
    "selection",
]

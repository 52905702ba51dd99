"""The read-only guard of a SQL session: statement checks and the connection it wraps.

Two layers keep a default (read-only) session from writing anything or reading outside the lake:

1. **DuckDB itself** (see :func:`lock_down`): ``enable_external_access = false`` with
   ``allowed_paths`` set to the release's own Parquet files only, then
   ``lock_configuration = true``. DuckDB then refuses to open any other file or URL (no
   ``read_csv('/etc/passwd')``, no ``ATTACH`` of a database file, no ``COPY`` to a new file, no
   ``INSTALL``/``LOAD``), and refuses every ``SET``/``RESET`` that would undo it.
2. **This module**: DuckDB's allow-list cannot be read-only (an allowed path may also be
   written), so ``COPY ... TO`` one of the release's own objects would pass layer 1 (on S3 it
   overwrites the object). :class:`LakeConnection` therefore checks each statement's type before
   DuckDB runs it and refuses ``COPY``, ``EXPORT``, ``ATTACH``/``DETACH``, ``INSTALL``/``LOAD``
   and the relation methods that write files. ``CREATE``/``INSERT`` into the session's own
   in-memory catalog stay allowed: they touch nothing outside the process.
"""

from __future__ import annotations

import re
from typing import Any

from lake.errors import ReadOnlyError

#: Statement types a read-only session runs (by ``duckdb.StatementType`` name).
ALLOWED_STATEMENTS = frozenset(
    {
        "SELECT",
        "EXPLAIN",
        "PREPARE",
        "EXECUTE",
        "SET",
        "VARIABLE_SET",
        "CREATE",
        "CREATE_FUNC",
        "INSERT",
        "UPDATE",
        "DELETE",
        "DROP",
        "ALTER",
        "TRANSACTION",
        "CALL",
        "PRAGMA",
        "ANALYZE",
        "VACUUM",
        "RELATION",
    }
)
#: What each refused statement type is, for the message.
_REFUSED = {
    "COPY": "COPY (writes or reads files)",
    "COPY_DATABASE": "COPY FROM DATABASE",
    "EXPORT": "EXPORT DATABASE (writes files)",
    "ATTACH": "ATTACH (opens another database)",
    "DETACH": "DETACH",
    "LOAD": "INSTALL/LOAD of extensions",
}
#: Relation methods that write files (in-memory tables are the session's own: allowed).
WRITING_METHODS = frozenset({"to_parquet", "write_parquet", "to_csv", "write_csv"})
#: Settings a read-only session may still change (they touch no file and no access rule).
HARMLESS_SETTINGS = (
    "threads",
    "memory_limit",
    "enable_progress_bar",
    "TimeZone",
    "Calendar",
    "preserve_insertion_order",
)
_WRAPPED_PREFIX = re.compile(
    r"^\s*(?:EXPLAIN\s+(?:\([^)]*\)\s*)?(?:ANALY[SZ]E\s+)?|PREPARE\s+\w+\s+AS\s+)", re.I
)
_HINT = "the lake is read-only here; use lake.connect(..., allow_write=True) or --allow-write"


def check_sql(sql: str, con: Any = None) -> None:
    """Refuse a query that would write files or open other databases.

    Args:
        sql: One or more SQL statements.
        con: The locked-down DuckDB connection that will run them. It parses them too:
            parsing can read files (``IMPORT DATABASE`` expands the folder's ``schema.sql``), so
            it must happen under the session's own restrictions. None: a fresh connection with
            external access off.

    Raises:
        ReadOnlyError: A statement is of a refused type (the message names it).
        duckdb.Error: The SQL does not parse, or parsing needs a file DuckDB refuses.
    """
    import duckdb

    parser = con if con is not None else duckdb.connect(config={"enable_external_access": False})
    for statement in parser.extract_statements(sql):
        kind = getattr(statement.type, "name", str(statement.type))
        text = statement.query.strip()
        if kind in ("EXPLAIN", "PREPARE"):
            inner = _WRAPPED_PREFIX.sub("", text, count=1)
            if inner == text:  # a form we cannot unwrap: refuse rather than guess
                raise ReadOnlyError(f"{kind} of this form refused: {_short(text)!r}; {_HINT}")
            check_sql(inner, parser)
            continue
        if kind not in ALLOWED_STATEMENTS:
            what = _REFUSED.get(kind, f"{kind} statements")
            raise ReadOnlyError(f"{what} refused: {_short(text)!r}; {_HINT}")


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def lock_down(con: Any, paths: list[str], temp_directory: str) -> None:
    """Make a DuckDB connection read only the given files, for good (layer 1 above).

    Args:
        con: The connection (its views already created).
        paths: Every file or URL the session may read (the release's objects).
        temp_directory: A private folder DuckDB may spill to.
    """
    con.execute("SET temp_directory = ?", [temp_directory])
    con.execute("SET allowed_directories = []")
    con.execute("SET allowed_paths = ?", [paths])
    con.execute("SET allowed_configs = ?", [list(HARMLESS_SETTINGS)])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


class LakeRelation:
    """A DuckDB relation of a session: DuckDB's own, minus its file-writing methods when read-only.

    ``df()``, ``arrow()``, ``pl()``, ``fetchall()``, ``filter()``, ``limit()``... are DuckDB's;
    in a read-only session the methods of :data:`WRITING_METHODS` raise
    :class:`~lake.errors.ReadOnlyError`.
    """

    __slots__ = ("_owner", "_rel")

    def __init__(self, rel: Any, owner: LakeConnection) -> None:
        self._rel = rel
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        if name in WRITING_METHODS and self._owner.read_only:
            raise ReadOnlyError(f"relation.{name}() writes a file; {_HINT}")
        return _wrapped(getattr(self._rel, name), self._owner)

    def pl(self, *args: Any, **kwargs: Any) -> Any:
        """DuckDB's ``relation.pl()``: a polars DataFrame (needs the ``polars`` package)."""
        try:
            import polars  # type: ignore[import-not-found]  # noqa: F401
        except ImportError:
            raise ModuleNotFoundError(
                "relation.pl() needs the 'polars' package, which is not installed: "
                "pip install polars, or use .df() (pandas) or .arrow() (pyarrow)",
                name="polars",
            ) from None
        return self._rel.pl(*args, **kwargs)

    def query(self, virtual_table_name: str, sql_query: str) -> LakeRelation:
        """DuckDB's ``relation.query``, with the statement checked first."""
        self._owner.check(sql_query)
        return LakeRelation(self._rel.query(virtual_table_name, sql_query), self._owner)

    def __repr__(self) -> str:
        return repr(self._rel)

    def __str__(self) -> str:
        return str(self._rel)

    def __len__(self) -> int:
        return len(self._rel)


class LakeConnection:
    """A DuckDB connection over a lake release, read-only unless opened with ``allow_write``.

    It behaves as the ``duckdb.DuckDBPyConnection`` it wraps (``sql``, ``execute``, ``table``,
    ``df()``, ``arrow()``, ``pl()``...); in a read-only session each statement is checked by
    :func:`check_sql` first and the relations it returns are :class:`LakeRelation` objects.

    Attributes:
        lake: The lake's URL (never its credentials).
        release: The release the views show.
        notes: Views or macros that are missing and why (e.g. ``items`` before the STAC build).
        read_only: Whether the guard is on.
    """

    def __init__(
        self,
        con: Any,
        *,
        lake: str,
        release: str,
        notes: dict[str, str] | None = None,
        read_only: bool = True,
    ) -> None:
        self._con = con
        self.lake = lake
        self.release = release
        self.notes = dict(notes or {})
        self.read_only = read_only

    def check(self, query: str) -> None:
        """Refuse ``query`` if it writes and the session is read-only (see :func:`check_sql`)."""
        if self.read_only:
            check_sql(query, self._con)

    def sql(self, query: str, **kwargs: Any) -> LakeRelation | None:
        """``DuckDBPyConnection.sql`` with the statement checked first (None: no result)."""
        self.check(query)
        rel = self._con.sql(query, **kwargs)
        return None if rel is None else LakeRelation(rel, self)

    query = sql
    from_query = sql

    def execute(self, query: str, parameters: object = None) -> LakeConnection:
        """``DuckDBPyConnection.execute`` with the statement checked first."""
        self.check(query)
        self._con.execute(query, parameters)
        return self

    def executemany(self, query: str, parameters: object = None) -> LakeConnection:
        """``DuckDBPyConnection.executemany`` with the statement checked first."""
        self.check(query)
        self._con.executemany(query, parameters)
        return self

    def cursor(self) -> LakeConnection:
        """A second cursor on the same session (same views, same guard)."""
        return self._sibling(self._con.cursor())

    def _sibling(self, con: Any) -> LakeConnection:
        return LakeConnection(
            con, lake=self.lake, release=self.release, notes=self.notes, read_only=self.read_only
        )

    def __getattr__(self, name: str) -> Any:
        if name in ("install_extension", "load_extension") and self.read_only:
            raise ReadOnlyError(f"{name}() refused; {_HINT}")
        return _wrapped(getattr(self._con, name), self)

    def __enter__(self) -> LakeConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self._con.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"<LakeConnection {self.lake} release={self.release!r} {mode}>"


def _wrapped(attr: Any, owner: LakeConnection) -> Any:
    """Wrap what a DuckDB method returns: relations and connections stay guarded."""
    if not callable(attr):
        return _guard_value(attr, owner)

    def call(*args: Any, **kwargs: Any) -> Any:
        return _guard_value(attr(*args, **kwargs), owner)

    call.__doc__ = getattr(attr, "__doc__", None)
    return call


def _guard_value(value: Any, owner: LakeConnection) -> Any:
    import duckdb

    if isinstance(value, duckdb.DuckDBPyRelation):
        return LakeRelation(value, owner)
    if isinstance(value, duckdb.DuckDBPyConnection):
        return owner if value is owner._con else owner._sibling(value)
    return value

"""The read-only guard of a SQL session: statement checks and the connection it wraps.

Two layers keep a default (read-only) session from writing anything, reading outside the lake
or reading a credential:

1. **DuckDB itself** (see :func:`lock_down`): ``enable_external_access = false`` with
   ``allowed_paths`` set to the release's own Parquet files only, then
   ``lock_configuration = true``. DuckDB then refuses to open any other file or URL (no
   ``read_csv('/etc/passwd')``, no ``ATTACH`` of a database file, no ``COPY`` to a new file, no
   ``INSTALL``/``LOAD``), and refuses every ``SET``/``RESET`` that would undo it, including
   ``SET memory_limit``/``threads``. The credential settings httpfs copies from ``AWS_*`` are
   emptied first (:func:`lake.duck.duckdb_connect`): the lake's key lives only in an
   in-memory secret.
2. **This module**: DuckDB's allow-list cannot be read-only (an allowed path may also be
   written), so ``COPY ... TO`` one of the release's own objects would pass layer 1 (on S3 it
   overwrites the object), and ``lock_configuration`` does not stop functions
   (``CALL enable_logging(...)``, ``duckdb_secrets()``, ``query('...')``). :class:`LakeConnection`
   therefore checks each statement before DuckDB runs it: it refuses ``COPY``, ``EXPORT``,
   ``ATTACH``/``DETACH``, ``INSTALL``/``LOAD``, ``CREATE``/``DROP SECRET``, ``CHECKPOINT``, every
   table function and pragma outside :mod:`lake.sql.allowlist` wherever it is called, and the
   relation methods that write files. ``CREATE``/``INSERT`` into the session's own in-memory
   catalog stay allowed: they touch nothing outside the process.

Every call into DuckDB runs under the session's statement timeout (:class:`~lake.sql.limits.
Deadline`); the memory limit is set when the connection is opened.
"""

from __future__ import annotations

import re
from typing import Any

from lake.errors import ReadOnlyError
from lake.sql.allowlist import (
    ALLOWED_PRAGMAS,
    ALLOWED_TABLE_FUNCTIONS,
    Checked,
    canonical,
    checked_names,
    creates_or_drops_secret,
    leading_name,
    names,
)
from lake.sql.limits import Deadline

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
        "MERGE_INTO",
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
#: Connection methods a read-only session refuses (extensions, Python filesystems).
REFUSED_METHODS = frozenset({"install_extension", "load_extension", "register_filesystem"})
#: Settings a read-only session may still change: they touch no file, no access rule and no
#: limit (``threads`` and ``memory_limit`` are limits: ``SET threads = 100000`` starts that many
#: threads).
HARMLESS_SETTINGS = (
    "enable_progress_bar",
    "TimeZone",
    "Calendar",
    "preserve_insertion_order",
)
_SETTINGS = frozenset(canonical(name) for name in HARMLESS_SETTINGS)
_WRAPPED_PREFIX = re.compile(
    r"^\s*(?:EXPLAIN\s+(?:\([^)]*\)\s*)?(?:ANALY[SZ]E\s+)?|PREPARE\s+\w+\s+AS\s+)", re.I
)
_HINT = "the lake is read-only here; use lake.connect(..., allow_write=True) or --allow-write"


def check_sql(sql: str, con: Any = None, *, checked: Checked | None = None) -> None:
    """Refuse a query that would write files, open other databases or call a refused function.

    Args:
        sql: One or more SQL statements.
        con: The locked-down DuckDB connection that will run them. It parses them too:
            parsing can read files (``IMPORT DATABASE`` expands the folder's ``schema.sql``), so
            it must happen under the session's own restrictions. None: a fresh connection with
            external access off.
        checked: The table functions, table macros and refused views ``con`` knows
            (see :func:`~lake.sql.allowlist.checked_names`; None: asked from ``con``).

    Raises:
        ReadOnlyError: A statement is of a refused type or calls a function outside the
            allow-list (the message names it).
        duckdb.Error: The SQL does not parse, or parsing needs a file DuckDB refuses.
    """
    import duckdb

    parser = con if con is not None else duckdb.connect(config={"enable_external_access": False})
    if checked is None:
        checked = checked_names(parser)
    for statement in parser.extract_statements(sql):
        kind = getattr(statement.type, "name", str(statement.type))
        text = statement.query.strip()
        _check_calls(text, checked)
        if kind in ("EXPLAIN", "PREPARE"):
            inner = _WRAPPED_PREFIX.sub("", text, count=1)
            if inner == text:  # a form we cannot unwrap: refuse rather than guess
                raise ReadOnlyError(f"{kind} of this form refused: {_short(text)!r}; {_HINT}")
            check_sql(inner, parser, checked=checked)
            continue
        if kind not in ALLOWED_STATEMENTS:
            what = _REFUSED.get(kind, f"{kind} statements")
            raise ReadOnlyError(f"{what} refused: {_short(text)!r}; {_HINT}")
        _check_kind(kind, text)


def _check_calls(text: str, checked: Checked) -> None:
    """Refuse a statement that calls a table function or macro, or names a view, not allowed."""
    try:
        found = list(names(text))
    except ValueError as exc:
        raise ReadOnlyError(f"{exc} in {_short(text)!r}; {_HINT}") from None
    for name, call in found:
        if name in checked.views:
            raise ReadOnlyError(
                f"view {name} refused: {_short(text)!r}; it reads a table function a "
                f"read-only session does not call; {_HINT}"
            )
        if call and name in checked.functions and name not in ALLOWED_TABLE_FUNCTIONS:
            raise ReadOnlyError(
                f"table function {name}() refused: {_short(text)!r}; a read-only session calls "
                f"only the table functions listed in docs/sql.md; {_HINT}"
            )


def _check_kind(kind: str, text: str) -> None:
    """The checks of ``CALL``, ``PRAGMA``, ``CHECKPOINT`` and ``CREATE``/``DROP SECRET``."""
    pragma = leading_name(text, "PRAGMA")
    if pragma is not None and pragma not in ALLOWED_PRAGMAS | _SETTINGS:
        raise ReadOnlyError(
            f"PRAGMA {pragma} refused: {_short(text)!r}; a read-only session runs only the "
            f"pragmas {', '.join(sorted(ALLOWED_PRAGMAS))}; {_HINT}"
        )
    if kind == "CALL":
        name = leading_name(text, "CALL")
        if name is None or name not in ALLOWED_TABLE_FUNCTIONS:
            what = f"CALL {name}()" if name else "CHECKPOINT and CALL of this form"
            raise ReadOnlyError(f"{what} refused: {_short(text)!r}; {_HINT}")
    if creates_or_drops_secret(text):
        raise ReadOnlyError(
            f"CREATE/DROP SECRET refused: {_short(text)!r}; a read-only session uses the "
            f"lake's own secret only (a new one could send reads to another endpoint); {_HINT}"
        )


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

    ``df()``, ``arrow()``, ``pl()``, ``fetchall()``, ``filter()``, ``limit()``... are DuckDB's,
    each run under the session's statement timeout; in a read-only session the methods of
    :data:`WRITING_METHODS` raise :class:`~lake.errors.ReadOnlyError`.
    """

    __slots__ = ("_owner", "_rel", "_what")

    def __init__(self, rel: Any, owner: LakeConnection, what: str = "the query") -> None:
        self._rel = rel
        self._owner = owner
        self._what = what

    def __getattr__(self, name: str) -> Any:
        if name in WRITING_METHODS and self._owner.read_only:
            raise ReadOnlyError(f"relation.{name}() writes a file; {_HINT}")
        return _wrapped(getattr(self._rel, name), self._owner, self._what)

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
        with self._owner.deadline(self._what):
            return self._rel.pl(*args, **kwargs)

    def query(self, virtual_table_name: str, sql_query: str) -> LakeRelation:
        """DuckDB's ``relation.query``, with the statement checked first."""
        self._owner.check(sql_query)
        with self._owner.deadline(sql_query):
            rel = self._rel.query(virtual_table_name, sql_query)
        return LakeRelation(rel, self._owner, sql_query)

    def __repr__(self) -> str:
        with self._owner.deadline(self._what):
            return repr(self._rel)

    def __str__(self) -> str:
        with self._owner.deadline(self._what):
            return str(self._rel)

    def __len__(self) -> int:
        with self._owner.deadline(self._what):
            return len(self._rel)


class LakeConnection:
    """A DuckDB connection over a lake release, read-only unless opened with ``allow_write``.

    It behaves as the ``duckdb.DuckDBPyConnection`` it wraps (``sql``, ``execute``, ``table``,
    ``df()``, ``arrow()``, ``pl()``...); in a read-only session each statement is checked by
    :func:`check_sql` first and the relations it returns are :class:`LakeRelation` objects.
    Every call into DuckDB, a statement or a fetch, runs under the statement timeout.

    Attributes:
        lake: The lake's URL (never its credentials).
        release: The release the views show.
        notes: Views or macros that are missing and why (e.g. ``items`` before the STAC build).
        read_only: Whether the guard is on.
        timeout: Seconds one call into DuckDB may run (None: no limit).
    """

    def __init__(
        self,
        con: Any,
        *,
        lake: str,
        release: str,
        notes: dict[str, str] | None = None,
        read_only: bool = True,
        timeout: float | None = None,
        checked: Checked | None = None,
    ) -> None:
        self._con = con
        self.lake = lake
        self.release = release
        self.notes = dict(notes or {})
        self.read_only = read_only
        self.timeout = timeout
        if read_only and checked is None:
            checked = checked_names(con)
        self._checked = checked or Checked(frozenset(), frozenset())

    def check(self, query: str) -> None:
        """Refuse ``query`` if it writes and the session is read-only (see :func:`check_sql`)."""
        if self.read_only:
            check_sql(query, self._con, checked=self._checked)

    def deadline(self, what: str = "the statement") -> Deadline:
        """A guard that interrupts this connection when a call runs past :attr:`timeout`."""
        return Deadline(self._con, self.timeout, what=repr(_short(what, 60)))

    def sql(self, query: str, **kwargs: Any) -> LakeRelation | None:
        """``DuckDBPyConnection.sql`` with the statement checked first (None: no result)."""
        self.check(query)
        with self.deadline(query):
            rel = self._con.sql(query, **kwargs)
        return None if rel is None else LakeRelation(rel, self, query)

    query = sql
    from_query = sql

    def execute(self, query: str, parameters: object = None) -> LakeConnection:
        """``DuckDBPyConnection.execute`` with the statement checked first."""
        self.check(query)
        with self.deadline(query):
            self._con.execute(query, parameters)
        return self

    def executemany(self, query: str, parameters: object = None) -> LakeConnection:
        """``DuckDBPyConnection.executemany`` with the statement checked first."""
        self.check(query)
        with self.deadline(query):
            self._con.executemany(query, parameters)
        return self

    def table_function(self, name: str, parameters: object = None) -> LakeRelation:
        """``DuckDBPyConnection.table_function``, refused outside the allow-list when read-only."""
        key = canonical(name)
        refused = key in self._checked.functions and key not in ALLOWED_TABLE_FUNCTIONS
        if self.read_only and refused:
            raise ReadOnlyError(f"table function {name}() refused; {_HINT}")
        with self.deadline(f"{name}()"):
            rel = self._con.table_function(name, parameters)
        return LakeRelation(rel, self, f"{name}()")

    def cursor(self) -> LakeConnection:
        """A second cursor on the same session (same views, same guard, same limits)."""
        return self._sibling(self._con.cursor())

    def _sibling(self, con: Any) -> LakeConnection:
        return LakeConnection(
            con,
            lake=self.lake,
            release=self.release,
            notes=self.notes,
            read_only=self.read_only,
            timeout=self.timeout,
            checked=self._checked,
        )

    def __getattr__(self, name: str) -> Any:
        if name in REFUSED_METHODS and self.read_only:
            raise ReadOnlyError(f"{name}() refused; {_HINT}")
        return _wrapped(getattr(self._con, name), self, f"{name}()")

    def __enter__(self) -> LakeConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self._con.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"<LakeConnection {self.lake} release={self.release!r} {mode}>"


def _wrapped(attr: Any, owner: LakeConnection, what: str) -> Any:
    """Wrap what a DuckDB method returns: relations and connections stay guarded, calls timed.

    Args:
        attr: The attribute of the DuckDB connection or relation.
        owner: The session.
        what: What runs, for the timeout's message (the relation's query, or the method).
    """
    if not callable(attr):
        return _guard_value(attr, owner, what)

    def call(*args: Any, **kwargs: Any) -> Any:
        with owner.deadline(what):
            return _guard_value(attr(*args, **kwargs), owner, what)

    call.__doc__ = getattr(attr, "__doc__", None)
    return call


def _guard_value(value: Any, owner: LakeConnection, what: str) -> Any:
    import duckdb

    if isinstance(value, duckdb.DuckDBPyRelation):
        return LakeRelation(value, owner, what)
    if isinstance(value, duckdb.DuckDBPyConnection):
        return owner if value is owner._con else owner._sibling(value)
    return value

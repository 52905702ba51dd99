"""The table functions and pragmas a read-only SQL session may call, and how calls are found.

DuckDB's ``lock_configuration`` stops ``SET``, not functions: ``CALL enable_logging(...)``
turns logging on although ``SET enable_logging`` is refused, ``duckdb_secrets()`` shows the
S3 key id, ``query('...')`` runs SQL that no check has seen, and ``arrow_scan`` takes a raw
pointer. So a read-only session allows an explicit list of table functions (what the views and
``text_search`` use, plus introspection of the session's own catalog) and of pragmas; every
other table function, table macro or pragma that DuckDB knows is refused, wherever its call
appears in a statement (``FROM``, a subquery, a view or macro body, ``CALL``, ``EXPLAIN``).

Calls are found with DuckDB's own tokenizer (:func:`duckdb.tokenize`), so strings and comments
never count and quoted or schema-qualified names (``"DUCKDB_SECRETS"()``,
``system.main.duckdb_secrets()``) are seen as the parser sees them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from itertools import pairwise
from typing import Any, NamedTuple

#: Table functions (and table macros) a read-only session may call.
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {
        # the views and text search
        "read_parquet",
        "parquet_scan",
        "unnest",
        "range",
        "generate_series",
        "text_search",
        # the release's own Parquet, described (other files are refused by allowed_paths)
        "parquet_metadata",
        "parquet_file_metadata",
        "parquet_kv_metadata",
        "parquet_schema",
        # pure table functions
        "repeat",
        # also an aggregate (histogram(x)); as a table macro it reads a table or view by name
        "histogram",
        "histogram_values",
        "json_each",
        "json_tree",
        "pg_timezone_names",
        "icu_calendar_names",
        # the session's own catalog (duckdb_settings: credentials are emptied, see lake.duck)
        "duckdb_columns",
        "duckdb_constraints",
        "duckdb_databases",
        "duckdb_dependencies",
        "duckdb_functions",
        "duckdb_indexes",
        "duckdb_keywords",
        "duckdb_memory",
        "duckdb_optimizers",
        "duckdb_prepared_statements",
        "duckdb_schemas",
        "duckdb_sequences",
        "duckdb_settings",
        "duckdb_tables",
        "duckdb_types",
        "duckdb_variables",
        "duckdb_views",
        # what the allowed pragmas below expand to
        "pragma_collations",
        "pragma_database_size",
        "pragma_platform",
        "pragma_show",
        "pragma_storage_info",
        "pragma_table_info",
        "pragma_user_agent",
        "pragma_version",
    }
)
#: Pragmas (``PRAGMA name``) a read-only session may run: introspection only.
ALLOWED_PRAGMAS = frozenset(
    {
        "collations",
        "database_list",
        "database_size",
        "functions",
        "platform",
        "show",
        "show_databases",
        "show_tables",
        "show_tables_expanded",
        "storage_info",
        "table_info",
        "user_agent",
        "version",
    }
)
#: The kinds of DuckDB function a ``name(`` call of which is checked against the list above
#: (a pragma is never called that way: ``PRAGMA name`` and ``CALL name()`` are checked by name;
#: ``version()`` is both a pragma and a harmless scalar function).
CHECKED_KINDS = ("table", "table_macro")

_WORD = re.compile(r"[\w$]+")


def canonical(name: str) -> str:
    """A function name as compared here: NFKC-normalised and case-folded.

    DuckDB matches function names case-insensitively; folding fullwidth and other compatibility
    forms as well can only make the check refuse more, never less.
    """
    return unicodedata.normalize("NFKC", name).casefold()


class Checked(NamedTuple):
    """What the check compares a statement's names with (canonical names).

    Attributes:
        functions: Every table function and table macro the connection knows.
        views: DuckDB's built-in views that call a refused function (``duckdb_logs`` is a
            view over ``duckdb_logs()``: named without parentheses, it would pass otherwise).
    """

    functions: frozenset[str]
    views: frozenset[str]


def checked_names(con: Any) -> Checked:
    """The names a statement of this connection is checked against (see :class:`Checked`)."""
    rows = con.execute(
        "SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_type IN ?",
        [list(CHECKED_KINDS)],
    ).fetchall()
    functions = frozenset(canonical(name) for (name,) in rows)
    denied = functions - ALLOWED_TABLE_FUNCTIONS
    views = con.execute("SELECT view_name, sql FROM duckdb_views() WHERE internal").fetchall()
    refused = frozenset(
        canonical(name)
        for name, sql in views
        # tokenize only the views that may call one (tokenizing all 47 takes ~40 ms)
        if any(f in canonical(sql or "") for f in denied)
        and any(f in denied for f, _ in names(sql or ""))
    )
    return Checked(functions, refused)


def _tokens(sql: str) -> list[tuple[str, str]]:
    """The statement's tokens as ``(text, kind)``; text without the blanks that follow it.

    DuckDB gives each token's offset in bytes of the UTF-8 text, not in characters.
    """
    import duckdb

    found = duckdb.tokenize(sql)
    data = sql.encode("utf-8")
    out = []
    for i, (start, kind) in enumerate(found):
        end = found[i + 1][0] if i + 1 < len(found) else len(data)
        text = data[start:end].decode("utf-8", errors="replace").strip()
        out.append((text, getattr(kind, "name", str(kind))))
    return out


def name_of(token: str) -> str | None:
    """The name a token spells (an unquoted word or a double-quoted identifier), else None.

    A token's text may run on into a comment (``read_csv/*x*/``): only its name is kept.
    """
    if token.startswith('"'):
        match = re.match(r'"((?:[^"]|"")*)"', token)
        return match.group(1).replace('""', '"') if match else None
    match = _WORD.match(token)
    return match.group(0) if match else None


def names(sql: str) -> Iterator[tuple[str, bool]]:
    """Every name in a statement, canonical, and whether ``(`` follows it (a call).

    Strings and comments are not names.

    Raises:
        ValueError: A name before ``(`` is written in a form this check cannot read (for
            example a ``U&"..."`` escaped identifier).
    """
    tokens = [*_tokens(sql), ("", "end")]
    for (text, kind), (after, _) in pairwise(tokens):
        if kind not in ("identifier", "keyword"):
            continue
        call = after.startswith("(")
        name = name_of(text)
        if name is None:
            if call:
                raise ValueError(f"a function name the check cannot read: {text!r}")
            continue
        yield canonical(name), call


def called_names(sql: str) -> Iterator[str]:
    """The canonical name of every ``name(`` in a statement (see :func:`names`)."""
    return (name for name, call in names(sql) if call)


def leading_name(sql: str, keyword: str) -> str | None:
    """The (canonical) name after a statement's leading ``PRAGMA``/``CALL`` keyword, if any."""
    tokens = [t for t in _tokens(sql) if t[0]]
    first = name_of(tokens[0][0]) if tokens else None
    if len(tokens) < 2 or first is None or canonical(first) != canonical(keyword):
        return None
    parts: list[str] = []
    for text, kind in tokens[1:]:
        if kind in ("identifier", "keyword"):
            name = name_of(text)
            if name is None:
                return None
            parts.append(name)
        elif text != ".":
            break
    return canonical(parts[-1]) if parts else None


def leading_keywords(sql: str, limit: int = 8) -> list[str]:
    """The (canonical) words a statement starts with, up to its first other token."""
    words: list[str] = []
    for text, kind in _tokens(sql)[:limit]:
        name = name_of(text) if kind in ("identifier", "keyword") else None
        if name is None:
            break
        words.append(canonical(name))
    return words


#: Words between ``CREATE``/``DROP`` and ``SECRET`` (``CREATE OR REPLACE PERSISTENT SECRET``).
_SECRET_PREFIX = frozenset({"or", "replace", "persistent", "temporary", "temp", "if", "exists"})


def creates_or_drops_secret(sql: str) -> bool:
    """Whether a statement is ``CREATE ... SECRET`` or ``DROP ... SECRET``."""
    words = leading_keywords(sql)
    if not words or words[0] not in ("create", "drop"):
        return False
    rest = words[1:]
    while rest and rest[0] in _SECRET_PREFIX:
        rest = rest[1:]
    return bool(rest) and rest[0] == "secret"

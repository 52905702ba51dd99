"""``docs/sql.md``: the SQL front door's page, its schema section rendered from live views.

Regenerate it with ``python -m lake.sql.docs LAKE_URL > docs/sql.md`` (any lake: the columns do
not depend on the data); ``tests/lake/sql/test_session.py`` checks the page against a live session.
"""

from __future__ import annotations

import sys
from typing import Any

from lake.sql.textsearch import SEARCH_DOC, STOP_WORDS
from lake.sql.views import schema_markdown

HEAD = """# SQL over the lake

`lake.connect(url)` (Python) and `lake sql --lake URL` (shell) open a DuckDB session whose views
read one release's Parquet objects directly: a local folder or `s3://bucket/prefix` on any S3
endpoint (DuckDB's `httpfs` with the lake's secret). The same SQL runs on both. Views over the
hive-partitioned `annotations` dataset prune partitions (`WHERE split = 'bench'` opens one file)
and read only the columns a query uses.

```python
import lake.sql

con = lake.connect("s3://bucket/lake", release="v1")  # or a folder; read-only
con.sql("SELECT type, category, count(*) FROM annotations GROUP BY ALL").df()
con.sql("SELECT * FROM text_search('coniferous forest near water') LIMIT 10").arrow()
ids = lake.sql.selection(con, "SELECT patch_id FROM patches WHERE country = 'Portugal'")
```

```sh
lake sql --lake s3://bucket/lake "SELECT split, count(*) FROM annotations GROUP BY ALL"
lake sql --lake ./lake-data --format parquet --out bench.parquet "FROM vqa WHERE split = 'bench'"
lake sql --lake ./lake-data --schema     # the columns below
lake sql --lake ./lake-data              # a prompt: statements end with ';', .quit leaves
```

Spatial filters are fastest when they test the `bbox` covering column first (plain numbers,
about 3x faster on 480,038 pairs) and then the exact geometry:

```sql
SELECT patch_id FROM patches
WHERE bbox.xmin <= -8.0 AND bbox.xmax >= -9.5 AND bbox.ymin <= 40.0 AND bbox.ymax >= 38.5
  AND ST_Intersects(geometry, ST_MakeEnvelope(-9.5, 38.5, -8.0, 40.0))
```

## Safety

A session is read-only unless opened with `allow_write=True` / `--allow-write` (threat model
and figures: `docs/security.md`; design: `docs/decisions/0004-sql-read-only.md`):

* DuckDB runs with `enable_external_access = false`, `allowed_paths` = the release's own Parquet
  objects, and `lock_configuration = true`: no other file or URL can be read or written
  (`read_csv('/etc/passwd')` fails), no database file can be attached, no extension installed or
  loaded, and no `SET`/`RESET` can undo it (only `TimeZone`, `Calendar`, `enable_progress_bar`
  and `preserve_insertion_order` stay settable; `threads` and `memory_limit` do not).
* Each statement is checked before DuckDB sees it (`lake.errors.ReadOnlyError` names what was
  refused): `COPY`, `EXPORT`, `ATTACH`/`DETACH`, `INSTALL`/`LOAD`, `CREATE`/`DROP SECRET` and
  `CHECKPOINT` are refused, and so are the relation methods that write files (`to_parquet`,
  `to_csv`...). Tables, views and macros created in the session's own memory are allowed.
* Table functions and pragmas come from an allow-list, wherever they are called (`FROM`, a
  subquery, `CALL`, `EXPLAIN`, `PREPARE`, a view or macro body; names quoted, qualified or in
  any case): `read_parquet`/`parquet_scan` (the release's files only), `parquet_metadata`,
  `parquet_file_metadata`, `parquet_kv_metadata`, `parquet_schema`, `unnest`, `range`,
  `generate_series`, `repeat`, `json_each`, `json_tree`, `histogram`, `text_search`, the
  catalog functions `duckdb_columns`, `duckdb_constraints`, `duckdb_databases`,
  `duckdb_dependencies`, `duckdb_functions`, `duckdb_indexes`, `duckdb_keywords`, `duckdb_memory`,
  `duckdb_optimizers`, `duckdb_prepared_statements`, `duckdb_schemas`, `duckdb_sequences`,
  `duckdb_settings`, `duckdb_tables`, `duckdb_types`, `duckdb_variables`, `duckdb_views`,
  `pg_timezone_names`, `icu_calendar_names`, and the pragmas `version`, `platform`, `user_agent`,
  `show_tables`, `show_tables_expanded`, `table_info`, `show`, `database_list`,
  `show_databases`, `functions`, `collations`, `database_size`, `storage_info`
  (`SHOW TABLES`, `DESCRIBE`, `SUMMARIZE` work). Everything else is refused, notably
  `duckdb_secrets()` (it shows the key id), `which_secret()`, `enable_logging()`,
  `duckdb_logs`, `query()`/`query_table()`, `read_csv`/`read_text`/`glob` and the other file
  readers, `ST_Read`, `arrow_scan`/`pandas_scan`, and `PRAGMA enable_profiling`.
* Credentials: the S3 key reaches DuckDB only as a temporary in-memory secret. The `s3_*`
  settings that httpfs fills from `AWS_*` when it loads are emptied for every cursor before the
  session starts, so `current_setting('s3_secret_access_key')` and `duckdb_settings()` show
  `''`. No key id, secret or session token is printed, logged or put in an error message.
* Limits: a read-only session has a memory limit (4 GiB, or half the RAM if less) and a statement
  timeout (300 s per call into DuckDB: running a statement, or fetching its result). A query
  past the memory limit fails with DuckDB's `Out of Memory Error`; one past the timeout is
  interrupted with `lake.errors.QueryTimeout` (a `TimeoutError`). The session goes on in both
  cases. Raise them with `lake.connect(..., memory_limit="16GB", timeout=1800)` (`timeout=0`:
  none) or `lake sql --memory-limit 16GB --timeout 1800`; SQL cannot raise them. A session with
  `allow_write` has no timeout and DuckDB's default memory limit unless given.

## Handoff to training

`lake.sql.selection(con_or_url, query)` runs a query and returns its `patch_id` column (pairs) or
its `ID` column (annotation rows) as a list, in query order without repeats; the streaming loader
takes that list as its selection. A query returning both needs `by='patch_id'` or `by='ID'`.

## Text search

"""

TAIL = """
## Views

Generated from a live session (`python -m lake.sql.docs LAKE_URL > docs/sql.md`).

"""


def render(con: Any) -> str:
    """The whole page, with the view schemas of the live session ``con``."""
    search = (
        SEARCH_DOC
        + "\n\nThe index is built per release, with plain DuckDB SQL (the `fts` extension is not "
        "installed here; see docs/decisions/0004-sql-text-search.md): `lake sql --allow-write "
        "--build-text-index` (or `lake.sql.build_text_index(url)`) writes it as Parquet under "
        "`tables/<release>/text_index/`; a session without it builds it in memory at "
        "connect time when the release has at most 1,000,000 text rows (`lake.connect(..., "
        "text_index=True)` forces it, `False` skips it). Tokens are lower-cased words of "
        "letters and digits, without one-letter "
        "words, a final plural `s`, and these stop words: " + ", ".join(STOP_WORDS) + ".\n"
    )
    return HEAD + search + TAIL + schema_markdown(con)


def main(argv: list[str] | None = None) -> None:
    """``python -m lake.sql.docs LAKE_URL [RELEASE]``: print the page."""
    from lake.sql.session import connect

    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit("usage: python -m lake.sql.docs LAKE_URL [RELEASE]")
    with connect(args[0], release=args[1] if len(args) > 1 else None) as con:
        sys.stdout.write(render(con))


if __name__ == "__main__":
    main()

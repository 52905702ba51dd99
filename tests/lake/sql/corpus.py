"""The SQL escape corpus: statements that try to leave a read-only session, run in a child.

Each attempt names its class and what must happen: ``refused`` (the guard or DuckDB raises) or
``harmless`` (it runs, and shows nothing it should not). ``python -m tests.lake.sql.corpus LAKE
CANARY OUT`` runs them all in one session of the lake, in this order, and prints one JSON line
per attempt (``start`` before it runs, so a crash names it), then ``done`` after ``close()``.
The test (``test_sql_escape_corpus.py``) checks the lines, the exit status and the folders.
"""

from __future__ import annotations

import json
import sys
from typing import Literal, NamedTuple

Expect = Literal["refused", "harmless"]


class Attempt(NamedTuple):
    """One statement of the corpus.

    Attributes:
        kind: Its class (``files``, ``databases``, ``settings``, ``secrets``, ``logging``,
            ``wrapping``).
        sql: The statement; ``{canary}``, ``{out}``, ``{lake}`` and ``{lake_file}`` are filled in.
        expect: ``refused`` or ``harmless``.
    """

    kind: str
    sql: str
    expect: Expect


def _all(kind: str, expect: Expect, *sql: str) -> list[Attempt]:
    return [Attempt(kind, s, expect) for s in sql]


CORPUS: list[Attempt] = [
    *_all(
        "files",
        "refused",
        "SELECT * FROM read_csv('{canary}/canary.csv')",
        "SELECT * FROM read_csv_auto('{canary}/canary.csv')",
        "SELECT * FROM read_text('{canary}/canary.txt')",
        "SELECT * FROM read_blob('{canary}/canary.txt')",
        "SELECT * FROM read_json('{canary}/canary.json')",
        "SELECT * FROM read_json_auto('{canary}/canary.json')",
        "SELECT * FROM read_ndjson_objects('{canary}/canary.json')",
        "SELECT * FROM read_parquet('{canary}/canary.parquet')",
        "SELECT * FROM parquet_scan('{canary}/canary.parquet')",
        "SELECT * FROM parquet_metadata('{canary}/canary.parquet')",
        "SELECT * FROM parquet_schema('{canary}/canary.parquet')",
        "SELECT * FROM read_parquet(['{lake_file}', '{canary}/canary.parquet'])",
        "SELECT * FROM '{canary}/canary.csv'",
        "SELECT * FROM '{canary}/canary.parquet'",
        "SELECT * FROM glob('{canary}/*')",
        "SELECT * FROM glob('{lake}/**')",
        "SELECT * FROM read_parquet('{lake}/tables/*/patches/*.parquet')",
        "SELECT * FROM sniff_csv('{canary}/canary.csv')",
        "SELECT * FROM ST_Read('{canary}/canary.csv')",
        "SELECT * FROM ST_Read('/vsicurl/http://127.0.0.1:9/x.geojson')",
        "SELECT * FROM ST_Read_Meta('{canary}/canary.csv')",
        "SELECT * FROM read_duckdb('{canary}/canary.duckdb', table_name := 't')",
        "SELECT * FROM read_text('/proc/self/environ')",
        "SELECT * FROM read_blob('/proc/self/environ')",
        "SELECT * FROM read_csv('/proc/self/environ', sep := '\\0')",
        "SELECT * FROM read_text('file://{canary}/canary.txt')",
        "SELECT * FROM read_parquet('http://127.0.0.1:9/x.parquet')",
        "SELECT * FROM read_parquet('s3://lake/elsewhere.parquet')",
    ),
    *_all(
        "files",
        "harmless",
        "SELECT count(*) FROM read_parquet('{lake_file}')",
        "SELECT count(*) FROM parquet_metadata('{lake_file}')",
        "SELECT count(*) FROM patches",
        "SELECT count(*) FROM text_search('forest')",
        "SELECT version(), histogram(season) FROM patches",
    ),
    *_all(
        "databases",
        "refused",
        "ATTACH '{canary}/canary.duckdb' AS c",
        "ATTACH '{canary}/canary.duckdb' AS c (READ_ONLY)",
        "ATTACH '{out}/new.duckdb' AS n",
        "ATTACH ':memory:' AS m",
        "DETACH memory",
        "USE system",
        "COPY (SELECT 1 AS a) TO '{out}/x.csv'",
        "COPY patches TO '{out}/p.parquet' (FORMAT parquet)",
        "COPY (SELECT 1 AS a) TO '{lake_file}' (FORMAT parquet, USE_TMP_FILE false)",
        "COPY patches FROM '{canary}/canary.csv'",
        "COPY FROM DATABASE memory TO memory",
        "EXPORT DATABASE '{out}/export'",
        "IMPORT DATABASE '{canary}'",
        "PRAGMA import_database('{canary}')",
        "CALL import_database('{canary}')",
        "PRAGMA copy_database('memory', 'memory')",
        "INSTALL fts",
        "FORCE INSTALL httpfs",
        "LOAD fts",
        "LOAD '{canary}/canary.duckdb_extension'",
        "UPDATE EXTENSIONS",
    ),
    *_all(
        "settings",
        "refused",
        "SET enable_external_access = true",
        "SET GLOBAL enable_external_access = true",
        "RESET enable_external_access",
        "SET allowed_paths = ['/']",
        "SET allowed_directories = ['/']",
        "SET lock_configuration = false",
        "SET memory_limit = '100GB'",
        "SET threads = 100000",
        "PRAGMA threads = 100000",
        "SET temp_directory = '{out}'",
        "SET extension_directory = '{out}'",
        "SET autoinstall_known_extensions = true",
        "SET profiling_output = '{out}/profile.json'",
        "PRAGMA profiling_output = '{out}/profile.json'",
        "PRAGMA enable_profiling",
        "PRAGMA enable_profiling = 'json'",
        "CALL enable_profiling()",
        "PRAGMA disable_optimizer",
        "PRAGMA enable_verification",
        "PRAGMA enable_checkpoint_on_shutdown",
        "PRAGMA force_checkpoint",
        "CALL force_checkpoint()",
        "CHECKPOINT",
        "FORCE CHECKPOINT",
        "PRAGMA add_parquet_key('k', '0123456789112345')",
        "PRAGMA all_profiling_output",
        "SELECT * FROM arrow_scan(0, 0, 0)",
        "SELECT * FROM pandas_scan(0)",
    ),
    *_all(
        "settings",
        "harmless",
        "PRAGMA version",
        "PRAGMA show_tables",
        "PRAGMA table_info('patches')",
        "CALL pragma_version()",
        "SHOW TABLES",
        "DESCRIBE patches",
        "SET TimeZone = 'UTC'",
        "PRAGMA enable_progress_bar",
        "SET VARIABLE x = 42",
        "SELECT getvariable('x')",
    ),
    *_all(
        "secrets",
        "refused",
        "SELECT * FROM duckdb_secrets()",
        "SELECT * FROM duckdb_secrets(redact := false)",
        "SELECT * FROM which_secret('s3://lake/x', 's3')",
        "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v', ENDPOINT '127.0.0.1:9')",
        "CREATE OR REPLACE TEMPORARY SECRET s (TYPE s3, PROVIDER config)",
        "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')",
        "DROP SECRET lake_s3",
        "DROP PERSISTENT SECRET IF EXISTS s",
        "SET s3_secret_access_key = 'x'",
        "RESET s3_access_key_id",
        "SET allow_unredacted_secrets = true",
        "SET secret_directory = '{out}'",
        "SELECT getenv('AWS_SECRET_ACCESS_KEY')",
    ),
    *_all(
        "secrets",
        "harmless",
        "SELECT current_setting('s3_secret_access_key')",
        "SELECT current_setting('s3_access_key_id')",
        "SELECT current_setting('s3_session_token')",
        "SELECT upper(current_setting('s3_secret_access_key'))",
        "SELECT name, value FROM duckdb_settings() WHERE name LIKE 's3%' OR name LIKE 'http%'",
        "SELECT * FROM duckdb_settings()",
        "SELECT string_agg(value, ',') FROM duckdb_settings()",
        "SELECT * FROM duckdb_variables()",
    ),
    *_all(
        "logging",
        "refused",
        "CALL enable_logging('HTTP')",
        "CALL enable_logging(storage := 'file', storage_path := '{out}/logs')",
        "CALL enable_logging(level := 'trace')",
        "SET enable_logging = true",
        "SET logging_storage = 'file'",
        "SELECT * FROM duckdb_logs",
        "SELECT * FROM duckdb_logs()",
        "SELECT * FROM duckdb_logs_parsed('HTTP')",
        "SELECT * FROM duckdb_log_contexts()",
        "CALL truncate_duckdb_logs()",
        "CALL disable_logging()",
    ),
    *_all("logging", "harmless", "SELECT write_log('hello')"),
    *_all(
        "wrapping",
        "refused",
        "SELECT 1; CALL enable_logging('HTTP')",
        "SELECT 1;; COPY (SELECT 1) TO '{out}/x.csv'",
        "/* a comment */ CALL enable_logging('HTTP')",
        "-- a comment\nPRAGMA enable_profiling",
        "SELECT * FROM duckdb_secrets/**/()",
        "SELECT * FROM duckdb_secrets -- a comment\n ()",
        "select * from DUCKDB_SECRETS()",
        'SELECT * FROM "duckdb_secrets"()',
        'SELECT * FROM "DuckDB_Secrets"()',
        "SELECT * FROM system.main.duckdb_secrets()",
        "CALL system.main.enable_logging('HTTP')",
        "CALL \"enable_logging\"('HTTP')",
        "SELECT * FROM \uff44\uff55\uff43\uff4b\uff44\uff42_secrets()",
        "SELECT * FROM duckdb_secrets\u00a0()",
        'SELECT * FROM "duckdb_secrets\u200b"()',
        'SELECT * FROM U&"d\\0075ckdb_secrets"()',
        "EXPLAIN SELECT * FROM duckdb_secrets()",
        "EXPLAIN ANALYZE CALL enable_logging('HTTP')",
        "EXPLAIN (FORMAT json) COPY (SELECT 1) TO '{out}/x.csv'",
        "EXPLAIN ANALYZE SELECT * FROM read_text('{canary}/canary.txt')",
        "PREPARE p AS SELECT * FROM duckdb_secrets()",
        "PREPARE p AS COPY (SELECT 1) TO '{out}/x.csv'",
        'PREPARE "q" AS SELECT 1',
        "SELECT * FROM query('SELECT * FROM duckdb_secrets()')",
        "SELECT * FROM query_table('patches')",
        "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
        "PRAGMA json_execute_serialized_sql('{{}}')",
        "CREATE MACRO leak() AS TABLE SELECT * FROM duckdb_secrets()",
        "CREATE VIEW leak AS SELECT * FROM read_text('{canary}/canary.txt')",
        "CREATE TEMP TABLE leak AS SELECT * FROM read_csv('{canary}/canary.csv')",
        "WITH x AS (SELECT * FROM duckdb_secrets()) SELECT * FROM x",
        "SELECT (SELECT count(*) FROM duckdb_secrets())",
        "SELECT $$x$$ AS a, * FROM duckdb_secrets()",
        "SELECT * FROM patches, LATERAL (SELECT * FROM duckdb_logs()) l",
        "SELECT * FROM seq_scan()",
        "SELEC broken",
    ),
    *_all(
        "wrapping",
        "harmless",
        "SELECT 'duckdb_secrets()' AS just_a_string",
        "SELECT 1 /* duckdb_secrets() */",
        "EXPLAIN SELECT current_setting('s3_secret_access_key')",
        "EXPLAIN ANALYZE SELECT current_setting('s3_secret_access_key')",
        "EXPLAIN ANALYZE SELECT count(*) FROM patches",
        "PREPARE p AS SELECT 42",
        "EXECUTE p",
        "CREATE OR REPLACE TEMP TABLE mine AS SELECT patch_id FROM patches LIMIT 3",
        "CREATE OR REPLACE MACRO twice(x) AS 2 * x",
        "SELECT twice(count(*)) FROM mine",
    ),
]

#: The classes of the corpus (each must have attempts).
KINDS = ("files", "databases", "settings", "secrets", "logging", "wrapping")


def _emit(record: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def main(lake_root: str, canary: str, out: str, lake_file: str) -> int:
    """Run the corpus in one read-only session; one JSON line per attempt."""
    import duckdb

    import lake
    from lake.errors import ReadOnlyError

    con = lake.connect(lake_root)
    for i, attempt in enumerate(CORPUS):
        sql = attempt.sql.format(canary=canary, out=out, lake=lake_root, lake_file=lake_file)
        _emit({"start": i})
        record: dict[str, object] = {"i": i, "kind": attempt.kind, "expect": attempt.expect}
        try:
            rel = con.sql(sql)
            rows = [] if rel is None else rel.fetchall()
            record.update(outcome="ran", output=repr(rows))
        except (ReadOnlyError, duckdb.Error) as exc:
            record.update(outcome="refused", error=f"{type(exc).__name__}: {exc}")
        _emit(record)
    alive = con.sql("SELECT count(*) FROM patches").fetchone()
    con.close()
    _emit({"done": True, "alive": repr(alive)})
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))

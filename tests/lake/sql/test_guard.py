"""A default ``lake.connect`` session is read-only: no writes to the lake or anywhere else, no
files outside the release, no other databases or extensions, no setting that undoes it, no
function outside the allow-list, and no credential in any output; ``allow_write=True`` lifts it.
A read-only session also has a memory limit and a statement timeout."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

import lake
from lake.config import StoreSpec
from lake.errors import ConfigError, QueryTimeout, ReadOnlyError
from lake.sql.limits import DEFAULT_TIMEOUT_S, default_memory_limit
from tests.lake.sql.helpers import RELEASE, Built


def snapshot(root: Path) -> dict[str, str]:
    """Every file of a folder with its checksum."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def guarded(built: Built) -> Iterator[Any]:
    with lake.connect(built.spec) as con:
        yield con


def lake_file(built: Built) -> str:
    return str(built.root / "tables" / RELEASE / "patches" / "part-0.parquet")


REFUSED_BY_GUARD = [
    "COPY (SELECT 1 AS a) TO '{outside}/x.csv'",
    "COPY (SELECT 1 AS a) TO '{lake_file}'",
    "COPY (SELECT 1 AS a) TO '{lake_file}' (FORMAT parquet, USE_TMP_FILE false)",
    "COPY patches FROM '{outside}/x.csv'",
    "EXPORT DATABASE '{outside}/export'",
    "ATTACH '{outside}/other.db' AS other",
    "ATTACH '{outside}/other.db' AS other; CREATE TABLE other.t AS SELECT 1 AS a",
    "DETACH memory",
    "INSTALL fts",
    "LOAD fts",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{outside}/x.csv'",
    "EXPLAIN (FORMAT json) COPY (SELECT 1) TO '{outside}/x.csv'",
    "PREPARE p AS COPY (SELECT 1) TO '{outside}/x.csv'",
    "SELECT 1; COPY (SELECT 1) TO '{outside}/x.csv'",
    "CALL enable_logging(storage := 'file', storage_path := '{outside}/logs')",
    "CALL enable_logging('HTTP')",
    "PRAGMA enable_profiling",
    "SELECT * FROM duckdb_secrets()",
    "SELECT * FROM query('SELECT 1')",
    "CREATE SECRET mine (TYPE s3, KEY_ID 'a', SECRET 'b', ENDPOINT '127.0.0.1:9')",
    "CHECKPOINT",
]
#: Refused by DuckDB itself (layer 1) even without the guard; the guard refuses some first.
REFUSED_BY_DUCKDB = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_parquet('{outside}/elsewhere.parquet')",
    "SELECT * FROM read_parquet('{lake_root}/tables/*/patches/*.parquet')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM ST_Read_Meta('{outside}/elsewhere.parquet')",
    "IMPORT DATABASE '{outside}'",
    "PRAGMA import_database('{outside}')",
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "SET allowed_directories = ['/']",
    "SET allowed_paths = ['/etc/passwd']",
    "SET lock_configuration = false",
    "SET autoinstall_known_extensions = true",
    "CREATE PERSISTENT SECRET leak (TYPE s3, KEY_ID 'a', SECRET 'b')",
]


def fill(sql: str, built: Built, tmp_path: Path) -> str:
    return sql.format(outside=tmp_path, lake_file=lake_file(built), lake_root=built.root)


@pytest.mark.parametrize("sql", REFUSED_BY_GUARD)
def test_writes_and_other_databases_are_refused(
    guarded: Any,
    built: Built,
    tmp_path: Path,
    sql: str,
) -> None:
    before = snapshot(built.root)
    (tmp_path / "elsewhere.parquet").write_bytes(b"")
    with pytest.raises(ReadOnlyError, match=r"refused.*read-only") as info:
        guarded.sql(fill(sql, built, tmp_path))
    assert isinstance(info.value, PermissionError)
    assert snapshot(built.root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.parquet"]


@pytest.mark.parametrize("sql", REFUSED_BY_DUCKDB)
def test_paths_outside_the_release_and_settings_are_refused_by_duckdb(
    guarded: Any,
    built: Built,
    tmp_path: Path,
    sql: str,
) -> None:
    """Refused through the session, and by DuckDB alone (the raw connection under the guard)."""
    duckdb.connect().execute(f"COPY (SELECT 1 AS a) TO '{tmp_path}/elsewhere.parquet'")
    (tmp_path / "schema.sql").write_text("CREATE TABLE leaked AS SELECT 42 AS a;")
    (tmp_path / "load.sql").write_text("")
    with pytest.raises((ReadOnlyError, duckdb.Error)):
        guarded.sql(fill(sql, built, tmp_path)).fetchall()
    with pytest.raises(duckdb.Error, match=r"disabled by configuration|locked|persistent"):
        guarded._con.sql(fill(sql, built, tmp_path)).fetchall()


def test_duckdb_itself_refuses_files_when_the_guard_is_bypassed(
    guarded: Any,
    built: Built,
    tmp_path: Path,
) -> None:
    """Layer 1 alone (the raw connection under the guard): no new file, no file outside."""
    raw = guarded._con
    before = snapshot(built.root)
    for sql in (
        f"COPY (SELECT 1) TO '{tmp_path}/x.csv'",
        f"COPY (SELECT 1) TO '{built.root}/tables/{RELEASE}/new.parquet'",
        f"COPY (SELECT 1 AS a) TO '{lake_file(built)}'",  # exists: DuckDB writes a tmp_ file
        f"ATTACH '{tmp_path}/other.db'",
        "LOAD fts",
    ):
        with pytest.raises(duckdb.Error, match="disabled"):
            raw.execute(sql)
    assert snapshot(built.root) == before and not list(tmp_path.iterdir())


def test_relation_writers_and_extension_loading_are_refused(
    guarded: Any,
    tmp_path: Path,
) -> None:
    rel = guarded.sql("SELECT patch_id FROM patches")
    for method in ("to_parquet", "write_parquet", "to_csv", "write_csv"):
        with pytest.raises(ReadOnlyError, match=f"relation.{method}"):
            getattr(rel, method)(str(tmp_path / "out"))
    with pytest.raises(ReadOnlyError):
        rel.query("t", f"COPY t TO '{tmp_path}/x.csv'")
    with pytest.raises(ReadOnlyError):
        guarded.load_extension("fts")
    with pytest.raises(ReadOnlyError):
        guarded.cursor().execute(f"COPY (SELECT 1) TO '{tmp_path}/y.csv'")
    assert not list(tmp_path.iterdir())


def test_the_session_may_still_compute_in_memory(guarded: Any) -> None:
    guarded.execute("CREATE OR REPLACE TEMP TABLE mine AS SELECT patch_id FROM patches LIMIT 3")
    guarded.execute("CREATE OR REPLACE MACRO twice(x) AS 2 * x")
    assert guarded.sql("SELECT count(*), twice(21) FROM mine").fetchone() == (3, 42)
    guarded.execute("SET TimeZone = 'UTC'")
    guarded.execute("RESET TimeZone")
    assert guarded.cursor().sql("SELECT count(*) FROM patches").fetchone()[0] == 40
    tables = guarded.sql("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    assert ("mine",) in tables
    assert guarded.sql("PRAGMA version").fetchone()[0].startswith("v")
    assert guarded.sql("SELECT count(*) FROM pragma_table_info('patches')").fetchone()[0] > 10
    assert guarded.table_function("range", [3]).fetchall() == [(0,), (1,), (2,)]
    with pytest.raises(ReadOnlyError, match=r"duckdb_secrets\(\) refused"):
        guarded.table_function("duckdb_secrets")


@pytest.mark.parametrize(
    "sql",
    [
        "SET memory_limit = '100GB'",
        "SET GLOBAL memory_limit = '100GB'",
        "PRAGMA memory_limit = '100GB'",
        "RESET memory_limit",
        "SET threads = 100000",
        "PRAGMA threads = 100000",
    ],
)
def test_the_limits_cannot_be_raised_from_sql(guarded: Any, sql: str) -> None:
    before = guarded.sql("SELECT current_setting('memory_limit'), current_setting('threads')")
    expected = before.fetchone()
    with pytest.raises((ReadOnlyError, duckdb.Error), match=r"locked|refused"):
        guarded.execute(sql)
    after = guarded.sql("SELECT current_setting('memory_limit'), current_setting('threads')")
    assert after.fetchone() == expected


def _mib(setting: str) -> float:
    number, unit = setting.split()
    return float(number) * {"MiB": 1, "GiB": 1024}[unit]


def test_a_read_only_session_has_a_memory_limit_and_a_timeout(
    guarded: Any,
    built: Built,
) -> None:
    assert guarded.timeout == DEFAULT_TIMEOUT_S
    shown = guarded.sql("SELECT current_setting('memory_limit')").fetchone()[0]
    assert _mib(shown) == pytest.approx(float(default_memory_limit().removesuffix("MiB")), 0.01)
    with lake.connect(built.spec, memory_limit="1GiB", timeout=0) as con:
        assert con.timeout is None
        assert con.sql("SELECT current_setting('memory_limit')").fetchone() == ("1.0 GiB",)
    with lake.connect(built.spec, allow_write=True) as con:
        assert con.timeout is None
    for bad in ({"memory_limit": "lots"}, {"memory_limit": ""}, {"timeout": -1}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            lake.connect(built.spec, **bad)


def test_a_query_past_the_memory_limit_fails_and_the_session_goes_on(
    built: Built,
) -> None:
    with lake.connect(built.spec, memory_limit="64MiB") as con:
        with pytest.raises(duckdb.OutOfMemoryException, match="memory"):
            con.sql("SELECT list(i) FROM range(100000000) t(i)").fetchall()
        assert con.sql("SELECT count(*) FROM patches").fetchone() == (40,)


#: About 15 s on 2 cores: without the timeout the test fails (DID NOT RAISE) instead of hanging.
SLOW_QUERY = "SELECT count(*) FROM range(20000000000) a"


def test_a_statement_past_the_timeout_is_interrupted(built: Built) -> None:
    with lake.connect(built.spec, timeout=0.5) as con:
        for run in (
            lambda: con.sql(SLOW_QUERY).fetchall(),  # lazy: runs in fetchall()
            lambda: con.execute(SLOW_QUERY),  # runs in execute()
            lambda: con.sql(f"CREATE TEMP TABLE big AS {SLOW_QUERY}"),  # runs in sql()
            lambda: con.cursor().sql(SLOW_QUERY).df(),  # a cursor has the same limit
            lambda: con.sql("SELECT 1").query("t", SLOW_QUERY).fetchall(),
        ):
            start = time.monotonic()
            with pytest.raises(QueryTimeout, match=r"timeout of 0.5 s.*--timeout") as info:
                run()
            assert time.monotonic() - start < 5
            assert isinstance(info.value, TimeoutError)
            assert con.sql("SELECT count(*) FROM patches").fetchone() == (40,)
        con.sql("SELECT sleep_ms(100)").fetchall()  # a timer that never fires leaves no trace
        assert con.sql("SELECT 42").fetchone() == (42,)


def test_allow_write_lifts_the_guard(built: Built, tmp_path: Path) -> None:
    with lake.connect(built.spec, allow_write=True) as con:
        assert "read-write" in repr(con)
        con.sql(f"COPY (SELECT patch_id FROM patches) TO '{tmp_path}/ids.csv'")
        con.sql(f"ATTACH '{tmp_path}/work.db' AS work")
        con.sql("CREATE TABLE work.t AS SELECT patch_id FROM patches")
        assert con.sql("SELECT count(*) FROM work.t").fetchone() == (40,)
        con.sql("DETACH work")
        assert con.sql(f"SELECT count(*) FROM read_csv('{tmp_path}/ids.csv')").fetchone() == (40,)
        con.sql("SELECT patch_id FROM patches").to_parquet(str(tmp_path / "p.parquet"))
    assert (tmp_path / "p.parquet").exists() and (tmp_path / "work.db").exists()


@pytest.mark.s3
def test_s3_session_is_read_only_and_never_shows_the_secret(
    built_s3: StoreSpec,
    s3_server: Any,
) -> None:
    secret = str(built_s3.secret)
    lake_object = f"{built_s3.url}/tables/{RELEASE}/patches/part-0.parquet"
    served = s3_server.directory / built_s3.root / "tables" / RELEASE / "patches" / "part-0.parquet"
    before = served.read_bytes()
    seen: list[str] = []
    with lake.connect(built_s3) as con:
        seen += [repr(con), str(con.notes), str(con.__dict__)]
        for sql in (
            "SELECT * FROM duckdb_secrets()",
            f"COPY (SELECT 1 AS a) TO '{lake_object}'",
            f"COPY (SELECT 1 AS a) TO '{built_s3.url}/new.parquet'",
            "SELECT * FROM read_parquet('s3://lake/elsewhere/*.parquet')",
            "SELECT * FROM which_secret('s3://lake/x', 's3') WHERE error(name)",
            "SELEC broken",
        ):
            with pytest.raises((ReadOnlyError, duckdb.Error)) as info:
                con.sql(sql).fetchall()
            seen.append(str(info.value))
        shown = con.sql("SELECT current_setting('s3_secret_access_key')").fetchall()
        assert shown == [("",)]  # the lake's key is in the secret only
        raw = con._con
        with pytest.raises(duckdb.Error):
            raw.execute(f"COPY (SELECT 1 AS a) TO '{built_s3.url}/new.parquet'")
    assert served.read_bytes() == before
    assert all(secret not in text for text in seen)

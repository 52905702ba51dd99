"""A default ``lake.connect`` session is read-only: no writes to the lake or anywhere else, no
files outside the release, no other databases or extensions, no setting that undoes it, and no
credential in any output; ``allow_write=True`` lifts it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

import lake
from lake.config import StoreSpec
from lake.errors import ReadOnlyError
from tests.lake.sql_helpers import RELEASE, Built, built, built_s3  # noqa: F401


def snapshot(root: Path) -> dict[str, str]:
    """Every file of a folder with its checksum."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def guarded(built: Built) -> Iterator[Any]:  # noqa: F811
    with lake.connect(built.spec) as con:
        yield con


def lake_file(built: Built) -> str:  # noqa: F811
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
]
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


def fill(sql: str, built: Built, tmp_path: Path) -> str:  # noqa: F811
    return sql.format(outside=tmp_path, lake_file=lake_file(built), lake_root=built.root)


@pytest.mark.parametrize("sql", REFUSED_BY_GUARD)
def test_writes_and_other_databases_are_refused(
    guarded: Any,
    built: Built,  # noqa: F811
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
    built: Built,  # noqa: F811
    tmp_path: Path,
    sql: str,
) -> None:
    duckdb.connect().execute(f"COPY (SELECT 1 AS a) TO '{tmp_path}/elsewhere.parquet'")
    (tmp_path / "schema.sql").write_text("CREATE TABLE leaked AS SELECT 42 AS a;")
    (tmp_path / "load.sql").write_text("")
    with pytest.raises(duckdb.Error, match=r"disabled by configuration|locked|persistent"):
        guarded.sql(fill(sql, built, tmp_path)).fetchall()


def test_duckdb_itself_refuses_files_when_the_guard_is_bypassed(
    guarded: Any,
    built: Built,  # noqa: F811
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
    guarded.execute("SET threads = 1")
    guarded.execute("RESET threads")
    assert guarded.cursor().sql("SELECT count(*) FROM patches").fetchone()[0] == 40


def test_allow_write_lifts_the_guard(built: Built, tmp_path: Path) -> None:  # noqa: F811
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
    built_s3: StoreSpec,  # noqa: F811
    s3_server: Any,
) -> None:
    secret = str(built_s3.secret)
    lake_object = f"{built_s3.url}/tables/{RELEASE}/patches/part-0.parquet"
    served = s3_server.directory / built_s3.root / "tables" / RELEASE / "patches" / "part-0.parquet"
    before = served.read_bytes()
    seen: list[str] = []
    with lake.connect(built_s3) as con:
        seen += [repr(con), str(con.notes), str(con.__dict__)]
        secrets = con.sql("SELECT * FROM duckdb_secrets()").fetchall()
        seen.append(str(secrets))
        assert "secret=redacted" in str(secrets)
        for sql in (
            f"COPY (SELECT 1 AS a) TO '{lake_object}'",
            f"COPY (SELECT 1 AS a) TO '{built_s3.url}/new.parquet'",
            "SELECT * FROM read_parquet('s3://lake/elsewhere/*.parquet')",
            "SELECT * FROM which_secret('s3://lake/x', 's3') WHERE error(name)",
            "SELECT current_setting('s3_secret_access_key')",
            "SELEC broken",
        ):
            with pytest.raises((ReadOnlyError, duckdb.Error)) as info:
                con.sql(sql).fetchall()
            seen.append(str(info.value))
        raw = con._con
        with pytest.raises(duckdb.Error):
            raw.execute(f"COPY (SELECT 1 AS a) TO '{built_s3.url}/new.parquet'")
    assert served.read_bytes() == before
    assert all(secret not in text for text in seen)

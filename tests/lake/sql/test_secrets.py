"""No credential is readable from a read-only session over S3: not the key id, the secret or a
session token, whether they come from ``AWS_*``, from arguments, or both.

httpfs copies ``AWS_*`` into its ``s3_*`` settings when it loads, where ``current_setting()``
and ``duckdb_settings()`` showed them; ``duckdb_secrets()`` shows the key id. Every ``s3_*`` and
``http_*`` setting is read here through every function and wrapper, on the session and on a
cursor, next to the refused secret, log and logging functions and some failing statements.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

import lake
from lake.config import StoreSpec
from lake.errors import ReadOnlyError

pytestmark = pytest.mark.s3

AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


def setting_reads(name: str) -> list[str]:
    """Every way a statement reads one setting."""
    value = f"current_setting('{name}')::VARCHAR"
    return [
        f"SELECT {value}",
        f"SELECT upper({value}), lower({value}), {value} || ''",
        f"SELECT value FROM duckdb_settings() WHERE name = '{name}'",
        f"SELECT upper(value) FROM duckdb_settings() WHERE name = '{name}'",
        f"SELECT setting FROM pg_settings WHERE name = '{name}'",
        f"EXPLAIN SELECT {value}",
        f"EXPLAIN ANALYZE SELECT upper({value})",
        f"PREPARE leak AS SELECT {value}",
        "EXECUTE leak",
    ]


WHOLE_TABLES = [
    "SELECT * FROM duckdb_settings()",
    "SELECT string_agg(value, ',') FROM duckdb_settings()",
    "SELECT * FROM pg_settings",
    "EXPLAIN ANALYZE SELECT * FROM duckdb_settings()",
]
REFUSED = [
    "SELECT * FROM duckdb_secrets()",
    "SELECT * FROM duckdb_secrets(redact := false)",
    "SELECT * FROM which_secret('s3://lake/x', 's3')",
    "CALL enable_logging('HTTP')",
    "CALL enable_logging(level := 'trace')",
    "SELECT * FROM duckdb_logs",
    "SELECT message FROM duckdb_logs()",
    "SELECT * FROM duckdb_logs_parsed('HTTP')",
    "SET allow_unredacted_secrets = true",
    "RESET s3_secret_access_key",
    "CREATE SECRET copy (TYPE s3, PROVIDER config, ENDPOINT '127.0.0.1:9')",
]
FAILING = [
    "SELECT * FROM read_parquet('s3://lake/elsewhere/x.parquet')",
    "SELECT * FROM read_parquet('s3://other-bucket/x.parquet')",
    "SELEC broken",
    "SELECT current_setting('no_such_setting')",
]


@pytest.fixture(params=["env", "arguments", "both"])
def session(
    request: pytest.FixtureRequest,
    built_s3: StoreSpec,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Any, list[str]]]:
    """A read-only session over S3 with credentials from one source; the strings never shown."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    real = {"key": str(built_s3.key), "secret": str(built_s3.secret)}
    token = f"session-token-{uuid.uuid4().hex}"
    if request.param == "env":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", real["key"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", real["secret"])
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)
        monkeypatch.setenv("AWS_ENDPOINT_URL", str(built_s3.endpoint_url))
        forbidden = [*real.values(), token]
        con = lake.connect(built_s3.url)
    else:
        forbidden = list(real.values())
        if request.param == "both":  # the arguments win; the variables must not show either
            decoys = [f"AKIDDECOY{uuid.uuid4().hex[:8]}", f"decoy-secret-{uuid.uuid4().hex}"]
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", decoys[0])
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", decoys[1])
            monkeypatch.setenv("AWS_SESSION_TOKEN", token)
            forbidden += [*decoys, token]
        con = lake.connect(
            built_s3.url,
            endpoint_url=built_s3.endpoint_url,
            key=real["key"],
            secret=real["secret"],
            region=built_s3.region,
        )
    with con:
        yield con, forbidden


def _answer(con: Any, sql: str) -> tuple[str, str]:
    """``("ran", rows)`` or ``("refused", the error)``."""
    try:
        rel = con.sql(sql)
        return "ran", repr([] if rel is None else rel.fetchall())
    except (ReadOnlyError, duckdb.Error) as exc:
        return "refused", f"{type(exc).__name__}: {exc}"


def test_no_credential_is_readable_from_a_read_only_session(
    session: tuple[Any, list[str]],
) -> None:
    con, forbidden = session
    names = [n for (n,) in con.sql(
        "SELECT name FROM duckdb_settings() WHERE name LIKE 's3%' OR name LIKE 'http%' "
        "ORDER BY name"
    ).fetchall()]  # fmt: skip
    assert {"s3_access_key_id", "s3_secret_access_key", "s3_session_token"} <= set(names)
    seen: list[str] = [repr(con), str(con.notes)]
    for cursor in (con, con.cursor()):
        for name in names:
            for sql in setting_reads(name):
                outcome, text = _answer(cursor, sql)  # a setting with no value is an error
                assert outcome == "ran" or "Setting with name" in text, (sql, text)
                seen.append(text)
        for sql in WHOLE_TABLES:
            outcome, text = _answer(cursor, sql)
            assert outcome == "ran", (sql, text)
            seen.append(text)
        for sql in REFUSED:
            outcome, text = _answer(cursor, sql)
            assert outcome == "refused", (sql, text)
            seen.append(text)
        assert cursor.sql("SELECT count(*) FROM patches").fetchone() == (40,)  # the secret works
        for sql in FAILING:
            outcome, text = _answer(cursor, sql)
            assert outcome == "refused", (sql, text)
            seen.append(text)
    leaked = [s for s in forbidden if any(s in text for text in seen)]
    assert not leaked, f"{len(leaked)} credential strings shown"
    for name in ("s3_access_key_id", "s3_secret_access_key", "s3_session_token"):
        assert con.sql(f"SELECT current_setting('{name}')").fetchone() == ("",)

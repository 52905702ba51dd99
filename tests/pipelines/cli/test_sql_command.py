"""``lake sql``: a table, csv/json/parquet files, the schema, the prompt on stdin, and one clear
line with a non-zero status for bad SQL, a refused write, a missing release or endpoint."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from lake.config import StoreSpec
from pipelines.cli import app
from tests.lake.sql.helpers import RELEASE, Built

COUNTS = "SELECT type, count(*) AS n FROM annotations GROUP BY ALL ORDER BY type"


def lake_sql(*args: str, stdin: str | None = None) -> Result:
    """Run ``lake sql ARGS`` in process, with a clean environment."""
    return CliRunner().invoke(app, ["sql", *args], input=stdin, env={"LAKE_URL": ""})


def failed(result: Result, *words: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ")
    for word in words:
        assert word in result.stderr, result.stderr


def test_a_query_prints_a_table(built: Built) -> None:
    result = lake_sql("--lake", str(built.root), COUNTS)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["type", "n"] and set(lines[1]) <= {"-", " "}
    assert [ln.split()[0] for ln in lines[2:6]] == ["binary", "bounding", "captioning", "mcq"]
    assert lines[-1] == "(4 rows)"
    cut = lake_sql("--lake", str(built.root), "--max-rows", "3", "SELECT * FROM patches")
    assert cut.exit_code == 0 and "first 3 rows shown" in cut.stdout


def test_csv_json_and_parquet_outputs(built: Built, tmp_path: Path) -> None:
    lk = ("--lake", str(built.root), "--release", RELEASE)
    out = lake_sql(*lk, "--format", "csv", COUNTS)
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert out.exit_code == 0 and rows[0]["type"] == "binary"
    source = pq.read_table(built.source / "BigEarthNet.txt.parquet")
    assert sum(int(r["n"]) for r in rows) == source.num_rows
    out = lake_sql(*lk, "--format", "json", "--out", str(tmp_path / "c.json"), COUNTS)
    assert out.exit_code == 0 and json.loads((tmp_path / "c.json").read_text()) == [
        {"type": r["type"], "n": int(r["n"])} for r in rows
    ]
    geo = "SELECT patch_id, labels, geometry, s2_datetime FROM patches"
    out = lake_sql(*lk, "--format", "parquet", "--out", str(tmp_path / "p.parquet"), geo)
    table = pq.read_table(tmp_path / "p.parquet")
    assert out.exit_code == 0 and table.num_rows == 40 and table.column_names[-1] == "s2_datetime"
    failed(lake_sql(*lk, "--format", "parquet", geo), "--format parquet needs --out")
    inside = built.root / "result.csv"
    failed(lake_sql(*lk, "--format", "csv", "--out", str(inside), COUNTS), "inside the lake")
    assert not inside.exists()
    bad = lake_sql(*lk, "--format", "xml", COUNTS)
    assert bad.exit_code == 2 and "table, csv, json, parquet" in bad.stderr


def test_schema_lists_every_view(built: Built) -> None:
    result = lake_sql("--lake", str(built.root), "--schema")
    assert result.exit_code == 0, result.output
    for view in ("patches:", "annotations:", "captions:", "vqa:", "refexp:", "labels:", "items:"):
        assert any(line.startswith(view) for line in result.stdout.splitlines()), view
    doc = json.loads(lake_sql("--lake", str(built.root), "--schema", "--format", "json").stdout)
    assert {c["column"] for c in doc["refexp"]} >= {"x1", "px_x1", "expression", "area"}


def test_the_prompt_reads_statements_from_stdin(built: Built) -> None:
    stdin = "SELECT count(*) AS pairs\n  FROM patches;\n.views\n.schema labels\n.quit\nSELECT 2;\n"
    result = lake_sql("--lake", str(built.root), stdin=stdin)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "views: patches, annotations, captions, vqa, refexp, labels, items\n" in out
    assert "pairs" in out and "40" in out and "label " in out and "(1 row)" in out
    assert "2\n" not in out.split(".quit")[-1]  # nothing runs after .quit
    bad = lake_sql("--lake", str(built.root), stdin="SELEC 1;\nSELECT 41 + 1 AS answer;\n")
    assert bad.exit_code == 1 and "Parser Error" in bad.stderr and "42" in bad.stdout


def test_help_names_the_options() -> None:
    result = lake_sql("--help")
    assert result.exit_code == 0
    for option in (
        "--lake", "--release", "--format", "--out", "--schema", "--allow-write",
        "--memory-limit", "--timeout",
    ):  # fmt: skip
        assert option in result.stdout


def test_errors_are_one_line_with_a_non_zero_status(built: Built, tmp_path: Path) -> None:
    lk = ("--lake", str(built.root))
    failed(lake_sql(*lk, "SELEC 1"), "Parser Error", "SELEC")
    failed(lake_sql(*lk, "SELECT nope FROM patches"), "Binder Error", "nope")
    failed(lake_sql(*lk, "--release", "v9", "SELECT 1"), "release 'v9' is not in", "r1")
    failed(lake_sql("--lake", str(tmp_path / "none"), "SELECT 1"), "no lake")
    failed(
        lake_sql(*lk, f"COPY (SELECT 1) TO '{tmp_path}/x.csv'"), "COPY", "refused", "--allow-write"
    )
    failed(lake_sql(*lk, "SELECT * FROM read_csv('/etc/passwd')"), "/etc/passwd", "--allow-write")
    failed(lake_sql(*lk, "--build-text-index"), "--allow-write")
    assert not list(tmp_path.iterdir())
    ok = lake_sql(*lk, "--allow-write", f"COPY (SELECT 1 AS a) TO '{tmp_path}/x.csv'")
    assert ok.exit_code == 0 and (tmp_path / "x.csv").exists()


def test_an_unreachable_endpoint(tmp_path: Path) -> None:
    secret = "cli-secret-never-printed-42"
    result = lake_sql(
        "--lake", "s3://lake/x", "--endpoint-url", "http://127.0.0.1:9", "--key", "AKID",
        "--secret", secret, "SELECT 1",
    )  # fmt: skip
    failed(result, "127.0.0.1:9", "check the endpoint")
    assert secret not in result.output


@pytest.mark.s3
def test_cli_over_s3_never_prints_the_secret(built_s3: StoreSpec) -> None:
    secret = str(built_s3.secret)
    args = (
        "--lake", built_s3.url, "--endpoint-url", str(built_s3.endpoint_url),
        "--key", str(built_s3.key), "--secret", secret,
    )  # fmt: skip
    outputs = []
    result = lake_sql(*args, COUNTS)
    assert result.exit_code == 0 and "binary" in result.stdout
    outputs.append(result.output)
    outputs.append(lake_sql(*args, "--format", "csv", "SELECT * FROM duckdb_secrets()").output)
    for query in (
        "SELEC 1",
        f"COPY (SELECT 1) TO '{built_s3.url}/x.csv'",
        "SELECT * FROM read_parquet('s3://lake/other/x.parquet')",
    ):
        outputs.append(lake_sql(*args, query).output)
    outputs.append(lake_sql(*args, "--schema").output)
    outputs.append(lake_sql(*args, stdin="SELECT * FROM duckdb_secrets();\n").output)
    assert "duckdb_secrets() refused" in outputs[1]
    assert all(secret not in text and str(built_s3.key) not in text for text in outputs)


@pytest.mark.s3
def test_cli_with_aws_variables_never_prints_them(built_s3: StoreSpec) -> None:
    """httpfs copies AWS_* into its s3_* settings; they are emptied before the session starts."""
    token = "cli-session-token-never-printed"
    env = {
        "LAKE_URL": "",
        "AWS_ACCESS_KEY_ID": str(built_s3.key),
        "AWS_SECRET_ACCESS_KEY": str(built_s3.secret),
        "AWS_SESSION_TOKEN": token,
        "AWS_ENDPOINT_URL": str(built_s3.endpoint_url),
    }
    outputs = []
    for query in (
        "SELECT current_setting('s3_secret_access_key') AS s, current_setting('s3_session_token')",
        "SELECT upper(current_setting('s3_access_key_id'))",
        "SELECT name, value FROM duckdb_settings() WHERE name LIKE 's3%'",
        "EXPLAIN ANALYZE SELECT current_setting('s3_secret_access_key')",
        "SELECT * FROM duckdb_secrets()",
        COUNTS,
    ):
        result = CliRunner().invoke(app, ["sql", "--lake", built_s3.url, query], env=env)
        outputs.append(result.output)
    assert "binary" in outputs[-1]
    for text in outputs:
        for value in (str(built_s3.key), str(built_s3.secret), token):
            assert value not in text


def lake_process(
    *args: str, cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``lake ARGS`` as its own process (an abort shows as exit 134 / -6)."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LAKE_URL": "", "PYTHONPATH": str(Path(__file__).parents[3])},
    )


def test_a_statement_that_aborted_the_process_is_a_clear_error(
    built: Built,
    tmp_path: Path,
) -> None:
    """``CALL enable_logging(storage := 'file', ...)`` killed ``lake sql`` (exit 134)."""
    call = "CALL enable_logging(storage := 'file', storage_path := 'logs')"
    result = lake_process("sql", "--lake", str(built.root), call, cwd=tmp_path)
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert result.stderr.startswith("error: table function enable_logging() refused")
    assert "terminate called" not in result.stderr
    prompt = lake_process(
        "sql", "--lake", str(built.root), cwd=tmp_path, stdin=f"{call};\nSELECT 41 + 1 AS a;\n"
    )
    assert prompt.returncode == 1 and "42" in prompt.stdout, prompt.stderr[-2000:]
    assert "refused" in prompt.stderr
    assert not list(tmp_path.iterdir())


def test_the_timeout_and_memory_limit_options(built: Built) -> None:
    lk = ("--lake", str(built.root))
    slow = "SELECT count(*) FROM range(20000000000)"
    failed(lake_sql(*lk, "--timeout", "0.5", slow), "timeout of 0.5 s", "--timeout")
    big = "SELECT list(i) FROM range(100000000) t(i)"
    failed(lake_sql(*lk, "--memory-limit", "64MiB", big), "Out of Memory", "--memory-limit")
    failed(lake_sql(*lk, "--memory-limit", "lots", "SELECT 1"), "memory_limit='lots'")
    shown = lake_sql(*lk, "--memory-limit", "1GiB", "SELECT current_setting('memory_limit')")
    assert shown.exit_code == 0 and "1.0 GiB" in shown.stdout
    failed(lake_sql(*lk, "SET memory_limit = '100GB'"), "locked", "--allow-write")
    assert lake_sql(*lk, "--timeout", "-1", "SELECT 1").exit_code == 2

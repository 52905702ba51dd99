"""``lake sql``: a table, csv/json/parquet files, the schema, the prompt on stdin, and one clear
line with a non-zero status for bad SQL, a refused write, a missing release or endpoint."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from lake.config import StoreSpec
from pipelines.cli import app
from tests.lake.sql_helpers import RELEASE, Built, built, built_s3  # noqa: F401

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


def test_a_query_prints_a_table(built: Built) -> None:  # noqa: F811
    result = lake_sql("--lake", str(built.root), COUNTS)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["type", "n"] and set(lines[1]) <= {"-", " "}
    assert [ln.split()[0] for ln in lines[2:6]] == ["binary", "bounding", "captioning", "mcq"]
    assert lines[-1] == "(4 rows)"
    cut = lake_sql("--lake", str(built.root), "--max-rows", "3", "SELECT * FROM patches")
    assert cut.exit_code == 0 and "first 3 rows shown" in cut.stdout


def test_csv_json_and_parquet_outputs(built: Built, tmp_path: Path) -> None:  # noqa: F811
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


def test_schema_lists_every_view(built: Built) -> None:  # noqa: F811
    result = lake_sql("--lake", str(built.root), "--schema")
    assert result.exit_code == 0, result.output
    for view in ("patches:", "annotations:", "captions:", "vqa:", "refexp:", "labels:", "items:"):
        assert any(line.startswith(view) for line in result.stdout.splitlines()), view
    doc = json.loads(lake_sql("--lake", str(built.root), "--schema", "--format", "json").stdout)
    assert {c["column"] for c in doc["refexp"]} >= {"x1", "px_x1", "expression", "area"}


def test_the_prompt_reads_statements_from_stdin(built: Built) -> None:  # noqa: F811
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
    for option in ("--lake", "--release", "--format", "--out", "--schema", "--allow-write"):
        assert option in result.stdout


def test_errors_are_one_line_with_a_non_zero_status(built: Built, tmp_path: Path) -> None:  # noqa: F811
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
def test_cli_over_s3_never_prints_the_secret(built_s3: StoreSpec) -> None:  # noqa: F811
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
    assert "redacted" in outputs[1]
    assert all(secret not in text for text in outputs)

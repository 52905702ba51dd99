"""``lake pipeline ...``: help everywhere, JSON output, the jobs end to end on a small lake, the
dashboard link on a local cluster, and bad inputs failing with one clear line (no traceback)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from pipelines.cli import app
from tests.pipelines.jobs.helpers import RELEASE

THREADS = ["--cluster", "threads", "--workers", "2"]


def lake(*args: str) -> Result:
    """Run ``lake ARGS`` in process, without the developer's lake or AWS settings."""
    env = {k: "" for k in ("LAKE_URL", "LAKE_CLUSTER", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")}
    return CliRunner().invoke(app, list(args), prog_name="lake", env=env)


def ok_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def assert_clean_failure(result: Result, status: int, *words: str) -> None:
    assert result.exit_code == status, result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, (word, result.output)


@pytest.mark.parametrize("command", [[], ["ingest"], ["stats"], ["export"], ["verify"]])
def test_help_everywhere(command):
    result = lake("pipeline", *command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: lake pipeline" in result.output
    if command:
        assert "--cluster" in result.output and "--json" in result.output


def test_pipeline_ingest_is_lake_ingest(jobs_source, tmp_path):
    out = str(tmp_path / "lake")
    args = ["--lake", out, "--release", "p1", "--samples-per-shard", "16", "--json"]
    doc = ok_json(lake("pipeline", "ingest", str(jobs_source), *args, "--cluster", "threads"))
    assert doc["release"] == "p1" and doc["patches"] == 48
    again = ok_json(lake("pipeline", "ingest", str(jobs_source), *args, "--cluster", "sync"))
    assert again["already_published"] is True


def test_stats_verify_export_round_trip(jobs_lake, tmp_path):
    url = jobs_lake.root
    doc = ok_json(lake("pipeline", "stats", "--lake", url, *THREADS, "--json"))
    assert doc["patches"] == 48 and len(doc["overall"]) == 14 and doc["path"].endswith(".parquet")
    assert ok_json(lake("pipeline", "stats", "--lake", url, "--cluster", "sync", "--json"))[
        "already_done"
    ]
    text = lake("pipeline", "stats", "--lake", url, "--cluster", "sync")
    assert text.exit_code == 0 and "already computed" in text.output and "VV" in text.output
    assert ok_json(lake("pipeline", "verify", "--lake", url, *THREADS, "--json"))["ok"]
    target = str(tmp_path / "wds")
    sql = "SELECT patch_id FROM patches WHERE split = 'train'"
    exp = ok_json(
        lake(
            "pipeline",
            "export",
            target,
            "--lake",
            url,
            "--sql",
            sql,
            "--format",
            "webdataset",
            "--per-shard",
            "5",
            *THREADS,
            "--json",
        )
    )
    assert exp["patches"] > 0 and (Path(target) / "index.json").is_file()
    # The same target again: a finished export is not redone; another selection is refused.
    assert ok_json(
        lake(
            "pipeline",
            "export",
            target,
            "--lake",
            url,
            "--sql",
            sql,
            "--format",
            "webdataset",
            "--per-shard",
            "5",
            "--cluster",
            "sync",
            "--json",
        )
    )["already_done"]
    assert_clean_failure(
        lake(
            "pipeline",
            "export",
            target,
            "--lake",
            url,
            "--filter",
            "season = 'Summer'",
            "--format",
            "webdataset",
            "--cluster",
            "sync",
        ),
        1,
        "not empty",
        target,
    )


def test_verify_names_bad_objects_and_exits_1(jobs_lake):
    deleted = f"patches/{RELEASE}.zarr/s2_20m/c/5/0/0/0"
    corrupted = f"stac/{RELEASE}/collection.json"
    os.remove(f"{jobs_lake.root}/{deleted}")
    with open(f"{jobs_lake.root}/{corrupted}", "a") as f:
        f.write(" ")
    result = lake("pipeline", "verify", "--lake", jobs_lake.root, "--cluster", "sync")
    assert_clean_failure(result, 1, deleted, corrupted, "missing", "size", "2 problem(s)")
    doc = json.loads(
        lake("pipeline", "verify", "--lake", jobs_lake.root, "--cluster", "sync", "--json").stdout
    )
    assert not doc["ok"] and {p["path"] for p in doc["problems"]} == {deleted, corrupted}


def test_local_cluster_prints_the_dashboard(jobs_lake):
    result = lake(
        "pipeline",
        "verify",
        "--lake",
        jobs_lake.root,
        "--cluster",
        "local",
        "--workers",
        "1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert "dashboard: http://" in result.stderr
    assert json.loads(result.stdout)["dashboard"].startswith("http://")


def test_bad_inputs(jobs_lake, tmp_path):
    url = jobs_lake.root
    assert_clean_failure(
        lake("pipeline", "stats", "--lake", url, "--cluster", "garbage"), 1, "--cluster 'garbage'"
    )
    assert_clean_failure(
        lake("pipeline", "verify", "--lake", url, "--release", "nope", "--cluster", "sync"),
        1,
        "'nope'",
        RELEASE,
    )
    assert_clean_failure(
        lake("pipeline", "stats", "--lake", str(tmp_path / "empty"), "--cluster", "sync"),
        1,
        "lake ingest",
    )
    target = str(tmp_path / "t")
    assert_clean_failure(
        lake(
            "pipeline",
            "export",
            target,
            "--lake",
            url,
            "--cluster",
            "sync",
            "--sql",
            "SELECT patch_id FROM patches WHERE country = 'Atlantis'",
        ),
        1,
        "selects no pairs",
    )
    assert_clean_failure(
        lake(
            "pipeline",
            "export",
            target,
            "--lake",
            url,
            "--cluster",
            "sync",
            "--sql",
            f"COPY patches TO '{tmp_path}/leak.csv'",
        ),
        1,
        "refused",
    )
    assert not (tmp_path / "leak.csv").exists()
    assert_clean_failure(
        lake(
            "pipeline",
            "export",
            target,
            "--lake",
            url,
            "--cluster",
            "sync",
            "--sql",
            "SELECT patch_id FROM patches",
            "--filter",
            "season = 'Summer'",
        ),
        1,
        "not both",
    )
    assert_clean_failure(
        lake(
            "pipeline",
            "export",
            target,
            "--lake",
            url,
            "--cluster",
            "sync",
            "--sql",
            "SELECT patch_id FROM patches",
            "--format",
            "zip",
        ),
        1,
        "'zip'",
    )

"""``lake search``, ``lake catalog build`` and ``lake serve`` from the command line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from typer.testing import CliRunner, Result

import catalog
from catalog.search import Catalog
from lake.config import StoreSpec
from pipelines.cli import app

ROOT = Path(__file__).resolve().parents[3]


def lake(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), prog_name="lake", env={"LAKE_URL": ""})


def clean_failure(result: Result, *words: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output


def test_search_prints_ids(lake_spec: StoreSpec, cat: Catalog) -> None:
    args = [
        "--bbox",
        "-12,35,32,71",
        "--datetime",
        "2017-06/2017-12",
        "--filter",
        "season = 'Fall'",
    ]
    result = lake("search", "--lake", lake_spec.url, *args)
    assert result.exit_code == 0, result.output
    expected = catalog.search(
        cat, bbox=[-12, 35, 32, 71], datetime="2017-06/2017-12", filter="season = 'Fall'"
    )
    assert result.stdout.split() == [i.id for i in expected.items] and expected.items


def test_search_json_fields_sortby_and_paging(lake_spec: StoreSpec) -> None:
    first = lake(
        "search",
        "--lake",
        lake_spec.url,
        "--sortby",
        "-sample_index",
        "--limit",
        "4",
        "--fields",
        "properties.sample_index,-assets,-geometry",
        "--json",
    )
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    values = [f["properties"]["sample_index"] for f in doc["features"]]
    assert values == sorted(values, reverse=True) and len(values) == 4
    assert all("assets" not in f for f in doc["features"])
    assert f"--token {doc['next_token']}" in first.stderr
    second = lake(
        "search",
        "--lake",
        lake_spec.url,
        "--sortby",
        "-sample_index",
        "--limit",
        "4",
        "--token",
        doc["next_token"],
    )
    assert second.exit_code == 0 and len(second.stdout.split()) == 4
    assert not set(second.stdout.split()) & {f["id"] for f in doc["features"]}


def test_search_with_cql2_json(lake_spec: StoreSpec, cat: Catalog) -> None:
    cql = json.dumps({"op": "=", "args": [{"property": "country"}, "Portugal"]})
    result = lake("search", "--lake", lake_spec.url, "--filter", cql, "--filter-lang", "cql2-json")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [i.id for i in catalog.search(cat, filter=cql).items]


def test_search_bad_inputs_are_one_line_errors(lake_spec: StoreSpec, tmp_path: Path) -> None:
    url = lake_spec.url
    clean_failure(lake("search", "--lake", url, "--bbox", "1,2"), "bbox '1,2'")
    clean_failure(lake("search", "--lake", url, "--datetime", "soon"), "datetime 'soon'")
    clean_failure(lake("search", "--lake", url, "--filter", "country =="), "cql2-text")
    clean_failure(lake("search", "--lake", url, "--filter", "colour = 'red'"), "'colour'")
    clean_failure(lake("search", "--lake", url, "--collections", "x"), "unknown collection")
    clean_failure(lake("search", "--lake", url, "--release", "r9"), "'r9'")
    clean_failure(lake("search", "--lake", str(tmp_path)), "no release")
    assert lake("search", "--lake", url, "--limit", "0").exit_code == 2  # typer: bad usage


def test_catalog_build_checks_the_stored_catalog(lake_spec: StoreSpec) -> None:
    result = lake("catalog", "build", "--lake", lake_spec.url, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["identical"] and doc["release"] == "r1" and doc["items"] == 60
    clean_failure(lake("catalog", "build", "--lake", lake_spec.url, "--release", "r2"), "'r2'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_binds_loopback_and_answers(lake_spec: StoreSpec) -> None:
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "serve",
        "--lake",
        lake_spec.url,
        "--port",
        str(port),
    ]
    env = {**os.environ, "LAKE_URL": ""}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/search?limit=2", timeout=5)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        assert r.status_code == 200 and len(r.json()["features"]) == 2
        busy = lake("serve", "--lake", lake_spec.url, "--port", str(port))
        clean_failure(busy, f"127.0.0.1:{port}")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert "127.0.0.1" in err and "Traceback" not in err


def test_serve_without_a_catalog_fails_cleanly(tmp_path: Path) -> None:
    clean_failure(lake("serve", "--lake", str(tmp_path)), "no release")

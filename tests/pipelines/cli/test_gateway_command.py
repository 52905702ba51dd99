"""`lake gateway serve` as a user runs it, and `lake ingest --cluster gateway://...` against it:
the printed environment is enough to run a job; clean one-line errors for a wrong password, a
gateway that is not running and a busy port; SIGTERM stops the gateway."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.local.s3 import free_port
from pipelines.synth import synthesize

LAKE = [sys.executable, "-m", "pipelines.cli"]


def lake(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LAKE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def without_gateway_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("LAKE_GATEWAY", "DASK_GATEWAY"))
    }


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.Popen[str], dict]]:
    """`lake gateway serve --port 0 --json` in the background; its JSON document."""
    folder = tmp_path_factory.mktemp("served")
    proc = subprocess.Popen(
        [*LAKE, "gateway", "serve", "--port", "0", "--json", "--dir", str(folder / "gw")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=without_gateway_env(),
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, proc.stderr.read()  # type: ignore[union-attr]
        yield proc, json.loads(line)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)  # waits, and closes its pipes


def test_serve_prints_what_a_job_needs(served, tmp_path):
    _, doc = served
    env = doc["environment"]
    assert doc["address"].startswith("gateway://127.0.0.1:")
    assert env["LAKE_CLUSTER"] == doc["address"]
    assert len(env["LAKE_GATEWAY_PASSWORD"]) >= 16  # generated
    assert env["DASK_GATEWAY__AUTH__KWARGS__PASSWORD"] == env["LAKE_GATEWAY_PASSWORD"]
    # `lake ingest --cluster gateway://...` authenticates with the exported dask-gateway config.
    source = synthesize(4, tmp_path / "src", fmt="folders", seed=3).out
    result = lake(
        "ingest", str(source), "--lake", str(tmp_path / "lake"), "--release", "c1",
        "--samples-per-shard", "2", "--cluster", doc["address"], "--workers", "1", "--json",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["patches"] == 4
    assert "dashboard http://127.0.0.1:" in result.stderr
    # `lake pipeline stats` with the shared cluster options and the password as an option only.
    result = lake(
        "pipeline", "stats", "--lake", str(tmp_path / "lake"), "--cluster", doc["address"],
        "--workers", "2", "--worker-cores", "1", "--worker-memory", "1GiB",
        "--gateway-password", env["LAKE_GATEWAY_PASSWORD"], "--json",
        env={"PATH": os.environ["PATH"]},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["release"] == "c1"
    result = lake(
        "pipeline", "verify", "--lake", str(tmp_path / "lake"), "--cluster", doc["address"],
        "--worker-memory", "lots",
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: --worker-memory 'lots' is not a memory size" in result.stderr


def test_ingest_refuses_a_gateway_with_a_wrong_password(served, tmp_path):
    _, doc = served
    source = synthesize(2, tmp_path / "src", fmt="folders", seed=3).out
    env = {**doc["environment"], "LAKE_GATEWAY_PASSWORD": "wrong"}
    result = lake(
        "ingest",
        str(source),
        "--lake",
        str(tmp_path / "lake"),
        "--cluster",
        doc["address"],
        env=env,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"error: the Dask Gateway at {doc['address']} refused the credentials" in result.stderr


def test_gateway_not_running_is_one_clean_line(tmp_path):
    source = synthesize(2, tmp_path / "src", fmt="folders", seed=3).out
    address = f"gateway://127.0.0.1:{free_port()}"
    result = lake("ingest", str(source), "--lake", str(tmp_path / "lake"), "--cluster", address)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"error: no Dask Gateway answers at {address}" in result.stderr
    assert "lake gateway serve" in result.stderr


def test_busy_port_and_text_output(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = lake("gateway", "serve", "--port", str(port), "--dir", str(tmp_path / "gw"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr


def test_sigterm_stops_the_gateway(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [*LAKE, "gateway", "serve", "--port", str(port), "--dir", str(tmp_path / "gw")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**without_gateway_env(), "LAKE_GATEWAY_PASSWORD": "chosen-password"},
    )
    try:
        exports = {}
        for _ in range(6):  # `export NAME=value` lines a shell can eval
            name, _, value = proc.stdout.readline().removeprefix("export ").strip().partition("=")  # type: ignore[union-attr]
            exports[name] = shlex.split(value)[0]
        assert exports["LAKE_GATEWAY_PASSWORD"] == "chosen-password"
        assert exports["LAKE_CLUSTER"] == f"gateway://127.0.0.1:{port}"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # closes its pipes
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
    assert Path(tmp_path / "gw").is_dir()

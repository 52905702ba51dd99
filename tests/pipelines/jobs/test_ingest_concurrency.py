"""Two identical ingests at once (real CLI processes, local folder and embedded S3): the second
stops at once with "another ingest of this release is running" (it used to fail deep inside
with "File too short"), the first publishes, and a rerun afterwards does nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lake.config import store_spec
from lake.layout import ingest_lock_path, work_path
from lake.storage import filesystem
from pipelines.synth import synthesize


@pytest.fixture(scope="module")
def twin_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("twin") / "src"
    synthesize(48, out, fmt="folders", seed=5, progress=False)
    return out


def _cmd(source: Path, lake: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "ingest", str(source), "--lake", lake,
            "--release", "r1", "--cluster", "sync", "--samples-per-shard", "4",
            "--scan-batch", "4", "--json"]  # fmt: skip


@pytest.mark.parametrize("backend", ["file", pytest.param("s3", marks=pytest.mark.s3)])
def test_a_second_identical_ingest_says_another_is_running(twin_source, tmp_path, backend, request):
    env = dict(os.environ)
    if backend == "file":
        lake = str(tmp_path / "lake")
        spec = store_spec(lake, environ={})
    else:
        server = request.getfixturevalue("s3_server")
        env.update(server.endpoint.environment())
        lake = f"s3://lake/twin-{tmp_path.name}"
        spec = store_spec(lake, environ=server.endpoint.environment())
    fs = filesystem(spec)
    lock = spec.path(ingest_lock_path("r1"))
    started = spec.path(work_path("r1"), "state.json")  # written once the ingest is under way

    first = subprocess.Popen(_cmd(twin_source, lake), env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not fs.exists(started):
            assert first.poll() is None, "the first ingest ended before it was seen running"
            assert time.monotonic() < deadline
            time.sleep(0.02)
            fs.invalidate_cache()
        # Hold the first one still while the second starts (so they surely overlap).
        os.kill(first.pid, signal.SIGSTOP)
        try:
            second = subprocess.run(_cmd(twin_source, lake), env=env, capture_output=True,
                                    text=True, timeout=300)  # fmt: skip
        finally:
            os.kill(first.pid, signal.SIGCONT)
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    assert second.returncode == 1, second.stderr
    assert "another ingest of release 'r1' is running" in second.stderr
    assert "File too short" not in second.stderr and "Traceback" not in second.stderr
    assert json.loads(out)["patches"] == 48
    fs.invalidate_cache()
    assert not fs.exists(lock)
    rerun = subprocess.run(_cmd(twin_source, lake), env=env, capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["already_published"]

"""The ``lake`` command line at its front door: help, the synth -> ingest -> info -> show round
trip on disk and on the embedded S3 endpoint, clear messages and exit statuses for bad input, and
``lake s3 serve`` as a process that starts, serves, prints what to export and stops cleanly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from lake.config import store_spec
from lake.render import PANEL
from lake.storage import filesystem
from pipelines.cli import app
from pipelines.cli.common import EXIT_QUARANTINED
from pipelines.local.s3 import EmbeddedS3

N = 12
FAST = ["--cluster", "threads", "--samples-per-shard", "8", "--scan-batch", "8"]
AWS_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "LAKE_URL",
)


def lake(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run ``lake ARGS`` in process."""
    return CliRunner().invoke(app, list(args), prog_name="lake", env=env)


def ok_json(result: Result) -> dict[str, Any]:
    """The JSON document of a successful ``--json`` run."""
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def assert_clean_failure(result: Result, status: int, *words: str) -> None:
    """The command failed with ``status`` and a one-line message naming ``words``, no traceback."""
    assert result.exit_code == status, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, (word, result.output)


@pytest.fixture(autouse=True)
def no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the settings they set (not the developer's AWS or lake variables)."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic folder source written by ``lake synth`` (read-only: copy to change)."""
    out = tmp_path_factory.mktemp("cli") / "source"
    doc = ok_json(lake("synth", "--out", str(out), "--patches", str(N), "--seed", "3", "--json"))
    assert doc["n_patches"] == N and doc["fmt"] == "folders" and doc["n_text_rows"] > 0
    return out


@pytest.fixture(scope="module")
def local_lake(source: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The source ingested into a local lake by ``lake ingest --json``: (lake folder, report)."""
    where = tmp_path_factory.mktemp("cli") / "lake"
    doc = ok_json(lake("ingest", str(source), "--lake", str(where), *FAST, "--json"))
    return where, doc


def first_patch_id(source: Path) -> str:
    """The first patch id of a source's metadata."""
    return str(pq.read_table(source / "metadata.parquet", columns=["patch_id"])[0][0])


# ---------------------------------------------------------------- help


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        ([], ["synth", "ingest", "info", "show", "s3"]),
        (["synth"], ["--out", "--patches", "--format", "--seed", "--json"]),
        (
            ["ingest"],
            [
                "SOURCE",
                "--lake",
                "--release",
                "--kind",
                "--metadata",
                "--cluster",
                "--samples-per-shard",
                "--endpoint-url",
                "--key",
                "--secret",
                "--region",
                "--json",
                "LAKE_URL",
                "AWS_ENDPOINT_URL",
                "AWS_SECRET_ACCESS_KEY",
            ],
        ),
        (["info"], ["--lake", "--endpoint-url", "--json"]),
        (["show"], ["--out", "--lake", "--release", "--endpoint-url"]),
        (["s3"], ["serve"]),
        (["s3", "serve"], ["--dir", "--port", "--bucket", "--json"]),
    ],
    ids=["lake", "synth", "ingest", "info", "show", "s3", "s3-serve"],
)
def test_help_mentions_the_key_options(command: list[str], mentions: list[str]) -> None:
    result = lake(*command, "--help")
    assert result.exit_code == 0, result.output
    assert f"Usage: lake {' '.join(command)}".rstrip() in result.output
    for word in mentions:
        assert word in result.output, word


# ---------------------------------------------------------------- round trip on disk


def test_ingest_json_has_what_a_script_needs(source: Path, local_lake: tuple[Path, dict]) -> None:
    where, doc = local_lake
    assert doc["release"] == "v1"
    assert doc["patches"] == N
    assert doc["annotations"] > 0
    assert doc["bytes"] > 0 and doc["seconds"] > 0 and doc["patches_per_second"] > 0
    assert doc["quarantined"] == {} and doc["quarantine_report"] is None
    assert doc["kind"] == "folders" and doc["source"] == str(source)
    assert doc["lake"] == f"file://{where.resolve()}"


def test_ingest_text_summarises_the_release(source: Path, tmp_path: Path) -> None:
    result = lake("ingest", str(source), "--lake", str(tmp_path / "lake"), *FAST)
    assert result.exit_code == 0, result.output
    assert f"release v1 of file://{tmp_path.resolve() / 'lake'}: {N} pairs" in result.stdout


def test_ingest_again_is_a_no_op(source: Path, local_lake: tuple[Path, dict]) -> None:
    where, first = local_lake
    doc = ok_json(lake("ingest", str(source), "--lake", str(where), *FAST, "--json"))
    assert doc["already_published"] is True
    assert (doc["patches"], doc["annotations"]) == (first["patches"], first["annotations"])


def test_info_lists_releases_with_counts(local_lake: tuple[Path, dict]) -> None:
    where, ingested = local_lake
    doc = ok_json(lake("info", "--lake", str(where), "--json"))
    assert doc["current"] == "v1" and list(doc["releases"]) == ["v1"]
    v1 = doc["releases"]["v1"]
    assert v1["counts"]["patches"] == N
    assert v1["counts"]["annotations"]["total"] == ingested["annotations"]
    assert v1["bytes"] == ingested["bytes"] and v1["objects"] > 0

    text = lake("info", "--lake", str(where))
    assert text.exit_code == 0 and f"v1: {N} pairs" in text.stdout


def test_show_writes_a_png_with_three_panels(
    source: Path, local_lake: tuple[Path, dict], tmp_path: Path
) -> None:
    where, _ = local_lake
    out = tmp_path / "pair.png"
    result = lake("show", first_patch_id(source), "--lake", str(where), "--out", str(out))
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert im.width >= 3 * PANEL and im.height >= PANEL


# ---------------------------------------------------------------- round trip on S3


@pytest.mark.s3
def test_ingest_to_s3_with_credentials_from_flags(source: Path, s3_server: EmbeddedS3) -> None:
    e = s3_server.endpoint
    url = f"s3://lake/cli-{uuid.uuid4().hex[:8]}"
    flags = ["--endpoint-url", e.endpoint_url, "--key", e.key, "--secret", e.secret]
    flags += ["--region", e.region]
    doc = ok_json(lake("ingest", str(source), "--lake", url, *flags, *FAST, "--json"))
    assert doc["lake"] == url and doc["patches"] == N

    info = ok_json(lake("info", "--lake", url, *flags, "--json"))
    assert info["releases"]["v1"]["counts"]["patches"] == N


@pytest.mark.s3
def test_ingest_to_s3_with_credentials_from_the_environment(
    source: Path, s3_server: EmbeddedS3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in s3_server.endpoint.environment().items():
        monkeypatch.setenv(name, value)
    url = f"s3://lake/cli-{uuid.uuid4().hex[:8]}"
    doc = ok_json(lake("ingest", str(source), "--lake", url, *FAST, "--json"))
    assert doc["patches"] == N

    monkeypatch.setenv("LAKE_URL", url)  # the lake URL can come from the environment too
    info = ok_json(lake("info", "--json"))
    assert info["lake"] == url and info["releases"]["v1"]["counts"]["patches"] == N
    png = tmp_path / "pair.png"
    shown = lake("show", first_patch_id(source), "--out", str(png))
    assert shown.exit_code == 0, shown.output
    assert png.stat().st_size > 0


# ---------------------------------------------------------------- bad input at the front door


def test_ingest_of_a_missing_source_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = lake("ingest", str(missing), "--lake", str(tmp_path / "lake"))
    assert_clean_failure(result, 1, str(missing), "does not exist")


def test_ingest_of_a_source_without_metadata(source: Path, tmp_path: Path) -> None:
    copy = tmp_path / "no-metadata"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("*.parquet"))
    result = lake("ingest", str(copy), "--lake", str(tmp_path / "lake"))
    assert_clean_failure(result, 1, "metadata.parquet", "--metadata")


def test_ingest_of_a_folder_that_is_no_source(tmp_path: Path) -> None:
    result = lake("ingest", str(tmp_path), "--lake", str(tmp_path / "lake"))
    assert_clean_failure(result, 1, str(tmp_path), "not a BigEarthNet source")


def test_unsupported_lake_url(source: Path) -> None:
    result = lake("ingest", str(source), "--lake", "ftp://host/lake")
    assert_clean_failure(result, 1, "ftp://host/lake", "not supported")


def test_s3_key_without_secret() -> None:
    result = lake("info", "--lake", "s3://lake/x", "--key", "only-a-key")
    assert_clean_failure(result, 1, "incomplete", "--secret", "AWS_SECRET_ACCESS_KEY")


@pytest.mark.s3
@pytest.mark.parametrize("command", ["ingest", "info"])
def test_wrong_secret_is_a_message_not_a_traceback(
    command: str, source: Path, s3_server: EmbeddedS3
) -> None:
    e = s3_server.endpoint
    url = f"s3://lake/cli-{uuid.uuid4().hex[:8]}"
    args = [str(source), *FAST] if command == "ingest" else []
    flags = ["--endpoint-url", e.endpoint_url, "--key", e.key, "--secret", "not-the-secret"]
    result = lake(command, *args, "--lake", url, *flags)
    assert_clean_failure(result, 1, f"error: lake {url}", e.endpoint_url, "--secret")


def test_show_of_an_unknown_patch(local_lake: tuple[Path, dict], tmp_path: Path) -> None:
    where, _ = local_lake
    result = lake("show", "NO_SUCH_PATCH", "--lake", str(where), "--out", str(tmp_path / "x.png"))
    assert_clean_failure(result, 1, "'NO_SUCH_PATCH'", "not in release 'v1'")
    assert not (tmp_path / "x.png").exists()


def test_show_of_an_unknown_release(source: Path, local_lake: tuple[Path, dict]) -> None:
    where, _ = local_lake
    result = lake("show", first_patch_id(source), "--lake", str(where), "--release", "v9")
    assert_clean_failure(result, 1, "'v9'", "releases: v1")


def test_info_where_there_is_no_lake(tmp_path: Path) -> None:
    result = lake("info", "--lake", str(tmp_path))
    assert_clean_failure(result, 1, str(tmp_path), "no lake", "lake ingest")


def test_ingest_with_an_invalid_release_name(source: Path, tmp_path: Path) -> None:
    result = lake("ingest", str(source), "--lake", str(tmp_path), "--release", "../up")
    assert_clean_failure(result, 1, "'../up'", "invalid")
    assert not any(tmp_path.iterdir())


def test_synth_of_zero_patches_is_a_usage_error(tmp_path: Path) -> None:
    result = lake("synth", "--out", str(tmp_path / "s"), "--patches", "0")
    assert_clean_failure(result, 2, "--patches")


def test_synth_of_an_unknown_format(tmp_path: Path) -> None:
    result = lake("synth", "--out", str(tmp_path / "s"), "--patches", "2", "--format", "zip")
    assert_clean_failure(result, 1, "'zip'", "folders", "tar.zst", "lmdb")


def test_ingest_with_a_missing_band_quarantines_and_exits_3(source: Path, tmp_path: Path) -> None:
    copy = tmp_path / "source"
    shutil.copytree(source, copy)
    next((copy / "BigEarthNet-S2").rglob("*_B02.tif")).unlink()
    where = tmp_path / "lake"
    result = lake("ingest", str(copy), "--lake", str(where), *FAST)
    report = where / "releases" / "v1" / "quarantine.jsonl"
    assert result.exit_code == EXIT_QUARANTINED, result.output
    assert f"{N - 1} pairs" in result.stdout
    assert "quarantined" in result.stdout and "missing_file 1" in result.stdout
    assert str(report) in result.stdout
    assert report.exists()


def test_quarantine_is_in_the_json_report(source: Path, tmp_path: Path) -> None:
    copy = tmp_path / "source"
    shutil.copytree(source, copy)
    next((copy / "BigEarthNet-S1").rglob("*_VH.tif")).unlink()
    result = lake("ingest", str(copy), "--lake", str(tmp_path / "lake"), *FAST, "--json")
    assert result.exit_code == EXIT_QUARANTINED, result.output
    doc = json.loads(result.stdout)
    assert doc["patches"] == N - 1 and doc["quarantined"]["missing_file"] == 1
    assert Path(doc["quarantine_report"]).exists()


# ---------------------------------------------------------------- lake s3 serve


def answers(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start ``lake s3 serve --dir tmp --port 0 [--json]`` as a process; killed at the end."""
    procs: list[subprocess.Popen[str]] = []

    def start(*extra: str) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "pipelines.cli", "s3", "serve", "--dir", str(tmp_path / "s3")]
        proc = subprocess.Popen(
            [*cmd, "--port", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if k not in AWS_VARIABLES},
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.communicate()  # waits, and closes its pipes
    for orphan in rclone_serving(tmp_path):  # left behind only if a test failed
        orphan.kill()


def rclone_serving(folder: Path) -> list[psutil.Process]:
    """The rclone processes serving something under ``folder``."""
    found = []
    for p in psutil.process_iter(["name", "cmdline", "status"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        if (
            p.info["status"] != psutil.STATUS_ZOMBIE
            and "rclone" in cmdline
            and str(folder) in cmdline
        ):
            found.append(p)
    return found


@pytest.mark.s3
def test_s3_serve_serves_and_stops_with_its_rclone_on_sigterm(serve: Any, tmp_path: Path) -> None:
    proc = serve("--json")
    doc = json.loads(proc.stdout.readline())
    env = doc["environment"]
    assert doc["endpoint_url"] == env["AWS_ENDPOINT_URL"] and doc["buckets"] == ["lake"]
    port = int(doc["endpoint_url"].rsplit(":", 1)[1])
    (rclone,) = psutil.Process(proc.pid).children()

    fs = filesystem(store_spec("s3://lake/probe", environ=env))
    fs.pipe("lake/probe/hello.txt", b"hello")
    assert fs.cat("lake/probe/hello.txt") == b"hello"

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert not rclone.is_running()
    assert not answers(port)
    assert rclone_serving(tmp_path) == []


@pytest.mark.s3
def test_s3_serve_prints_exports_a_shell_can_eval(serve: Any) -> None:
    proc = serve()
    exports = [proc.stdout.readline() for _ in range(6)]
    assert all(line.startswith("export AWS_") for line in exports), exports
    shell = "".join(exports) + 'exec "$0" -c "import json, os; print(json.dumps(dict(os.environ)))"'
    env = json.loads(
        subprocess.run(
            ["sh", "-c", shell, sys.executable], text=True, capture_output=True, check=True
        ).stdout
    )
    fs = filesystem(store_spec("s3://lake/probe", environ=env))
    fs.pipe("lake/probe/x", b"x")
    assert fs.ls("lake/probe") == ["lake/probe/x"]

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert "serving" in proc.stderr.read()


def test_version_names_the_installed_distribution() -> None:
    from importlib.metadata import version

    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"lake {version('bigearthnet-lake')}"


@pytest.mark.parametrize(
    ("flags", "bars"), [([], False), (["--no-progress"], False), (["--progress"], True)]
)
def test_progress_bars_only_on_a_terminal_or_when_asked(
    tmp_path: Path, flags: list[str], bars: bool
) -> None:
    """Captured output is not a terminal: no bar (no carriage-return frames) unless --progress."""
    out = tmp_path / "src"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            *flags,
            "synth",
            "--out",
            str(out),
            "--patches",
            "3",
        ],
        capture_output=True,
        timeout=120,
    )
    err = done.stderr.decode()  # bytes: text mode would turn the bars' "\r" into "\n"
    assert done.returncode == 0, err
    assert ("\r" in err) == bars, err[-500:]
    assert "synth folders" in err if bars else err == ""

"""Every command shown in README.md and docs/*.md is exercised by a test.

What counts as a command: each line of a fenced block labelled ``bash``, ``sh``, ``shell`` or
``console`` (``$ `` prompts and ``# comments`` removed, ``\\`` continuations joined), each line
of an unlabelled block whose lines all start like a command (``lake``, ``make``, ``python``,
``.venv/bin/...``, ``$ ``), and each ``python`` and ``sql`` block as a whole.

The convention: this file decides, command by command, how each one is exercised, and fails
when the docs show a command it does not know (or when it lists one the docs no longer show):

* :data:`RUN`: run verbatim by :func:`test_shell_command_runs`, in a sandbox where
  ``s3://bucket/lake`` is a small lake on the embedded S3 endpoint (the ``AWS_*`` variables point
  at it, as ``lake s3 serve`` prints them) and ``./lake-data`` is the same lake as a folder. The
  lake holds the pair the README names (``..._T33UUP_75_43``).
* :data:`COVERED`: run elsewhere; the entry names the test that does it (checked to exist).
* :data:`OPTIONS_ONLY`: hours-long benchmark commands; their script's ``--help`` must list every
  option they use.
* :data:`NEEDS_EXTERNAL`: commands that need Docker, Kubernetes or a cloud account, which this
  machine and CI lack. They are not run: :func:`test_external_command_is_consistent` parses each
  one and checks it against the files it names (the Dockerfile, the compose file and its
  services, the Helm values and the keys it sets) and against the commands next to it (the image
  pushed is the one built, the namespace listed is the one installed into).
* Every ``python`` block runs (each in a fresh interpreter, in the sandbox), and every ``sql``
  block: with plain DuckDB when it reads Parquet by path (``docs/format.md`` promises no project
  code is needed), else in ``lake.connect("./lake-data")``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml  # type: ignore[import-untyped]

from pipelines.local.processes import die_with_parent, free_port
from pipelines.local.s3 import EmbeddedS3
from pipelines.showcase import tour
from tests.support.timeseries import publish_series

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
METADATA = ROOT.parent / "shared" / "data" / "bigearthnet-v2" / "metadata.parquet"
README_PATCH = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"
SHELL_LANGS = {"bash", "sh", "shell", "console"}
COMMAND_START = re.compile(r"^(\$ |lake |make |python |\.venv/bin/)")

#: Run verbatim in the sandbox; the value is the exit status expected.
RUN: dict[str, int] = {
    "lake info --lake s3://bucket/lake --json": 0,
    f"lake show {README_PATCH} --lake s3://bucket/lake --out patch.png": 0,
    "lake search --lake s3://bucket/lake --bbox 12,47,17,49 --datetime 2017-06/2017-09 "
    "--filter \"country = 'Austria'\" --limit 20": 0,
    "lake catalog build --lake s3://bucket/lake": 0,
    'lake sql --lake s3://bucket/lake "SELECT type, category, count(*) FROM annotations '
    'GROUP BY ALL"': 0,
    "lake sql --lake s3://bucket/lake --schema": 0,
    'lake sql --lake s3://bucket/lake "SELECT split, count(*) FROM annotations GROUP BY ALL"': 0,
    "lake sql --lake ./lake-data --format parquet --out bench.parquet "
    "\"FROM vqa WHERE split = 'bench'\"": 0,
    "lake sql --lake ./lake-data --schema": 0,
    "lake sql --lake ./lake-data": 0,  # the prompt; stdin is empty here, so it ends at once
    "lake pipeline export s3://bucket/test-split --lake s3://bucket/lake "
    "--sql \"SELECT patch_id FROM patches WHERE split = 'test'\"": 0,
    "lake pipeline verify --lake s3://bucket/lake": 0,
    "lake pipeline export s3://bucket/vlm-train --lake s3://bucket/lake --split train "
    "--format llava --box-format qwen": 0,
}

#: Exercised by another test (``path::name``); the reason says how.
COVERED: dict[str, tuple[str, str]] = {
    "make demo": (
        "tests/pipelines/showcase/test_demo.py::test_demo_builds_a_lake_on_s3_and_cleans_up",
        "runs pipelines.showcase.demo, the recipe of `make demo` (checked by test_make_targets...)",
    ),
    "make test": (
        "tests/docs/test_docs_commands.py::test_make_targets_run_what_the_docs_say",
        "the recipe is `pytest -q`, the command running this suite in CI (.ci/run)",
    ),
    "lake synth --patches 1000 --out source --format tar.zst": (
        "tests/docs/test_docs_commands.py::test_readme_build_commands_verbatim",
        "slow: synthesizes 1,000 pairs",
    ),
    "lake ingest source --lake s3://bucket/lake --cluster local": (
        "tests/docs/test_docs_commands.py::test_readme_build_commands_verbatim",
        "slow: needs the source of the synth line and an empty bucket",
    ),
    "lake s3 serve --dir s3-data --port 9000": (
        "tests/pipelines/cli/test_commands.py::test_s3_serve_serves_and_stops_with_its_rclone_on_sigterm",
        "serves until stopped; that test starts it, uses it and stops it",
    ),
    "lake serve --lake s3://bucket/lake --port 8080": (
        "tests/pipelines/cli/test_catalog_commands.py::test_serve_binds_loopback_and_answers",
        "serves until stopped; that test starts it, queries it and stops it",
    ),
    "lake s3 serve --dir s3-data --port 9000 --bucket lake": (
        "tests/pipelines/cli/test_commands.py::test_s3_serve_serves_and_stops_with_its_rclone_on_sigterm",
        "serves until stopped; that test starts it (bucket `lake`), uses it and stops it",
    ),
    "lake gateway serve --port 8000": (
        "tests/pipelines/cli/test_gateway_command.py::test_sigterm_stops_the_gateway",
        "serves until stopped; that test starts it with --port, evals its export lines and "
        "stops it with SIGTERM (test_serve_prints_what_a_job_needs runs jobs on it)",
    ),
    "LAKE_GATEWAY_PASSWORD=choose-one LAKE_GATEWAY_ADDRESS=127.0.0.1:8000 "
    ".venv/bin/dask-gateway-server -f infra/gateway/dask_gateway_config.py": (
        "tests/docs/test_docs_commands.py::test_dask_gateway_server_by_hand",
        "serves until stopped; that test runs the line as shown, on a free port instead of 8000",
    ),
    "lake ingest source --lake s3://lake/bigearthnet --release v1 "
    "--cluster gateway://127.0.0.1:8000 --workers 2": (
        "tests/pipelines/cli/test_gateway_command.py::test_serve_prints_what_a_job_needs",
        "needs a running gateway: that test runs `lake ingest --cluster gateway://...` on the "
        "one `lake gateway serve` started (tests/pipelines/cluster/test_gateway.py: on S3 too)",
    ),
    "lake pipeline stats --lake s3://lake/bigearthnet --cluster gateway://127.0.0.1:8000 "
    "--workers 2": (
        "tests/pipelines/cli/test_gateway_command.py::test_serve_prints_what_a_job_needs",
        "needs a running gateway: that test runs `lake pipeline stats --cluster gateway://... "
        "--workers 2` on the one `lake gateway serve` started",
    ),
    "lake pipeline stats --lake s3://bucket/lake --cluster gateway://127.0.0.1:8000 --workers 2 "
    "--worker-memory 2GiB": (
        "tests/pipelines/cli/test_gateway_command.py::test_serve_prints_what_a_job_needs",
        "needs a running gateway: that test runs `lake pipeline stats --cluster gateway://... "
        "--workers 2 --worker-memory 1GiB`; notebooks/05 runs the job on S3",
    ),
    "lake eval --baseline majority --lake s3://bucket/lake --json": (
        "tests/pipelines/cli/test_eval_cli.py::test_baselines",
        "the sandbox lake (48 pairs) has no bench pair; that test runs `lake eval --baseline "
        "majority --json` on a lake with a bench split (21 rows) and reads the JSON",
    ),
    "lake eval predictions.jsonl --lake s3://bucket/lake --by country --out eval-report": (
        "tests/pipelines/cli/test_eval_cli.py::test_summary_and_out_files_by_group",
        "needs a model's predictions: that test writes them for a split and runs `lake eval "
        "PREDICTIONS --split test --by season --out DIR` (notebooks/06-vlm: --by country)",
    ),
    ".venv/bin/python -m pytest tests/notebooks": (
        "tests/docs/test_docs_commands.py::test_make_targets_run_what_the_docs_say",
        "`make test` runs `pytest -q`, which collects tests/notebooks (this runs that folder only)",
    ),
}

#: Benchmark commands (hours on the full data): their script's --help must list their options.
OPTIONS_ONLY = {
    ".venv/bin/python benchmarks/ingest.py --sizes 2048 "
    "--kinds folders,folders-s3,tar.zst,tar.zst-s3,lmdb --workers 2 --profile-pairs 128 "
    "--no-real --json-out bench-output/ingest.json",
    ".venv/bin/python benchmarks/sql.py --workers 2 --repeat 5 --json-out bench-output/sql.json",
    ".venv/bin/python benchmarks/timeseries.py --patches 24 --cluster sync,local --workers 2 "
    "--json-out bench-output/timeseries.json",
    ".venv/bin/python benchmarks/search.py --rounds 4 --markdown --json-out "
    "bench-output/search.json",
    ".venv/bin/python benchmarks/loader.py --pairs 20000 --time-limit 90 --out /tmp/b20k --keep "
    "--json-out /tmp/b20k/loader.json",
    ".venv/bin/python benchmarks/loader_start.py /tmp/b20k --latency-ms 20 --repeat 7 "
    "--json-out /tmp/b20k/start.json",
    ".venv/bin/python benchmarks/integrity.py --pairs 1024 --repeats 7 --json-out "
    "bench-output/integrity.json",
    ".venv/bin/python benchmarks/loader_text.py --pairs 2000 --out /tmp/lt --keep",
    ".venv/bin/python benchmarks/loader_text.py --lake /tmp/lt/lake --repeat 3 --json-out ms.json",
    ".venv/bin/python benchmarks/loader_text.py --lake /tmp/lt/lake --modalities rgb "
    "--image-size 224 --repeat 3 --json-out rgb.json",
}


#: Need Docker, Kubernetes or a cloud account (not here, not in CI): parsed and checked against
#: the files they name by :func:`test_external_command_is_consistent`, not run.
NEEDS_EXTERNAL: dict[str, str] = {
    "docker build -f infra/docker/Dockerfile -t registry.example.org/bigearthnet-lake:0.1.0 .": (
        "Docker and a registry"
    ),
    "docker push registry.example.org/bigearthnet-lake:0.1.0": "Docker and a registry",
    "helm repo add dask https://helm.dask.org": "Helm and the network",
    "helm upgrade --install lake-gateway dask/dask-gateway --namespace lake --create-namespace "
    "--values infra/helm/dask-gateway-values.yaml "
    '--set gateway.auth.simple.password="$LAKE_GATEWAY_PASSWORD"': "Helm and a Kubernetes cluster",
    "kubectl --namespace lake get services": "a Kubernetes cluster",
    "cp infra/compose/example.env infra/compose/.env": (
        "writes the compose secrets file into the checkout; its source is checked instead"
    ),
    "docker compose -f infra/compose/compose.yaml up -d minio bucket gateway": "Docker Compose",
    "docker compose -f infra/compose/compose.yaml up -d stac": "Docker Compose",
    "lake pipeline timeseries --lake s3://bucket/lake --stac "
    "https://earth-search.aws.element84.com/v1 --datetime 2019-01/2019-12 --ids "
    f"{README_PATCH} --max-cloud 40 --composite month --part s2-2019": (
        "the internet (Earth Search); tests/pipelines/jobs/test_timeseries.py runs the command "
        "on a local STAC API, and the sandbox's lake gets part s2-2019 so the README's Python runs"
    ),
}


@dataclass(frozen=True)
class Block:
    """A fenced block of a Markdown file."""

    path: Path
    line: int
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with their language and first line number.

    Fences may be indented (a block inside a list item); the body loses that indentation.
    """
    blocks, lines = [], path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang, start, body = len(m[1]), m[2], m[3], i + 1, []
        i += 1
        while i < len(lines) and not lines[i].lstrip().startswith(fence):
            line = lines[i]
            cut = len(line) - len(line.lstrip())  # at most the fence's indentation
            body.append(line[min(indent, cut) :])
            i += 1
        blocks.append(Block(path, start, lang.lower(), "\n".join(body)))
        i += 1
    return blocks


def strip_comment(line: str) -> str:
    """``line`` without a trailing shell comment (a ``#`` after a blank, outside quotes)."""
    quote = None
    for k, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (k == 0 or line[k - 1].isspace()):
            return line[:k].rstrip()
    return line.rstrip()


def shell_commands(block: Block) -> list[str]:
    """The commands of a shell block: prompts and comments removed, continuations joined."""
    out, pending = [], ""
    for raw in block.text.splitlines():
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        line = strip_comment(line)
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = " ".join((pending + line).split())
        pending = ""
        if line:
            out.append(line)
    return out


def is_shell(block: Block) -> bool:
    if block.lang in SHELL_LANGS:
        return True
    lines = [ln for ln in block.text.splitlines() if ln.strip()]
    return block.lang == "" and bool(lines) and all(COMMAND_START.match(ln) for ln in lines)


def all_blocks() -> list[Block]:
    return [b for path in DOCS for b in fenced_blocks(path)]


def all_commands() -> list[tuple[str, str]]:
    """(command, where) for every shell command shown."""
    return [(c, b.where) for b in all_blocks() if is_shell(b) for c in shell_commands(b)]


def blocks_of(lang: str) -> list[Block]:
    return [b for b in all_blocks() if b.lang == lang]


# -- the inventory --------------------------------------------------------------------------


def test_every_command_in_the_docs_is_exercised() -> None:
    shown = all_commands()
    assert shown, "no commands found: the extraction is broken"
    unknown = [
        f"{where}: {cmd}"
        for cmd, where in shown
        if cmd not in RUN
        and cmd not in COVERED
        and cmd not in OPTIONS_ONLY
        and cmd not in NEEDS_EXTERNAL
    ]
    assert not unknown, (
        "commands shown in the docs that no test exercises; add each to RUN, COVERED (with the "
        "test that runs it), OPTIONS_ONLY or NEEDS_EXTERNAL in tests/docs/test_docs_commands.py:\n"
        + "\n".join(unknown)
    )
    lists = [set(RUN), set(COVERED), OPTIONS_ONLY, set(NEEDS_EXTERNAL)]
    twice = sorted(c for k, a in enumerate(lists) for b in lists[k + 1 :] for c in a & b)
    assert not twice, f"listed in two categories: {twice}"
    listed = set().union(*lists)
    stale = sorted(listed - {cmd for cmd, _ in shown})
    assert not stale, f"listed here but no longer in the docs (remove them): {stale}"


@pytest.mark.parametrize("command", sorted(COVERED))
def test_the_covering_test_exists(command: str) -> None:
    node, _why = COVERED[command]
    file, _, name = node.partition("::")
    source = (ROOT / file).read_text()
    assert re.search(rf"^def {re.escape(name)}\(", source, re.M), f"{node} does not exist"


# -- the sandbox ----------------------------------------------------------------------------


def metadata_with_readme_patch(out: Path, n: int = 48) -> Path:
    """A metadata parquet of ``n`` real rows including the README's pair, all three splits."""
    table = pq.read_table(METADATA)
    rng = np.random.default_rng(7)
    picked = set(rng.choice(table.num_rows, size=n - 1, replace=False).tolist())
    ids = table.column("patch_id")
    readme = pc.index(ids, README_PATCH).as_py()
    assert readme >= 0, f"{README_PATCH} is not in the official metadata"
    rows = sorted(picked | {readme})
    subset = table.take(pa.array(rows))
    assert set(subset.column("split").to_pylist()) >= {"train", "validation", "test"}
    path = out / "metadata.parquet"
    pq.write_table(subset, path)
    return path


@dataclass(frozen=True)
class Sandbox:
    """The folder the docs' commands run in, and the environment they run with."""

    cwd: Path
    env: dict[str, str]

    def run(self, args: str | list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # type: ignore[call-overload]
            args,
            shell=isinstance(args, str),
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            **kwargs,
        )


def sandbox_env(endpoint_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "LAKE_URL"}
    env.update(endpoint_env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """``s3://bucket/lake`` (48 pairs with the README's) on the endpoint; ``./lake-data`` too."""
    base = tmp_path_factory.mktemp("docs")
    metadata = metadata_with_readme_patch(base)
    with tour.start(
        base / "tour", patches=48, bucket="bucket", prefix="lake", metadata=metadata
    ) as t:
        cwd = base / "cwd"
        cwd.mkdir()
        (cwd / "lake-data").symlink_to(t.lake_folder, target_is_directory=True)
        publish_series(t.spec, [README_PATCH], base / "scenes")  # the README's part s2-2019
        yield Sandbox(cwd, sandbox_env(t.endpoint.environment()))


# -- running them ---------------------------------------------------------------------------


@pytest.mark.s3
@pytest.mark.parametrize("command", sorted(RUN))
def test_shell_command_runs(command: str, sandbox: Sandbox) -> None:
    result = sandbox.run(command)
    assert result.returncode == RUN[command], (
        f"{command}\nexit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    )
    if "--json" in command:
        json.loads(result.stdout)
    if "--out " in command:
        out = shlex.split(command)[shlex.split(command).index("--out") + 1]
        assert (sandbox.cwd / out).stat().st_size > 0


def _python_ids() -> list[str]:
    return [b.where for b in blocks_of("python")]


@pytest.mark.s3
@pytest.mark.parametrize("block", blocks_of("python"), ids=_python_ids())
def test_python_block_runs(block: Block, sandbox: Sandbox) -> None:
    result = sandbox.run([sys.executable, "-c", block.text])
    assert result.returncode == 0, f"{block.where}\n{block.text}\n{result.stderr[-3000:]}"


#: A sql block that reads Parquet by path runs in plain DuckDB, else in lake.connect's views.
_SQL_RUNNER = """
import sys
query = sys.stdin.read()
if "read_parquet(" in query:
    import duckdb
    con = duckdb.connect()
else:
    import lake
    con = lake.connect("./lake-data")
print(con.sql(query).fetchall()[:5])
"""


@pytest.mark.s3
@pytest.mark.parametrize("block", blocks_of("sql"), ids=[b.where for b in blocks_of("sql")])
def test_sql_block_runs(block: Block, sandbox: Sandbox) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SQL_RUNNER],
        input=block.text,
        cwd=sandbox.cwd,
        env=sandbox.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{block.where}\n{block.text}\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("command", sorted(OPTIONS_ONLY))
def test_benchmark_command_options_exist(command: str) -> None:
    args = shlex.split(command)
    script = ROOT / args[1]
    assert script.is_file(), f"{args[1]} does not exist"
    result = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for option in (a for a in args[2:] if a.startswith("--")):
        assert option in result.stdout, f"{args[1]} --help does not list {option}"


def test_make_targets_run_what_the_docs_say() -> None:
    result = subprocess.run(
        ["make", "-n", "-W", "pyproject.toml", "demo", "test", "test-all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    recipe = result.stdout
    assert "pip install" in recipe and "constraints.txt" in recipe, "make venv is not run first"
    assert ".venv/bin/python -m pipelines.showcase.demo" in recipe
    assert ".venv/bin/python -m pytest -q\n" in recipe
    assert '.venv/bin/python -m pytest -q -m ""' in recipe
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
@pytest.mark.s3
def test_readme_build_commands_verbatim(tmp_path: Path) -> None:
    """The README's synth and ingest lines, as shown, into an empty bucket."""
    synth, ingest = (
        c
        for c, where in all_commands()
        if where.startswith("README") and c.startswith(("lake synth", "lake ingest"))
    )
    with EmbeddedS3(tmp_path / "s3", buckets=["bucket"]) as s3:
        box = Sandbox(tmp_path, sandbox_env(s3.endpoint.environment()))
        made = box.run(synth)
        assert made.returncode == 0, made.stderr[-2000:]
        built = box.run(ingest)
        assert built.returncode in (0, 3), built.stderr[-2000:]  # 3: some input quarantined
        info = box.run("lake info --lake s3://bucket/lake --json")
        assert info.returncode == 0, info.stderr[-2000:]
        doc = json.loads(info.stdout)
        counts = doc["releases"][doc["current"]]["counts"]
        assert counts["patches"] == 1000, counts  # the synthetic source is clean


# -- servers shown with a fixed port --------------------------------------------------------


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except (urllib.error.URLError, OSError):
        return False


def test_dask_gateway_server_by_hand(tmp_path: Path) -> None:
    """docs/operations.md's dask-gateway-server line serves, as shown but on a free port."""
    (shown,) = [c for c, _ in all_commands() if "dask-gateway-server -f" in c]
    port = free_port()
    command = shown.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    assert command != shown, "the line no longer sets LAKE_GATEWAY_ADDRESS=127.0.0.1:8000"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "DASK_GATEWAY"))}
    env["LAKE_GATEWAY_CLUSTERS_DIR"] = str(tmp_path / "clusters")  # not a temp folder of /tmp
    args = shlex.split(command)
    while re.match(r"^[A-Z_]+=", args[0]):  # `NAME=value command`, as the shell does it
        name, _, value = args.pop(0).partition("=")
        env[name] = value
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
    try:
        deadline = time.monotonic() + 60
        while not _answers(f"http://127.0.0.1:{port}/api/health"):
            assert proc.poll() is None, f"it exited with {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no answer in 60 s:\n{log.read_text()}"
            time.sleep(0.2)
        assert "choose-one" not in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert not _answers(f"http://127.0.0.1:{port}/api/health"), "still serving after SIGTERM"


# -- commands that need Docker, Kubernetes or a cloud account -------------------------------


def _yaml(relative: str) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / relative).read_text())
    assert isinstance(doc, dict), f"{relative} is not a YAML mapping"
    return doc


def _option(args: list[str], *names: str) -> list[str]:
    """Every value of an option given as ``--name value`` or ``--name=value``."""
    values = []
    for k, arg in enumerate(args):
        for name in names:
            if arg == name and k + 1 < len(args):
                values.append(args[k + 1])
            elif arg.startswith(name + "="):
                values.append(arg[len(name) + 1 :])
    return values


def _has_key(doc: object, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return False
        doc = doc[part]
    return True


def _shown_args(prefix: str) -> list[list[str]]:
    """The argument lists of every shown command that starts with ``prefix``."""
    return [shlex.split(c) for c, _ in all_commands() if c.startswith(prefix)]


def external_problems(command: str) -> list[str]:
    """What does not add up in a command that cannot run here (empty: nothing)."""
    args = shlex.split(command)  # raises on unbalanced quotes
    tool = args[:2] if args[0] in ("docker", "helm") else args[:1]
    problems: list[str] = []

    def need_file(relative: str) -> None:
        if not (ROOT / relative).is_file():
            problems.append(f"{relative} does not exist")

    if tool == ["docker", "build"]:
        (dockerfile,) = _option(args, "-f", "--file")
        need_file(dockerfile)
        if not (ROOT / args[-1]).is_dir():
            problems.append(f"build context {args[-1]} is not a folder")
        if not _option(args, "-t", "--tag"):
            problems.append("no -t tag: docker push has nothing to push")
    elif tool == ["docker", "push"]:
        built = {t for a in _shown_args("docker build") for t in _option(a, "-t", "--tag")}
        if args[2] not in built:
            problems.append(f"{args[2]} is not built by any `docker build -t` shown")
    elif tool == ["docker", "compose"]:
        (file,) = _option(args, "-f", "--file")
        compose = _yaml(file)
        services = compose.get("services") or {}
        assert isinstance(services, dict)
        up = args.index("up")
        named = [a for a in args[up + 1 :] if not a.startswith("-")]
        problems += [f"{file} has no service {s!r}" for s in named if s not in services]
        for name, service in services.items():
            build = service.get("build") if isinstance(service, dict) else None
            if isinstance(build, dict):
                context = (ROOT / file).parent / build.get("context", ".")
                if not (context / build.get("dockerfile", "Dockerfile")).is_file():
                    problems.append(f"service {name}: its Dockerfile is not in {context}")
    elif tool == ["helm", "repo"]:
        if args[2] != "add" or not args[4].startswith("https://"):
            problems.append("expected `helm repo add NAME https://...`")
    elif tool == ["helm", "upgrade"]:
        chart = args[4] if args[2] == "--install" else args[3]
        added = {a[3] for a in _shown_args("helm repo add")}
        if chart.split("/")[0] not in added:
            problems.append(f"chart {chart}: no `helm repo add {chart.split('/')[0]} ...` shown")
        for values_file in _option(args, "--values", "-f"):
            values = _yaml(values_file)
            for setting in _option(args, "--set"):
                key = setting.partition("=")[0]
                if not _has_key(values, key):
                    problems.append(f"--set {key}: no such key in {values_file}")
            image = values.get("gateway", {}).get("backend", {}).get("image", {})
            built = {t for a in _shown_args("docker build") for t in _option(a, "-t", "--tag")}
            if f"{image.get('name')}:{image.get('tag')}" not in built:
                problems.append(f"{values_file}: the workers' image is not the one built")
            extra = values.get("gateway", {}).get("extraConfig", {})
            for name, code in extra.items():
                try:
                    compile(code, f"{values_file}:extraConfig.{name}", "exec")
                except SyntaxError as exc:
                    problems.append(f"extraConfig.{name} is not valid Python: {exc}")
        if not _option(args, "--namespace", "-n"):
            problems.append("no --namespace")
    elif tool == ["kubectl"]:
        installed = {n for a in _shown_args("helm upgrade") for n in _option(a, "--namespace")}
        for namespace in _option(args, "--namespace", "-n"):
            if namespace not in installed:
                problems.append(f"namespace {namespace!r}: no helm install into it is shown")
    elif tool == ["cp"]:
        source, target = args[1], args[2]
        need_file(source)
        if Path(target).name == ".env" and (ROOT / source).is_file():  # compose's variables
            compose_file = (ROOT / target).parent / "compose.yaml"
            required = set(re.findall(r"\$\{(\w+):\?", compose_file.read_text()))
            given = set(re.findall(r"^(\w+)=", (ROOT / source).read_text(), re.M))
            problems += [f"{source} does not set {v}" for v in sorted(required - given)]
    elif tool == ["lake"]:
        problems += _lake_problems(args)
    else:
        problems.append(f"no check for {' '.join(tool)} commands: add one")
    return problems


def _lake_problems(args: list[str]) -> list[str]:
    """A ``lake`` command that needs the internet: its command and options exist, URLs are https."""
    import typer

    from pipelines.cli import app

    command: Any = typer.main.get_command(app)  # typer's own click: test groups by `commands`
    rest = args[1:]
    while hasattr(command, "commands") and rest and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    if hasattr(command, "commands"):
        return [f"{' '.join(args[:3])}: no such lake command"]
    known = {o for p in command.params for o in p.opts}
    problems = [
        f"{command.name} has no option {a}" for a in rest if a.startswith("--") and a not in known
    ]
    problems += [
        f"--stac {u} is not an https URL"
        for u in _option(args, "--stac")
        if not u.startswith("https://")
    ]
    return problems


@pytest.mark.parametrize("command", sorted(NEEDS_EXTERNAL))
def test_external_command_is_consistent(command: str) -> None:
    assert external_problems(command) == []


def test_external_checks_catch_mistakes() -> None:
    """The checks above fail on what they are meant to catch."""
    assert external_problems("docker push registry.example.org/other:1") != []
    assert external_problems("docker compose -f infra/compose/compose.yaml up -d nosuch") != []
    assert external_problems("kubectl --namespace elsewhere get pods") != []
    helm = next(c for c in NEEDS_EXTERNAL if c.startswith("helm upgrade"))
    assert external_problems(helm.replace("gateway.auth.simple", "gateway.auth.nosuch")) != []
    assert external_problems("cp infra/compose/missing.env infra/compose/.env") != []
    assert external_problems("terraform apply") != []
    assert external_problems("lake pipeline timeseries --nosuch 1") != []
    assert external_problems("lake pipeline nosuch --lake x") != []
    assert external_problems("lake pipeline timeseries --stac http://127.0.0.1:1") != []


def test_compose_secrets_file_is_git_ignored() -> None:
    result = subprocess.run(
        ["git", "check-ignore", "-q", "infra/compose/.env"], cwd=ROOT, timeout=30
    )
    assert result.returncode == 0

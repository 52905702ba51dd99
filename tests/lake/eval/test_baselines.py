"""The floors: majority from the train split by hand, a seeded random, the full-image box."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from lake import open_lake
from lake.errors import ConfigError
from lake.eval import baseline_predictions, evaluate, split_rows
from lake.eval.answers import parse_binary, parse_choice
from lake.eval.baselines import TRAIN_COLUMNS
from lake.vlm.boxes import parse_box, parse_box_as
from lake.vlm.rows import TextRow
from tests.support.lakes import TestLake


@pytest.fixture(scope="module")
def train_rows(eval_lake: TestLake) -> list[TextRow]:
    return split_rows(eval_lake.spec, "train")


@pytest.fixture(scope="module")
def train(eval_lake: TestLake) -> pa.Table:
    return open_lake(eval_lake.spec).current.annotations("train", list(TRAIN_COLUMNS))


def test_majority_answers_by_hand(
    bench_rows: list[TextRow], train_rows: list[TextRow], train: pa.Table
) -> None:
    preds = baseline_predictions("majority", bench_rows, train)
    assert set(preds) == {r["id"] for r in bench_rows}
    for r in bench_rows:
        same = [t for t in train_rows if t["type"] == r["type"] and t["category"] == r["category"]]
        assert same, r["category"]
        if r["type"] == "binary":
            counts = Counter("yes" if t["answer_bool"] else "no" for t in same)
            top = max(counts.values())
            assert preds[r["id"]] == min(a for a, n in counts.items() if n == top)
        elif r["type"] == "mcq":
            texts = Counter(t["options"][t["answer_index"]].lower() for t in same)
            top = max(texts.values())
            best = min(a for a, n in texts.items() if n == top)
            options = [o.lower() for o in r["options"]]
            if best in options:
                assert preds[r["id"]] == "ABCD"[options.index(best)]
            else:
                letters = Counter("ABCD"[t["answer_index"]] for t in same)
                top = max(letters.values())
                assert preds[r["id"]] == min(a for a, n in letters.items() if n == top)
        elif r["type"] == "bounding box":
            mean = np.mean([t["box"] for t in same], axis=0)
            got = parse_box(preds[r["id"]])
            assert got is not None and np.allclose(got, mean, atol=0.005)
        else:
            captions = Counter(t["output"] for t in same)
            top = max(captions.values())
            assert preds[r["id"]] == min(c for c, n in captions.items() if n == top)


def test_random_is_seeded_and_valid(
    bench_rows: list[TextRow], train_rows: list[TextRow], train: pa.Table
) -> None:
    a = baseline_predictions("random", bench_rows, train, seed=0)
    assert a == baseline_predictions("random", bench_rows, train, seed=0)
    assert a != baseline_predictions("random", bench_rows, train, seed=1)
    train_captions = {t["output"] for t in train_rows if t["type"] == "captioning"}
    for r in bench_rows:
        answer = a[r["id"]]
        if r["type"] == "binary":
            assert parse_binary(answer) is not None
        elif r["type"] == "mcq":
            assert parse_choice(answer, r["options"]) is not None
        elif r["type"] == "bounding box":
            assert parse_box(answer) is not None
        else:
            assert answer in train_captions
    qwen = baseline_predictions("random", bench_rows, train, seed=0, box_format="qwen")
    boxes = [r["id"] for r in bench_rows if r["type"] == "bounding box"]
    for i in boxes:
        assert qwen[i].startswith('{"bbox_2d": [')
        got, want = parse_box_as(qwen[i], "qwen"), parse_box(a[i])
        assert got is not None and want is not None and np.allclose(got, want, atol=0.006)


def test_full_image_box_scores_the_reference_area(
    eval_lake: TestLake, bench_rows: list[TextRow]
) -> None:
    report = evaluate(None, eval_lake.spec, baseline="full-image-box", captions=False)
    boxes = [r["box"] for r in bench_rows if r["type"] == "bounding box"]
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes if b is not None]
    ref = report["scores"]["refexp"]["overall"]
    assert ref["miou"] == pytest.approx(sum(areas) / len(areas))
    assert ref["acc"]["0.5"] == pytest.approx(sum(a >= 0.5 for a in areas) / len(areas))
    majority = evaluate(None, eval_lake.spec, baseline="majority", captions=False)
    assert report["scores"]["qa"] == majority["scores"]["qa"]  # other rows: as majority
    assert report["predictions"] == "baseline:full-image-box" and report["seed"] is None


def test_a_perfect_model_beats_every_floor(eval_lake: TestLake, bench_rows: list[TextRow]) -> None:
    perfect = evaluate({r["id"]: r["output"] for r in bench_rows}, eval_lake.spec, captions=False)
    for name in ("majority", "random", "full-image-box"):
        floor = evaluate(None, eval_lake.spec, baseline=name, seed=3, captions=False)  # type: ignore[arg-type]
        assert floor["counts"]["scored"] == 21 and floor["baseline"] == name
        acc = floor["scores"]["qa"]["overall"]["accuracy"]
        assert acc is not None and acc < perfect["scores"]["qa"]["overall"]["accuracy"]  # type: ignore[operator]
    assert evaluate(None, eval_lake.spec, baseline="random", seed=3, captions=False)["seed"] == 3


def test_without_train_rows_the_fallbacks_answer(bench_rows: list[TextRow]) -> None:
    empty = pa.table({})
    preds = baseline_predictions("majority", bench_rows, empty)
    for r in bench_rows:
        want = {"binary": "yes", "mcq": "A", "bounding box": "[0.00 0.00, 1.00 1.00]"}
        assert preds[r["id"]] == want.get(r["type"], "")
    with pytest.raises(ConfigError, match="baseline 'oracle' is unknown"):
        baseline_predictions("oracle", bench_rows, empty)  # type: ignore[arg-type]

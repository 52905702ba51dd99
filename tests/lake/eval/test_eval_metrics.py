"""Accuracy, IoU, mIoU and Acc@t against hand computations, and the per-row outcomes."""

from __future__ import annotations

import pytest

from lake.errors import ConfigError
from lake.eval.metrics import accuracy_score, box_score
from lake.eval.score import box_parser, outcome, score_rows
from lake.vlm.rows import TextRow


def row(i: int, kind: str, category: str = "c", **kw: object) -> TextRow:
    base: TextRow = {
        "id": i,
        "type": kind,
        "category": category,
        "input": "q",
        "output": "",
        "options": [],
        "answer_index": -1,
        "answer_bool": -1,
        "box": None,
    }
    base.update(kw)  # type: ignore[typeddict-item]
    return base


def test_accuracy_by_hand() -> None:
    assert accuracy_score([True, False, True, True], unparsed=1) == {
        "n": 4,
        "correct": 3,
        "unparsed": 1,
        "accuracy": 0.75,
    }
    assert accuracy_score([])["accuracy"] is None


def test_box_scores_by_hand() -> None:
    scores = box_score([1.0, 0.5, 0.25, 0.8, 0.0], unparsed=1)
    assert scores["miou"] == pytest.approx((1.0 + 0.5 + 0.25 + 0.8) / 5)
    assert scores["acc"] == {"0.25": 0.8, "0.5": 0.6, "0.75": 0.4, "0.9": 0.2}
    assert scores["unparsed"] == 1
    assert box_score([])["miou"] is None and box_score([])["acc"]["0.5"] is None


def test_iou_of_a_predicted_box_by_hand() -> None:
    truth = row(1, "bounding box", box=(0.0, 0.0, 0.5, 0.5), output="[0.00 0.00, 0.50 0.50]")
    read = box_parser(None, None)
    # intersection 0.25 x 0.5 = 0.125; union 0.25 + 0.25 - 0.125 = 0.375
    got = outcome(truth, "It is at [0.25 0.00, 0.75 0.50].", read)
    assert got["iou"] == pytest.approx(0.125 / 0.375) and got["parsed"]
    assert outcome(truth, "[0.00 0.00, 0.50 0.50]", read)["iou"] == pytest.approx(1.0)
    assert outcome(truth, "[0.60 0.60, 0.90 0.90]", read)["iou"] == 0.0
    missed = outcome(truth, "no idea", read)
    assert missed["iou"] == 0.0 and not missed["parsed"]


def test_score_rows_by_hand() -> None:
    rows = [
        row(1, "binary", "presence", answer_bool=1, output="yes"),
        row(2, "binary", "presence", answer_bool=0, output="no"),
        row(3, "binary", "area", answer_bool=1, output="yes"),
        row(4, "mcq", "season", options=["Spring", "Fall"], answer_index=1, output="B"),
        row(5, "mcq", "season", options=["Spring", "Fall"], answer_index=0, output="A"),
        row(6, "bounding box", "reference", box=(0.0, 0.0, 1.0, 1.0)),
        row(7, "bounding box", "point", box=(0.0, 0.0, 0.5, 1.0)),
        row(8, "binary", "area", answer_bool=0, output="no"),
    ]
    preds = {1: "Yes", 2: "yes", 3: "hmm", 4: "Fall", 5: "A", 6: "[0 0, 0.5 1]", 7: "nothing"}
    overall, groups, outcomes = score_rows(
        rows, preds, groups={i: "g1" if i < 5 else "g2" for i in range(1, 9)}, captions=False
    )
    qa = overall["qa"]
    assert overall["rows"] == 7  # row 8 has no prediction: not scored
    assert qa["overall"] == {"n": 5, "correct": 3, "unparsed": 1, "accuracy": 0.6}
    assert qa["by_type"]["binary"]["accuracy"] == pytest.approx(1 / 3)
    assert qa["by_type"]["mcq"]["accuracy"] == 1.0
    assert qa["by_category"]["binary"]["presence"]["correct"] == 1
    assert qa["by_category"]["binary"]["area"] == {
        "n": 1,
        "correct": 0,
        "unparsed": 1,
        "accuracy": 0.0,
    }
    ref = overall["refexp"]
    assert ref["overall"]["miou"] == pytest.approx(0.25)
    assert ref["by_category"]["reference"]["acc"]["0.5"] == 1.0
    assert ref["by_category"]["point"]["unparsed"] == 1
    assert overall["captions"] is None
    assert groups["g1"]["qa"]["overall"]["n"] == 4 and groups["g2"]["qa"]["overall"]["n"] == 1
    assert groups["g2"]["refexp"]["overall"]["n"] == 2
    assert [o["id"] for o in outcomes] == [1, 2, 3, 4, 5, 6, 7]


def test_box_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="--image-size"):
        box_parser("pixel", None)
    with pytest.raises(ConfigError, match="'yolo' is unknown"):
        box_parser("yolo", None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="image_size 0"):
        box_parser("pixel", 0)

"""``lake eval``: score a vision-language model on the BigEarthNet.txt bench, as the paper does.

* :func:`evaluate`: predictions (JSONL of ``{"ID": int, "prediction": str}``) or a baseline,
  against a split of a lake (``bench`` by default) -> a :class:`Report`;
* :mod:`~lake.eval.answers`: the tolerant reading of yes/no and multiple-choice answers;
* :mod:`~lake.eval.metrics`: accuracy, IoU, mIoU and Acc@0.25/0.5/0.75/0.9;
* :mod:`~lake.eval.captions`: BLEU-1..4, METEOR, ROUGE-L, CIDEr through pycocoevalcap;
* :mod:`~lake.eval.baselines`: the ``majority``, ``random`` and ``full-image-box`` floors;
* :mod:`~lake.eval.report`: the report as JSON, markdown and bar plots.

The rules are documented in ``docs/eval.md``.

Example:
    >>> from lake.eval import evaluate, write_report
    >>> report = evaluate("predictions.jsonl", "s3://bucket/lake")  # doctest: +SKIP
    >>> report["scores"]["qa"]["by_type"]["mcq"]["accuracy"]  # doctest: +SKIP
    >>> write_report(report, "eval-out")  # doctest: +SKIP
"""

from lake.eval.answers import parse_binary, parse_choice
from lake.eval.baselines import BASELINES, Baseline, baseline_predictions
from lake.eval.evaluate import BENCH, GROUP_BY, GroupBy, evaluate, split_rows
from lake.eval.predictions import Prediction, read_predictions
from lake.eval.report import Report, markdown, summary, write_report
from lake.eval.score import Scores, score_rows

__all__ = [
    "BASELINES",
    "BENCH",
    "GROUP_BY",
    "Baseline",
    "GroupBy",
    "Prediction",
    "Report",
    "Scores",
    "baseline_predictions",
    "evaluate",
    "markdown",
    "parse_binary",
    "parse_choice",
    "read_predictions",
    "score_rows",
    "split_rows",
    "summary",
    "write_report",
]

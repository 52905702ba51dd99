"""Trivial answers to the bench, scored like a model's, so that a model's numbers mean something.

Each baseline answers every row of the evaluated split; the statistics it needs come from the
``train`` split of the same lake (never from the evaluated rows), so a floor never sees the
answers it is scored on.

* ``majority``: the most frequent train answer.
  binary: the most frequent yes/no of the row's category (over all binary rows when the category
  has no train rows; ``yes`` when there are none);
  mcq: the most frequent correct option TEXT of the category in train (e.g. the commonest
  season) when it is one of the row's options, else the most frequent correct letter of the
  category (``A`` when the category has no train rows);
  bounding box: the mean train box of the category (coordinate-wise mean of ``x1, y1, x2, y2``;
  the full image when there are none);
  captioning: the most frequent train caption (ties: the first in sorted order; empty when the
  train split has none).
  Ties between answers go to the first in sorted order (``no`` before ``yes``).
* ``random``: uniform choices from ``numpy.random.default_rng(seed)`` (seed 0 by default), drawn
  in row-ID order: binary ``yes``/``no``; mcq one of the row's option letters; a box whose two x
  and two y are uniform on 0..1 (sorted); a caption drawn from the train captions (empty when
  there are none).
* ``full-image-box``: every box is the whole image ``[0.00 0.00, 1.00 1.00]`` (its IoU is the
  reference box's area); the other rows are answered as ``majority``.

Boxes are written in the requested ``box_format`` (the dataset's own ``unit`` format by default),
so a baseline exercises the same parser as the model it is compared with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake.errors import ConfigError
from lake.eval.answers import LETTERS
from lake.eval.score import BOX_TYPE, CAPTION_TYPE
from lake.vlm.boxes import Box, BoxFormat, format_box
from lake.vlm.rows import BOX_COLUMNS, TextRow

#: The baselines (see the module docstring).
Baseline = Literal["majority", "random", "full-image-box"]
BASELINES: Final[tuple[Baseline, ...]] = get_args(Baseline)
#: The whole image as a box.
FULL_IMAGE: Final[Box] = (0.0, 0.0, 1.0, 1.0)

#: The train columns the baselines read.
TRAIN_COLUMNS: Final = (
    "type",
    "category",
    "output",
    "options",
    "answer_index",
    "answer_bool",
    "box_x1",
    "box_y1",
    "box_x2",
    "box_y2",
)


def _top(table: pa.Table, key: str, value: str) -> dict[Any, Any]:
    """Per ``key``, the most frequent non-null ``value`` (ties: the first in sorted order)."""
    if table.num_rows == 0:
        return {}
    counts = table.group_by([key, value]).aggregate([([], "count_all")]).to_pylist()
    best: dict[Any, tuple[Any, int]] = {}
    for rec in counts:
        k, v, n = rec[key], rec[value], rec["count_all"]
        if v is None:
            continue
        held = best.get(k)
        if held is None or n > held[1] or (n == held[1] and str(v) < str(held[0])):
            best[k] = (v, n)
    return {k: v for k, (v, _) in best.items()}


def _of_type(table: pa.Table, kind: str) -> pa.Table:
    return table.filter(pc.equal(table["type"], kind))


def _with_all(table: pa.Table) -> pa.Table:
    return table.append_column("all", pa.array([""] * table.num_rows, pa.string()))


class _TrainStats:
    """The train statistics of the ``majority`` answers, computed with Arrow (any size)."""

    def __init__(self, train: pa.Table) -> None:
        if train.num_rows == 0 or any(c not in train.column_names for c in TRAIN_COLUMNS):
            self._empty()
            return
        binary = _of_type(train, "binary").select(["category", "answer_bool"])
        binary = binary.set_column(1, "answer_bool", pc.cast(binary["answer_bool"], pa.int8()))
        self.binary = _top(binary, "category", "answer_bool")
        self.binary_all = _top(_with_all(binary), "all", "answer_bool").get("")
        self._mcq(_of_type(train, "mcq"))
        boxes = _of_type(train, BOX_TYPE)
        boxes = boxes.filter(pc.is_valid(boxes["box_x1"]))
        self.box: dict[str, Box] = {}
        if boxes.num_rows:
            means = boxes.group_by("category").aggregate([(c, "mean") for c in BOX_COLUMNS])
            for rec in means.to_pylist():
                x1, y1, x2, y2 = (float(rec[f"{c}_mean"]) for c in BOX_COLUMNS)
                self.box[rec["category"]] = (x1, y1, x2, y2)
        captions = _of_type(train, CAPTION_TYPE).select(["output"])
        self.caption = str(_top(_with_all(captions), "all", "output").get("", ""))
        self.captions = sorted(captions["output"].to_pylist())

    def _empty(self) -> None:
        self.binary, self.binary_all = {}, None
        self.mcq_text: dict[str, str] = {}
        self.mcq_letter: dict[str, int] = {}
        self.box = {}
        self.caption, self.captions = "", []

    def _mcq(self, mcq: pa.Table) -> None:
        mcq = mcq.filter(pc.is_valid(mcq["answer_index"])).combine_chunks()
        mcq = mcq.filter(pc.is_valid(mcq["options"]))
        index = pc.cast(mcq["answer_index"], pa.int64())
        mcq = mcq.filter(pc.less(index, pc.list_value_length(mcq["options"])))
        self.mcq_text, self.mcq_letter = {}, {}
        if not mcq.num_rows:
            return
        options = mcq["options"].combine_chunks()
        index = pc.cast(mcq["answer_index"].combine_chunks(), pa.int64())
        starts = options.offsets.slice(0, len(options))
        text = options.values.take(pc.add(starts, index))
        text = pc.utf8_lower(pc.utf8_trim_whitespace(text))
        table = pa.table({"category": mcq["category"], "text": text, "index": index})
        self.mcq_text = _top(table, "category", "text")
        self.mcq_letter = _top(table, "category", "index")

    def binary_answer(self, row: TextRow) -> str:
        value = self.binary.get(row["category"], self.binary_all)
        return "no" if value == 0 else "yes"

    def mcq_answer(self, row: TextRow) -> str:
        text = self.mcq_text.get(row["category"])
        options = [o.strip().lower() for o in row["options"]]
        if text is not None and text in options:
            return LETTERS[options.index(text)]
        letter = self.mcq_letter.get(row["category"])
        return LETTERS[letter] if letter is not None else "A"


def baseline_predictions(
    baseline: Baseline,
    rows: Sequence[TextRow],
    train: pa.Table,
    *,
    seed: int = 0,
    box_format: BoxFormat | None = None,
    image_size: int | None = None,
) -> dict[int, str]:
    """The baseline's answer to every row.

    Args:
        baseline: ``majority``, ``random`` or ``full-image-box`` (see the module docstring).
        rows: The rows to answer (the evaluated split).
        train: The train split's annotations of the same lake (columns
            :data:`TRAIN_COLUMNS`; the statistics, computed with Arrow).
        seed: Seed of ``random``.
        box_format: The format boxes are written in (None: the dataset's ``unit``).
        image_size: The image side in pixels (``pixel`` only).

    Returns:
        ``{ID: answer}`` for every row.

    Raises:
        ConfigError: An unknown baseline, or a bad box format / size.
    """
    if baseline not in BASELINES:
        raise ConfigError(f"baseline {baseline!r} is unknown: use one of {', '.join(BASELINES)}")
    fmt: BoxFormat = box_format or "unit"

    def boxed(box: Box) -> str:
        return format_box(box, fmt, size=image_size)

    majority = _TrainStats(train)
    captions = majority.captions
    rng = np.random.default_rng(seed)
    out: dict[int, str] = {}
    for row in sorted(rows, key=lambda r: r["id"]):
        kind = row["type"]
        if baseline == "random":
            if kind == "binary":
                answer = ("yes", "no")[int(rng.integers(2))]
            elif kind == "mcq":
                answer = LETTERS[int(rng.integers(max(1, len(row["options"]))))]
            elif kind == BOX_TYPE:
                x1, x2 = sorted(float(v) for v in rng.random(2))
                y1, y2 = sorted(float(v) for v in rng.random(2))
                answer = boxed((x1, y1, x2, y2))
            else:
                answer = captions[int(rng.integers(len(captions)))] if captions else ""
        elif kind == "binary":
            answer = majority.binary_answer(row)
        elif kind == "mcq":
            answer = majority.mcq_answer(row)
        elif kind == BOX_TYPE:
            full = baseline == "full-image-box"
            answer = boxed(FULL_IMAGE if full else majority.box.get(row["category"], FULL_IMAGE))
        else:
            answer = majority.caption
        out[row["id"]] = answer
    return out


__all__ = ["BASELINES", "FULL_IMAGE", "Baseline", "baseline_predictions"]

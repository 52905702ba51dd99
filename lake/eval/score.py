"""Scoring predictions against text rows: every metric of the bench, overall and per group.

:func:`score_rows` is the pure core of :func:`lake.eval.evaluate` (rows and predictions in,
scores out, no lake): binary and mcq accuracy overall, per type and per category; referring
expressions' mIoU and ``acc@t`` overall and per category; caption metrics (through
:mod:`lake.eval.captions`); and the same per value of a grouping column (``--by``). Only the
rows that have a prediction are scored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypedDict

from lake.errors import ConfigError
from lake.eval.answers import parse_binary, parse_choice
from lake.eval.captions import CaptionScore, CaptionScorer
from lake.eval.metrics import AccuracyScore, BoxScore, accuracy_score, box_score
from lake.vlm.boxes import BOX_FORMATS, Box, BoxFormat, iou, parse_any_box, parse_box_as
from lake.vlm.rows import TextRow

#: The question types scored by accuracy.
QA_TYPES: Final = ("binary", "mcq")
#: The type of referring-expression rows and of caption rows.
BOX_TYPE: Final = "bounding box"
CAPTION_TYPE: Final = "captioning"


class QAScore(TypedDict):
    """Binary and mcq accuracy.

    Attributes:
        overall: Over every binary and mcq row.
        by_type: ``{"binary": ..., "mcq": ...}``.
        by_category: ``{type: {category: ...}}`` (categories repeat across types, e.g.
            ``presence``, so they are kept apart per type).
    """

    overall: AccuracyScore
    by_type: dict[str, AccuracyScore]
    by_category: dict[str, dict[str, AccuracyScore]]


class RefScore(TypedDict):
    """Referring expressions: overall and per category (``reference``, ``point``)."""

    overall: BoxScore
    by_category: dict[str, BoxScore]


class Scores(TypedDict):
    """Every metric over one set of rows.

    Attributes:
        rows: Rows scored (those with a prediction).
        qa: Binary and mcq accuracy.
        refexp: Referring expressions.
        captions: Caption metrics (None when not computed: ``captions=False``).
    """

    rows: int
    qa: QAScore
    refexp: RefScore
    captions: CaptionScore | None


class Outcome(TypedDict):
    """How one row was scored (for the per-row output and the groups).

    Attributes:
        id: The row's ID.
        type: The row's type.
        category: The row's category.
        parsed: Whether the prediction could be read (always True for captions).
        correct: Binary/mcq: right or wrong; None for other types.
        iou: Bounding box: the IoU (0 when unparsed); None for other types.
    """

    id: int
    type: str
    category: str
    parsed: bool
    correct: bool | None
    iou: float | None


def box_parser(box_format: BoxFormat | None, image_size: int | None) -> Callable[[str], Box | None]:
    """The function that reads a predicted box: one format, or any format when None.

    Raises:
        ConfigError: An unknown format, ``pixel`` without ``image_size``, or a bad size.
    """
    if image_size is not None and (
        isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
    ):
        raise ConfigError(f"image_size {image_size!r}: must be an int >= 1 (the image side)")
    if box_format is None:
        return lambda text: parse_any_box(text, size=image_size)
    if box_format not in BOX_FORMATS:
        raise ConfigError(
            f"box format {box_format!r} is unknown: use one of {', '.join(BOX_FORMATS)}"
        )
    if box_format == "pixel" and image_size is None:
        raise ConfigError(
            "box format 'pixel' needs the side in pixels of the images the model saw: "
            "--image-size N (image_size=N)"
        )
    return lambda text: parse_box_as(text, box_format, size=image_size)


def outcome(row: TextRow, prediction: str, read_box: Callable[[str], Box | None]) -> Outcome:
    """Score one row's prediction (captions are scored as a set, so only ``parsed`` here)."""
    out: Outcome = {
        "id": row["id"],
        "type": row["type"],
        "category": row["category"],
        "parsed": True,
        "correct": None,
        "iou": None,
    }
    if row["type"] == "binary":
        said = parse_binary(prediction)
        out["parsed"] = said is not None
        out["correct"] = said is not None and int(said) == row["answer_bool"]
    elif row["type"] == "mcq":
        chosen = parse_choice(prediction, row["options"])
        out["parsed"] = chosen is not None
        out["correct"] = chosen is not None and chosen == row["answer_index"]
    elif row["type"] == BOX_TYPE:
        box = read_box(prediction)
        out["parsed"] = box is not None
        truth = row["box"]
        out["iou"] = iou(box, truth) if box is not None and truth is not None else 0.0
    return out


def _accuracy(outcomes: Sequence[Outcome]) -> AccuracyScore:
    return accuracy_score(
        [bool(o["correct"]) for o in outcomes], unparsed=sum(not o["parsed"] for o in outcomes)
    )


def _boxes(outcomes: Sequence[Outcome]) -> BoxScore:
    return box_score(
        [float(o["iou"] or 0.0) for o in outcomes], unparsed=sum(not o["parsed"] for o in outcomes)
    )


def _by(outcomes: Sequence[Outcome], key: Callable[[Outcome], str]) -> dict[str, list[Outcome]]:
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(key(o), []).append(o)
    return dict(sorted(groups.items()))


def _type(o: Outcome) -> str:
    return o["type"]


def _category(o: Outcome) -> str:
    return o["category"]


class _Captions:
    """The tokenised references and candidates of the scored caption rows (tokenised once)."""

    def __init__(
        self, rows: Sequence[TextRow], predictions: Mapping[int, str], enabled: bool
    ) -> None:
        self.enabled = enabled
        self.scorer = CaptionScorer() if enabled and rows else None
        self.gts: dict[int, list[str]] = {}
        self.res: dict[int, list[str]] = {}
        if self.scorer is not None:
            self.gts = self.scorer.tokenize({r["id"]: [r["output"]] for r in rows})
            self.res = self.scorer.tokenize({r["id"]: [predictions[r["id"]]] for r in rows})

    def score(self, ids: set[int] | None = None) -> CaptionScore | None:
        """The metrics over the captions of ``ids`` (None: all of them)."""
        if not self.enabled:
            return None
        keys = [k for k in self.gts if ids is None or k in ids]
        if self.scorer is None or not keys:
            return {"n": 0, "scores": {}}
        return self.scorer.score_tokenized(
            {k: self.gts[k] for k in keys}, {k: self.res[k] for k in keys}
        )

    def close(self) -> None:
        if self.scorer is not None:
            self.scorer.close()


def aggregate(outcomes: Sequence[Outcome], captions: CaptionScore | None = None) -> Scores:
    """The scores of a set of per-row outcomes (``captions``: their caption metrics, if any)."""
    qa = [o for o in outcomes if o["type"] in QA_TYPES]
    boxes = [o for o in outcomes if o["type"] == BOX_TYPE]
    return {
        "rows": len(outcomes),
        "qa": {
            "overall": _accuracy(qa),
            "by_type": {t: _accuracy(v) for t, v in _by(qa, _type).items()},
            "by_category": {
                t: {c: _accuracy(w) for c, w in _by(v, _category).items()}
                for t, v in _by(qa, _type).items()
            },
        },
        "refexp": {
            "overall": _boxes(boxes),
            "by_category": {c: _boxes(v) for c, v in _by(boxes, _category).items()},
        },
        "captions": captions,
    }


def score_rows(
    rows: Sequence[TextRow],
    predictions: Mapping[int, str],
    *,
    box_format: BoxFormat | None = None,
    image_size: int | None = None,
    groups: Mapping[int, str] | None = None,
    captions: bool = True,
) -> tuple[Scores, dict[str, Scores], list[Outcome]]:
    """Score the rows that have a prediction.

    The captions are PTB-tokenised once; each group's caption metrics are then computed over
    that group's captions alone (so CIDEr's document frequencies come from the group's
    references, as pycocoevalcap run on that group would take them).

    Args:
        rows: The split's rows (:class:`~lake.vlm.rows.TextRow`).
        predictions: ``{ID: the model's answer}``; rows without one are not scored.
        box_format: The format of predicted boxes (None: any format, see
            :func:`~lake.vlm.boxes.parse_any_box`).
        image_size: Side in pixels of the images the model saw (needed for ``pixel``).
        groups: ``{ID: group value}`` to also score each group apart (``--by``).
        captions: Compute the caption metrics (Java; False leaves ``captions`` None).

    Returns:
        The overall scores, the scores per group value (empty without ``groups``) and the
        per-row outcomes.

    Raises:
        ConfigError: A bad ``box_format`` / ``image_size``, or missing caption metrics.
    """
    read_box = box_parser(box_format, image_size)
    scored = [r for r in rows if r["id"] in predictions]
    outcomes = [outcome(r, predictions[r["id"]], read_box) for r in scored]
    caps = _Captions([r for r in scored if r["type"] == CAPTION_TYPE], predictions, captions)
    try:
        overall = aggregate(outcomes, caps.score())
        per_group: dict[str, Scores] = {}
        for value in sorted(set((groups or {}).values())):
            members = {i for i, g in (groups or {}).items() if g == value}
            part = [o for o in outcomes if o["id"] in members]
            per_group[value] = aggregate(part, caps.score(members))
    finally:
        caps.close()
    return overall, per_group, outcomes


__all__ = [
    "BOX_TYPE",
    "CAPTION_TYPE",
    "QA_TYPES",
    "Outcome",
    "QAScore",
    "RefScore",
    "Scores",
    "aggregate",
    "box_parser",
    "outcome",
    "score_rows",
]

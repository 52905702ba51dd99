"""Accuracy of answers and the overlap of boxes, as the bench scores them.

* Accuracy: correct / scored; an unparsed answer (see :mod:`lake.eval.answers`) is scored and
  wrong. No rows: the accuracy is None (not 0), so an empty block cannot pass for a bad model.
* Boxes: the intersection over union of the predicted and the reference box (both
  ``(x1, y1, x2, y2)`` in 0..1, :func:`lake.vlm.boxes.iou`); an answer with no readable box has
  IoU 0. ``miou`` is the mean IoU; ``acc@t`` the share of rows with IoU >= t for t in
  :data:`IOU_THRESHOLDS` (>=, so a perfect box counts at every threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypedDict

#: The IoU thresholds of ``acc@t`` (the keys read ``acc@0.25`` ...).
IOU_THRESHOLDS: Final = (0.25, 0.5, 0.75, 0.9)


class AccuracyScore(TypedDict):
    """Accuracy over a set of binary or mcq rows.

    Attributes:
        n: Rows scored.
        correct: Rows answered correctly.
        unparsed: Rows whose answer could not be read (counted wrong).
        accuracy: ``correct / n`` (None when ``n`` is 0).
    """

    n: int
    correct: int
    unparsed: int
    accuracy: float | None


class BoxScore(TypedDict):
    """Referring-expression scores over a set of bounding-box rows.

    Attributes:
        n: Rows scored.
        unparsed: Rows whose answer held no readable box (IoU 0).
        miou: Mean IoU (None when ``n`` is 0).
        acc: ``{"0.25": share of rows with IoU >= 0.25, ...}`` (None values when ``n`` is 0).
    """

    n: int
    unparsed: int
    miou: float | None
    acc: dict[str, float | None]


def accuracy_score(correct: Sequence[bool], unparsed: int = 0) -> AccuracyScore:
    """Accuracy of a list of right/wrong outcomes.

    Example:
        >>> accuracy_score([True, False, True, True], unparsed=1)
        {'n': 4, 'correct': 3, 'unparsed': 1, 'accuracy': 0.75}
    """
    n, right = len(correct), sum(bool(c) for c in correct)
    return {"n": n, "correct": right, "unparsed": unparsed, "accuracy": right / n if n else None}


def box_score(ious: Sequence[float], unparsed: int = 0) -> BoxScore:
    """The mIoU and ``acc@t`` of a list of per-row IoUs (unparsed rows included as 0).

    Example:
        >>> box_score([1.0, 0.5, 0.0])["acc"]["0.5"]
        0.6666666666666666
    """
    n = len(ious)
    acc: dict[str, float | None] = {
        str(t): (sum(v >= t for v in ious) / n if n else None) for t in IOU_THRESHOLDS
    }
    return {"n": n, "unparsed": unparsed, "miou": sum(ious) / n if n else None, "acc": acc}


__all__ = ["IOU_THRESHOLDS", "AccuracyScore", "BoxScore", "accuracy_score", "box_score"]

"""A model's predictions: one JSON object per line, ``{"ID": int, "prediction": str}``.

``ID`` is the BigEarthNet.txt row ID (the ``ID`` column of the lake's ``annotations``); the
``prediction`` is the model's raw answer (parsed tolerantly by :mod:`lake.eval.answers` and
:mod:`lake.vlm.boxes`). Other keys are allowed and ignored; blank lines are skipped.

Every problem is an error that names the file and the line: a line that is not JSON or not an
object, a missing ``ID`` or ``prediction``, an ``ID`` that is not an integer (``true`` and
``1.0`` are refused too), a ``prediction`` that is not a string, and an ``ID`` given twice
(both lines named). Whether the IDs belong to the split is checked against the lake by
:func:`check_ids`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypedDict

from lake.errors import ConfigError

#: How many IDs an error message lists before it says "and N more".
SHOWN_IDS = 5


class Prediction(TypedDict):
    """One line of a predictions file."""

    ID: int
    prediction: str


def _shown(ids: Iterable[int]) -> str:
    ids = sorted(ids)
    head = ", ".join(str(i) for i in ids[:SHOWN_IDS])
    return head + (f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")


def parse_prediction(obj: object, where: str) -> Prediction:
    """Check one decoded line; ``where`` (``file:line``) prefixes the error.

    Raises:
        ConfigError: Not an object, a missing key, a non-integer ID or a non-string prediction.
    """
    if not isinstance(obj, dict):
        raise ConfigError(
            f'{where}: expected a JSON object {{"ID": int, "prediction": str}}, '
            f"got {type(obj).__name__}"
        )
    missing = [k for k in ("ID", "prediction") if k not in obj]
    if missing:
        raise ConfigError(
            f"{where}: missing key {' and '.join(repr(k) for k in missing)}; each line needs "
            '{"ID": int, "prediction": str}'
        )
    ident, text = obj["ID"], obj["prediction"]
    if isinstance(ident, bool) or not isinstance(ident, int):
        raise ConfigError(
            f"{where}: ID {ident!r} is not an integer (use the row's ID from the annotations)"
        )
    if not isinstance(text, str):
        raise ConfigError(
            f"{where}: prediction of ID {ident} is {type(text).__name__} {text!r}, not a string "
            "(write the model's answer as text, boxes too)"
        )
    return {"ID": ident, "prediction": text}


def read_predictions(path: str | Path) -> dict[int, str]:
    """Read and check a predictions JSONL file.

    Args:
        path: The file (UTF-8, one JSON object per line).

    Returns:
        ``{ID: prediction}`` in file order.

    Raises:
        ConfigError: The file is missing or unreadable, or a line is bad or repeats an ID (the
            message names the file and the line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"predictions file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"predictions file {path} cannot be read: {exc}") from None
    out: dict[int, str] = {}
    lines: dict[int, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{where}: not valid JSON ({exc.msg} at column {exc.colno})"
            ) from None
        pred = parse_prediction(obj, where)
        if pred["ID"] in out:
            raise ConfigError(
                f"{where}: ID {pred['ID']} is predicted twice (first on line "
                f"{lines[pred['ID']]}); keep one prediction per ID"
            )
        out[pred["ID"]] = pred["prediction"]
        lines[pred["ID"]] = number
    return out


def as_predictions(predictions: Mapping[int, str] | Iterable[Prediction]) -> dict[int, str]:
    """Predictions given in Python (``{ID: text}`` or ``[{"ID", "prediction"}, ...]``), checked.

    Raises:
        ConfigError: A bad entry or a repeated ID (named by its position).
    """
    if isinstance(predictions, Mapping):
        items: Iterable[object] = ({"ID": k, "prediction": v} for k, v in predictions.items())
    else:
        items = predictions
    out: dict[int, str] = {}
    for i, obj in enumerate(items):
        pred = parse_prediction(obj, f"predictions[{i}]")
        if pred["ID"] in out:
            raise ConfigError(f"predictions[{i}]: ID {pred['ID']} is predicted twice")
        out[pred["ID"]] = pred["prediction"]
    return out


def check_ids(
    predictions: Mapping[int, str],
    expected: Iterable[int],
    split: str,
    other_splits: Mapping[int, str],
    *,
    allow_missing: bool = False,
    source: str = "predictions",
) -> list[int]:
    """Check that the predictions cover the split's rows and nothing else.

    Args:
        predictions: ``{ID: prediction}``.
        expected: The IDs of the split's rows.
        split: The split's name (for the messages).
        other_splits: ``{ID: split}`` of the lake's rows in other splits (to say where a stray
            ID belongs).
        allow_missing: Accept predictions that leave some of the split's rows out.
        source: What the predictions are (the file), for the messages.

    Returns:
        The IDs of the split without a prediction, sorted (empty unless ``allow_missing``).

    Raises:
        ConfigError: An ID not in the split (named, with its split when it has one), or rows of
            the split without a prediction when ``allow_missing`` is False.
    """
    wanted = set(expected)
    unknown = [i for i in predictions if i not in wanted]
    if unknown:
        elsewhere = sorted(i for i in unknown if i in other_splits)
        detail = ""
        if elsewhere:
            first = elsewhere[0]
            detail = f" (ID {first} is a row of split {other_splits[first]!r})"
        raise ConfigError(
            f"{source}: {len(unknown)} ID(s) are not rows of split {split!r}: "
            f"{_shown(unknown)}{detail}; predict only the split's rows"
        )
    missing = sorted(wanted.difference(predictions))
    if missing and not allow_missing:
        raise ConfigError(
            f"{source}: {len(missing)} of the {len(wanted)} rows of split {split!r} have no "
            f"prediction: {_shown(missing)}; predict every row, or pass --allow-missing "
            "(allow_missing=True) to score only the predicted rows"
        )
    return missing


__all__ = ["Prediction", "as_predictions", "check_ids", "parse_prediction", "read_predictions"]

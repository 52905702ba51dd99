"""``lake eval``: score predictions (or a baseline) on the bench split, as the paper scores it.

Exit status: 0 success; 1 an error (bad predictions named by file and line, IDs not in the split,
missing rows without --allow-missing, an unknown release, the caption metrics not installed);
2 bad usage (PREDICTIONS and --baseline together, or neither).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, cast

import typer

from lake.vlm.boxes import BOX_FORMATS
from pipelines.cli.common import (
    EndpointOpt,
    JsonOpt,
    KeyOpt,
    LakeOpt,
    RegionOpt,
    ReleaseOpt,
    SecretOpt,
    emit,
    errors,
    spec_of,
)

if TYPE_CHECKING:
    from lake.eval.baselines import Baseline
    from lake.eval.evaluate import GroupBy
    from lake.vlm.boxes import BoxFormat


def eval_command(
    predictions: Annotated[
        Optional[Path],  # noqa: UP045 (typer needs Optional on 3.11)
        typer.Argument(
            help='JSONL file, one {"ID": int, "prediction": str} per line (not with --baseline).',
            show_default=False,
        ),
    ] = None,
    lake: LakeOpt = None,
    split: Annotated[
        str, typer.Option("--split", help="Split to score (bench: the verified one).")
    ] = "bench",
    by: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--by", help="Also score per group: country | season | climate_zone."),
    ] = None,
    allow_missing: Annotated[
        bool,
        typer.Option(
            "--allow-missing", help="Score only the predicted rows (the report counts the rest)."
        ),
    ] = False,
    baseline: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--baseline",
            help="Score a floor instead of PREDICTIONS: majority | random | full-image-box "
            "(statistics from the train split; see docs/eval.md).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of --baseline random.")] = 0,
    box_format: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--box-format",
            help=f"Format of the predicted boxes: {' | '.join(BOX_FORMATS)} (default: any).",
        ),
    ] = None,
    image_size: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--image-size", min=1, help="Side in pixels of the images the model saw (for pixel)."
        ),
    ] = None,
    no_captions: Annotated[
        bool,
        typer.Option("--no-captions", help="Skip the caption metrics (they start Java)."),
    ] = False,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Folder for report.json, report.md and the PNG plots."),
    ] = None,
    release: ReleaseOpt = None,
    endpoint_url: EndpointOpt = None,
    key: KeyOpt = None,
    secret: SecretOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score a model's predictions on the bench split: accuracy, IoU and caption metrics.

    lake eval predictions.jsonl --lake s3://bucket/lake --out eval-report

    lake eval --baseline majority --lake s3://bucket/lake --by country --json
    """
    if predictions is not None and baseline is not None:
        typer.echo(
            f"error: give PREDICTIONS or --baseline {baseline}, not both "
            "(a baseline answers every row itself)",
            err=True,
        )
        raise typer.Exit(2)
    if predictions is None and baseline is None:
        typer.echo(
            'error: give PREDICTIONS (a JSONL file of {"ID": int, "prediction": str}) or '
            "--baseline majority|random|full-image-box",
            err=True,
        )
        raise typer.Exit(2)
    from lake.eval import evaluate, summary, write_report

    spec = spec_of(lake, endpoint_url, key, secret, region)
    with errors(spec):
        report = evaluate(
            predictions,
            spec,
            split=split,
            release=release,
            by=cast("GroupBy | None", by),
            allow_missing=allow_missing,
            box_format=cast("BoxFormat | None", box_format),
            image_size=image_size,
            baseline=cast("Baseline | None", baseline),
            seed=seed,
            captions=not no_captions,
        )
        written = write_report(report, out) if out is not None else []
    if as_json:
        emit(dict(report), True, "")
        return
    typer.echo(summary(report))
    if written:
        typer.echo(f"report written to {out}: " + ", ".join(p.name for p in written))

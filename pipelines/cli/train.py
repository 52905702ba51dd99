"""``lake train``: a small model trained on the lake's stream (the loader, end to end)."""

from __future__ import annotations

from typing import Annotated

import typer

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
    show_progress,
    spec_of,
)


def train(
    lake: LakeOpt = None,
    task: Annotated[str, typer.Option("--task", help="labels (multi-label classification)")] = (
        "labels"
    ),
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs over train.")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Batch size.")] = 64,
    workers: Annotated[int, typer.Option("--workers", min=0, help="DataLoader workers.")] = 2,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N]")] = "auto",
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 3e-3,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the model and the order.")] = 0,
    release: ReleaseOpt = None,
    endpoint_url: EndpointOpt = None,
    key: KeyOpt = None,
    secret: SecretOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a small multi-label CNN on the lake's stream; report validation mAP vs baseline."""
    from pipelines.showcase.train import train as run_train

    spec = spec_of(lake, endpoint_url, key, secret, region)
    with errors(spec):
        rep = run_train(
            spec,
            task=task,
            epochs=epochs,
            batch_size=batch_size,
            workers=workers,
            device=device,
            lr=lr,
            seed=seed,
            release=release,
            progress=show_progress(as_json),
            log=(lambda _: None) if as_json else typer.echo,
        )
    if as_json:
        emit(rep.to_dict(), True, "")

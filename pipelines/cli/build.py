"""``lake synth`` and ``lake ingest``: a source, and a release of the lake built from it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.common import (
    EXIT_QUARANTINED,
    ClusterOpt,
    EndpointOpt,
    GatewayPasswordOpt,
    JsonOpt,
    KeyOpt,
    LakeOpt,
    RegionOpt,
    SecretOpt,
    StagingDirOpt,
    WorkerCoresOpt,
    WorkerMemoryOpt,
    WorkersOpt,
    cluster_spec,
    emit,
    errors,
    report_location,
    show_progress,
    spec_of,
)


def synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to create (must be new or empty).")],
    patches: Annotated[
        int,
        typer.Option("--patches", min=1, help="Number of pairs to draw from the real metadata."),
    ] = 1000,
    fmt: Annotated[str, typer.Option("--format", help="folders | tar.zst | lmdb")] = "folders",
    seed: Annotated[
        int, typer.Option("--seed", help="Seed: the same seed gives the same files.")
    ] = 0,
    text: Annotated[
        bool, typer.Option("--text/--no-text", help="Also write BigEarthNet.txt.parquet.")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Write a synthetic BigEarthNet source in the official layout and formats."""
    from pipelines.synth import synthesize

    with errors(None, ValueError, OSError):
        rep = synthesize(
            patches, out, fmt=fmt, seed=seed, progress=show_progress(as_json), text=text
        )
    d = {
        k: getattr(rep, k)
        for k in ("n_patches", "n_text_rows", "bytes_written", "seconds", "out", "fmt")
    }
    emit(
        d,
        as_json,
        f"wrote {rep.n_patches} pairs and {rep.n_text_rows} text rows "
        f"({rep.bytes_written / 1e6:.1f} MB, {rep.fmt}) to {rep.out} in {rep.seconds:.1f} s",
    )


def ingest(
    source: Annotated[
        str,
        typer.Argument(
            help="Source folder: extracted folders, .tar.zst archives or an LMDB; or the URL "
            "(s3://bucket/prefix, read with the lake's S3 options) of folders or archives."
        ),
    ],
    lake: LakeOpt = None,
    release: Annotated[str, typer.Option("--release", help="Name of the release to build.")] = "v1",
    kind: Annotated[
        str | None, typer.Option("--kind", help="folders | tar.zst | lmdb (default: detected)")
    ] = None,
    metadata: Annotated[
        Path | None,
        typer.Option("--metadata", help="The metadata parquet (default: SOURCE/metadata.parquet)."),
    ] = None,
    staging_dir: StagingDirOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the shuffled write order.")] = 0,
    samples_per_shard: Annotated[
        int, typer.Option("--samples-per-shard", min=1, help="Pairs per shard.")
    ] = 256,
    scan_batch: Annotated[
        int, typer.Option("--scan-batch", min=1, help="Pairs per scan task (resume granularity).")
    ] = 256,
    cluster: ClusterOpt = "local",
    workers: WorkersOpt = None,
    worker_cores: WorkerCoresOpt = None,
    worker_memory: WorkerMemoryOpt = None,
    gateway_password: GatewayPasswordOpt = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Discard an unfinished ingest of this release.")
    ] = False,
    codecs: Annotated[
        str,
        typer.Option(
            "--codecs",
            help="pcodec (the default, smallest; readers need `pip install pcodec`) | portable "
            "(Zarr v3 core codecs only: GDAL, tensorstore and JavaScript zarr readers).",
        ),
    ] = "pcodec",
    endpoint_url: EndpointOpt = None,
    key: KeyOpt = None,
    secret: SecretOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest a source into a new release of the lake (resumable; exit 3 if input was quarantined).

    SOURCE is a folder with the official extracted folders, the official .tar.zst archives, or the
    reference encoder's LMDB, next to metadata.parquet (and optionally BigEarthNet.txt.parquet).
    """
    from lake.codecs import check_codec_set
    from lake.layout import quarantine_path
    from pipelines.jobs.ingest import IngestOptions
    from pipelines.jobs.ingest import ingest as run_ingest
    from pipelines.sources.open import open_source

    spec = spec_of(lake, endpoint_url, key, secret, region)
    with errors(spec):
        codec_set = check_codec_set(codecs)
        on = cluster_spec(cluster, workers, worker_cores, worker_memory, gateway_password)
        src = open_source(
            source, kind=kind, metadata_path=metadata, staging_dir=staging_dir, store=spec
        )
        opts = IngestOptions(
            release=release,
            seed=seed,
            samples_per_shard=samples_per_shard,
            scan_batch=scan_batch,
            restart=restart,
            progress=show_progress(as_json),
            codecs=codec_set,
        )
        rep = run_ingest(src, spec, opts, on)
    report = report_location(spec, quarantine_path(rep.release)) if rep.n_quarantined else None
    d = {
        **rep.to_dict(),
        "lake": spec.url,
        "source": str(source),
        "kind": src.kind,
        "quarantine_report": report,
    }
    state = "already published" if rep.already_published else f"in {rep.seconds:.1f} s"
    text = (
        f"release {rep.release} of {spec.url}: {rep.patches} pairs, "
        f"{rep.annotations} annotation rows, {rep.bytes / 1e6:.1f} MB, {state}"
        + (f" ({rep.patches / rep.seconds:.1f} pairs/s)" if rep.seconds else "")
    )
    if report:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(rep.quarantined.items()))
        text += f"\nquarantined {rep.n_quarantined} records ({reasons}); see {report}"
    emit(d, as_json, text)
    if rep.n_quarantined:
        raise typer.Exit(EXIT_QUARANTINED)

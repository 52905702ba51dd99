"""The ``lake pipeline`` commands: ingest, stats, export and verify, on any ``--cluster``.

``pipelines.cli`` registers the group (``app.add_typer(pipeline_app, name="pipeline")``) and
adds ``pipeline ingest``, which is the very ``lake ingest`` command of :mod:`pipelines.cli.build`.

Exit status: 0 success; 1 an error, or ``verify`` found missing or corrupt objects (the report
names each); 2 bad usage; 3 ingest quarantined some input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from lake.errors import LakeError
from pipelines.cli.common import (
    ClusterOpt,
    EndpointOpt,
    GatewayPasswordOpt,
    JsonOpt,
    KeyOpt,
    LakeOpt,
    RegionOpt,
    ReleaseOpt,
    SecretOpt,
    WorkerCoresOpt,
    WorkerMemoryOpt,
    WorkersOpt,
    cluster_spec,
    emit,
    errors,
    fail,
    show_progress,
    spec_of,
)

if TYPE_CHECKING:
    from lake.config import StoreSpec
    from pipelines.cluster.runner import Runner

pipeline_app: typer.Typer = typer.Typer(
    help="Jobs that build and maintain the lake, on a Dask cluster (--cluster).",
    no_args_is_help=True,
)


def _announce(as_json: bool) -> Any:
    """A callback printing the dashboard link (to stderr, so --json output stays clean)."""

    def on_start(runner: Runner) -> None:
        link = runner.dashboard
        if link and runner.cluster.kind != "gateway":  # a Gateway cluster announces itself
            typer.echo(f"dashboard: {link}", err=True)

    return on_start


def _run(
    spec: StoreSpec,
    fn: Any,
    *args: Any,
    on: tuple[str, int | None, int | None, str | None, str | None],
    as_json: bool,
    **kwargs: Any,
) -> Any:
    """Run a job on the cluster of the shared options ``on``; errors become one line, exit 1.

    The job gets ``cluster``, ``progress`` and ``on_start`` (the dashboard link) besides
    ``args`` and ``kwargs``.
    """
    with errors(spec):
        cluster = cluster_spec(*on)
        return fn(
            *args,
            cluster=cluster,
            progress=show_progress(as_json),
            on_start=_announce(as_json),
            **kwargs,
        )


@pipeline_app.command("stats")
def stats(
    lake: LakeOpt = None,
    release: ReleaseOpt = None,
    cluster: ClusterOpt = "local",
    workers: WorkersOpt = None,
    worker_cores: WorkerCoresOpt = None,
    worker_memory: WorkerMemoryOpt = None,
    gateway_password: GatewayPasswordOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Recompute even if the release has statistics.")
    ] = False,
    endpoint_url: EndpointOpt = None,
    key: KeyOpt = None,
    secret: SecretOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per-band mean, std, min, max and histograms, overall and per split, season and country.

    Writes stats/<release>/band_stats.parquet, puts the overall statistics into the STAC
    collection's summaries and adds both to the release manifest. Resumable; a release that has
    them already is left as it is.
    """
    from pipelines.jobs.stats import compute_stats

    spec = spec_of(lake, endpoint_url, key, secret, region)
    rep = _run(
        spec,
        compute_stats,
        spec,
        release,
        force=force,
        on=(cluster, workers, worker_cores, worker_memory, gateway_password),
        as_json=as_json,
    )
    d = rep.to_dict()
    lines = [
        f"release {rep.release}: {rep.patches} pairs, {rep.shards} shards"
        + (" (already computed)" if rep.already_done else f" in {rep.seconds:.1f} s")
        + (f", {rep.resumed} reused" if rep.resumed else ""),
        f"{'band':<5} {'mean':>10} {'std':>10} {'min':>10} {'max':>10}",
    ]
    for r in d["overall"]:
        lines.append(
            f"{r['band']:<5} {r['mean']:>10.3f} {r['std']:>10.3f} {r['min']:>10.2f} "
            f"{r['max']:>10.2f}"
        )
    lines.append(f"written to {rep.path}")
    emit(d, as_json, "\n".join(lines))


@pipeline_app.command("verify")
def verify(
    lake: LakeOpt = None,
    release: ReleaseOpt = None,
    cluster: ClusterOpt = "local",
    workers: WorkersOpt = None,
    worker_cores: WorkerCoresOpt = None,
    worker_memory: WorkerMemoryOpt = None,
    gateway_password: GatewayPasswordOpt = None,
    endpoint_url: EndpointOpt = None,
    key: KeyOpt = None,
    secret: SecretOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-read every object of a release; check sha256, sizes and counts (exit 1 if any is bad).

    The report names each missing, truncated or corrupt object.
    """
    from pipelines.jobs.verify import verify_release

    spec = spec_of(lake, endpoint_url, key, secret, region)
    rep = _run(
        spec,
        verify_release,
        spec,
        release,
        on=(cluster, workers, worker_cores, worker_memory, gateway_password),
        as_json=as_json,
    )
    emit(rep.to_dict(), as_json, rep.text())
    if not rep.ok:
        raise typer.Exit(1)


@pipeline_app.command("export")
def export(
    target: Annotated[
        str, typer.Argument(help="Where to write: a new or empty folder or s3://bucket/prefix.")
    ],
    sql: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--sql",
            help="A read-only query returning patch_id (see `lake sql`); without it or a "
            "search, every pair (of --split).",
        ),
    ] = None,
    bbox: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--bbox", help="STAC search: minx,miny,maxx,maxy (WGS 84)."),
    ] = None,
    datetime: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--datetime", help="STAC search: an instant or interval a/b."),
    ] = None,
    filter: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--filter", help="STAC search: a CQL2 text filter."),
    ] = None,
    ids: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--ids", help="STAC search: comma-separated patch ids."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="lake | webdataset | llava | hf")] = "lake",
    per_shard: Annotated[
        int,
        typer.Option(
            "--per-shard", min=1, help="Pairs per shard (Zarr shard, tar, llava/hf part)."
        ),
    ] = 256,
    split: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--split",
            help="Only this split's pairs (bench: pairs with bench rows) and text rows: "
            "train | validation | test | bench.",
        ),
    ] = None,
    tasks: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--tasks", help="Text tasks to export, comma-separated: caption,vqa,refexp (all)."
        ),
    ] = None,
    box_format: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--box-format",
            help="Boxes and points in the text: unit (0..1, as the dataset) | pixel (pixels of "
            "the exported image) | qwen (bbox_2d, 0..1000) | internvl (0..1000) | geochat "
            "(0..100).",
        ),
    ] = None,
    per: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--per", help="llava/hf: one conversation or table row per pair | row."),
    ] = None,
    image_size: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--image-size", help="llava/hf: side of the RGB images in pixels (336)."),
    ] = None,
    image_format: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--image-format", help="llava/hf: png | jpeg (png)."),
    ] = None,
    with_arrays: Annotated[
        bool,
        typer.Option(
            "--with-arrays", help="llava: also the multispectral arrays as .npy (native size)."
        ),
    ] = False,
    target_release: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--target-release", help="Release name in the new lake (default: same)."),
    ] = None,
    lake: LakeOpt = None,
    release: ReleaseOpt = None,
    cluster: ClusterOpt = "local",
    workers: WorkersOpt = None,
    worker_cores: WorkerCoresOpt = None,
    worker_memory: WorkerMemoryOpt = None,
    gateway_password: GatewayPasswordOpt = None,
    endpoint_url: EndpointOpt = None,
    key: KeyOpt = None,
    secret: SecretOpt = None,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export pairs (--sql, a STAC search, or all) as lake, webdataset, llava or hf.

    lake: a new lake; webdataset: tar shards (arrays, metadata, text rows); llava: LLaVA
    conversations and RGB images; hf: Parquet with an image column for Hugging Face datasets.
    The target (same S3 endpoint and credentials as the lake) must be new or empty; rerunning
    the same export with the same options resumes it.
    """
    from pipelines.jobs.export import export as run_export
    from pipelines.jobs.export_vlm import VlmOptions, parse_tasks

    spec = spec_of(lake, endpoint_url, key, secret, region)
    dest = spec_of(target, endpoint_url, key, secret, region)
    search = {
        k: v
        for k, v in {"bbox": bbox, "datetime": datetime, "filter": filter, "ids": ids}.items()
        if v is not None
    }
    if sql is not None and search:
        raise fail(LakeError("give either --sql or the search options, not both"))
    given: dict[str, Any] = {
        "image_size": image_size,
        "image_format": image_format,
        "box_format": box_format,
        "per": per,
        "with_arrays": with_arrays or None,
    }
    vlm = None
    if tasks is not None or any(v is not None for v in given.values()):
        try:
            chosen = {k: v for k, v in given.items() if v is not None}
            if tasks is not None:
                chosen["tasks"] = parse_tasks(tasks)
            vlm = VlmOptions(**chosen)
        except LakeError as exc:
            raise fail(exc) from None
    rep = _run(
        spec,
        run_export,
        spec,
        dest,
        release=release,
        sql=sql,
        search=search or None,
        fmt=fmt,
        target_release=target_release,
        per_shard=per_shard,
        split=split,
        vlm=vlm,
        on=(cluster, workers, worker_cores, worker_memory, gateway_password),
        as_json=as_json,
    )
    state = "already exported" if rep.already_done else f"in {rep.seconds:.1f} s"
    emit(
        rep.to_dict(),
        as_json,
        f"exported {rep.patches} pairs of release {rep.release} as {rep.format} to {rep.target}: "
        f"{rep.shards} shards, {rep.bytes / 1e6:.1f} MB, {state}"
        + (f", {rep.annotations} text rows" if rep.annotations else ""),
    )

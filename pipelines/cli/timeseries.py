"""``lake pipeline timeseries``: cut the release's patches from new Sentinel-2 scenes.

Registered on the ``pipeline`` group by :mod:`pipelines.cli` (``lake pipeline timeseries``).
Exit status: 0 success; 1 an error (no scene, unknown collection, bad options: one line naming
it); 2 bad usage.
"""

from __future__ import annotations

from typing import Annotated

import typer

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


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``--bbox west,south,east,north`` as four floats."""
    if text is None:
        return None
    try:
        w, s, e, n = (float(v) for v in text.split(","))
    except ValueError:
        raise fail(ValueError(f"--bbox {text!r}: give west,south,east,north in degrees")) from None
    return w, s, e, n


def timeseries(
    stac: Annotated[str, typer.Option("--stac", help="The STAC API of the scenes (its URL).")],
    datetime: Annotated[
        str, typer.Option("--datetime", help="The time range, e.g. 2019-01/2019-12.")
    ],
    lake: LakeOpt = None,
    release: ReleaseOpt = None,
    collection: Annotated[
        str, typer.Option("--collection", help="The scenes' collection.")
    ] = "sentinel-2-l2a",
    part: Annotated[
        str, typer.Option("--part", help="The name of the time-series part of the release.")
    ] = "s2-timeseries",
    ids: Annotated[
        str | None, typer.Option("--ids", help="Patch ids to cut, comma-separated.")
    ] = None,
    sql: Annotated[
        str | None, typer.Option("--sql", help="A query returning the patch_id to cut.")
    ] = None,
    bbox: Annotated[
        str | None,
        typer.Option("--bbox", help="Cut the patches centred in west,south,east,north (WGS 84)."),
    ] = None,
    max_cloud: Annotated[
        float | None, typer.Option("--max-cloud", help="Keep scenes below this cloud %.")
    ] = None,
    composite: Annotated[
        str, typer.Option("--composite", help="none, 10D or month: also a regular time grid.")
    ] = "none",
    batch: Annotated[int, typer.Option("--batch", help="Patches per task.")] = 8,
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
    """Cut the selected patches from the Sentinel-2 L2A scenes of a STAC API, as a release part.

    Searches the scenes with pystac-client (Earth Search and Planetary Computer asset keys),
    cuts each patch at its own grid with stackstac (10/20/60 m, nearest, uint16, nodata 0),
    harmonises baseline 04.00+, measures clouds from SCL and writes
    timeseries/<release>/<part>/ (raw acquisitions, composites with --composite), added to the
    release manifest. Resumable after a kill.
    """
    from pipelines.jobs.timeseries import Selection, TimeSeriesOptions, cut_timeseries
    from pipelines.sources.scenes import SceneSearchError

    spec = spec_of(lake, endpoint_url, key, secret, region)
    selection = Selection(
        ids=tuple(i.strip() for i in ids.split(",") if i.strip()) if ids else (),
        sql=sql,
        bbox=_bbox(bbox),
    )
    opts = TimeSeriesOptions(
        stac=stac,
        collection=collection,
        datetime=datetime,
        part=part,
        max_cloud=max_cloud,
        composite=composite,
        batch=batch,
    )
    with errors(spec, SceneSearchError):
        rep = cut_timeseries(
            spec,
            opts,
            selection,
            release,
            cluster=cluster_spec(cluster, workers, worker_cores, worker_memory, gateway_password),
            progress=show_progress(as_json),
        )
    d = rep.to_dict()
    text = (
        f"release {rep.release}, part {rep.part}: {rep.patches} patches, {rep.scenes} scenes, "
        f"{rep.acquisitions} acquisitions"
        + (" (already cut)" if rep.already_done else f" in {rep.seconds:.1f} s")
        + (f", {rep.resumed} of {rep.tasks} tasks reused" if rep.resumed else "")
    )
    emit(d, as_json, text)

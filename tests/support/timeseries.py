"""A time-series part cut from synthetic scenes, for tests that need one in a lake (the docs)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from lake.config import StoreSpec
from lake.reader import open_lake
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.timeseries import (
    Selection,
    TimeSeriesOptions,
    TimeSeriesReport,
    cut_timeseries,
    patch_bounds,
)
from pipelines.local.stac import StacServer
from pipelines.synth.scenes import scenes_around, seasonal_greenness

#: One scene a month from March to October 2019 (the README's ``--datetime 2019-01/2019-12``).
DATES = [datetime(2019, m, 12, 10, 20, tzinfo=UTC) for m in range(3, 11)]


def publish_series(
    spec: StoreSpec,
    patch_ids: Sequence[str],
    folder: Path,
    *,
    part: str = "s2-2019",
    when: str = "2019-01/2019-12",
    composite: str = "month",
) -> TimeSeriesReport:
    """Cut ``part`` of the current release for ``patch_ids`` from seasonal synthetic scenes.

    The scenes go to ``folder`` (they must stay there: the part's STAC items point at them);
    the API serving them is stopped on return.
    """
    rows = open_lake(spec).current.patches(columns=["patch_id", "tile", "epsg", "transform"])
    by_id = {r["patch_id"]: r for r in rows.to_pylist()}
    picked = [by_id[p] for p in patch_ids]
    scenes = scenes_around(
        [(r["tile"], r["epsg"], patch_bounds(r["transform"])) for r in picked],
        DATES,
        folder,
        greenness=seasonal_greenness,
        margin=120,
    )
    with StacServer(scenes.catalogue) as api:
        return cut_timeseries(
            spec,
            TimeSeriesOptions(api.url, "sentinel-2-l2a", when, part=part, composite=composite),
            Selection(ids=tuple(patch_ids)),
            cluster=ClusterSpec("sync"),
        )

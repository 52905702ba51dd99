"""``lake pipeline timeseries`` throughput: a month of scenes over N patches, and a projection.

Usage: ``python benchmarks/timeseries.py [--patches 24] [--scenes-per-month 6]
[--cluster sync,local,gateway://127.0.0.1:PORT] [--workers 2] [--gateway-password PW]
[--composite month] [--out DIR] [--json-out FILE]`` (``lake gateway serve`` runs a Gateway).

1. A test lake of ``--patches`` pairs (real metadata rows, synthetic pixels;
   :mod:`tests.support.lakes`), all of them selected.
2. **scenes**: for each of ``--scenes-per-month`` dates of June 2019 (a 5-day revisit gives 6),
   one Sentinel-2 L2A-like scene around each patch (:mod:`pipelines.synth.scenes`: COGs on local
   disk, 13 band files, the tile's real UTM grid), served by ``rustac serve`` on loopback. Not
   part of any figure.
3. For each ``--cluster``: :func:`pipelines.jobs.timeseries.cut_timeseries` end to end (search
   with pystac-client, plan, stackstac cuts in tasks, Zarr writes, the table, the manifest) into a
   fresh copy of the lake; reports patches/s, acquisitions (patch x scene) /s and scene items/s.
4. **projection**: all 549,488 pairs over a year (``--acquisitions-per-year``, 73 at a 5-day
   revisit), from the best acquisitions/s per worker of the runs (the cluster runs include their
   start-up, a few seconds, in their time), scaled linearly (it assumes
   the scene store and the lake keep up: on a public catalogue the COG reads over HTTP dominate,
   which this loopback run does not show).

JSON goes to stdout (and ``--json-out``); progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from lake.reader import open_lake  # noqa: E402
from lake.timeseries import TimeSeries  # noqa: E402
from pipelines.cluster.spec import ClusterSpec  # noqa: E402
from pipelines.jobs.timeseries import (  # noqa: E402
    Selection,
    TimeSeriesOptions,
    cut_timeseries,
    patch_bounds,
)
from pipelines.local.stac import StacServer  # noqa: E402
from pipelines.synth.scenes import scenes_around  # noqa: E402
from tests.support.lakes import LakeRecipe, build, copy_lake  # noqa: E402

ALL_PAIRS = 549_488


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patches", type=int, default=24)
    p.add_argument("--scenes-per-month", type=int, default=6)
    p.add_argument("--cluster", default="sync,local")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--gateway-password", default=os.environ.get("LAKE_GATEWAY_PASSWORD"))
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--composite", default="month")
    p.add_argument("--acquisitions-per-year", type=int, default=73)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--json-out", type=Path, default=None)
    a = p.parse_args(argv)
    base = a.out or Path(tempfile.mkdtemp(prefix="bench-ts-"))
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    t0 = time.perf_counter()
    lake = build(
        LakeRecipe(a.patches, 7, per_shard=64, scan_batch=64, text=False), base / "src-lake"
    )
    rows = open_lake(lake.spec).current.patches(columns=["patch_id", "tile", "epsg", "transform"])
    rows_list = rows.to_pylist()
    log(f"lake of {len(rows_list)} pairs in {time.perf_counter() - t0:.1f} s")
    t1 = time.perf_counter()
    dates = [
        datetime(2019, 6, 1, 10, 30, tzinfo=UTC) + timedelta(days=30 * i / a.scenes_per_month)
        for i in range(a.scenes_per_month)
    ]
    scenes = scenes_around(
        [(r["tile"], r["epsg"], patch_bounds(r["transform"])) for r in rows_list],
        dates,
        base / "scenes",
    )
    log(f"{len(scenes.items)} scenes written in {time.perf_counter() - t1:.1f} s")
    ids = tuple(r["patch_id"] for r in rows_list)
    runs: list[dict[str, Any]] = []
    specs = []
    with StacServer(scenes.catalogue) as server:
        for name in a.cluster.split(","):
            spec = copy_lake(lake, base / f"lake-{name.replace('/', '_').replace(':', '_')}")
            workers = None if name in ("sync",) else a.workers
            opts = TimeSeriesOptions(
                server.url,
                "sentinel-2-l2a",
                "2019-06",
                part="bench",
                composite=a.composite,
                batch=a.batch,
            )
            cluster = ClusterSpec(name, workers, password=a.gateway_password)
            rep = cut_timeseries(spec, opts, Selection(ids=ids), cluster=cluster)
            d = rep.to_dict()
            d["cluster"] = name
            d["workers"] = 1 if name == "sync" else a.workers
            d["acquisitions_per_second"] = round(rep.acquisitions / rep.seconds, 2)
            d.pop("objects")
            runs.append(d)
            specs.append(spec)
            log(
                f"{name}: {rep.patches} patches, {rep.acquisitions} acquisitions, "
                f"{rep.scenes} scene items in {rep.seconds:.1f} s"
            )
    # Every cluster must cut the same pixels: compare each run's arrays with the first run's.
    first = TimeSeries.open(specs[0], part="bench")
    rows = range(len(first))
    reference = {g: first.read(rows, g) for g in ("s2_10m", "s2_20m", "s2_60m", "scl")}
    for spec, run in zip(specs[1:], runs[1:], strict=True):
        other = TimeSeries.open(spec, part="bench")
        same = all(
            all(np.array_equal(x, y) for x, y in zip(other.read(rows, g), ref, strict=True))
            for g, ref in reference.items()
        )
        run["same_pixels_as_" + runs[0]["cluster"]] = same
    best = max(runs, key=lambda r: r["acquisitions_per_second"] / r["workers"])
    per_worker = best["acquisitions_per_second"] / best["workers"]
    total = ALL_PAIRS * a.acquisitions_per_year
    projection = {
        "pairs": ALL_PAIRS,
        "acquisitions_per_pair": a.acquisitions_per_year,
        "acquisitions": total,
        "from_run": best["cluster"],
        "acquisitions_per_second_per_worker": round(per_worker, 2),
        "hours_on_1_worker": round(total / per_worker / 3600, 1),
        "hours_on_64_workers": round(total / per_worker / 64 / 3600, 1),
    }
    out = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "patches": a.patches,
        "scenes_per_month": a.scenes_per_month,
        "composite": a.composite,
        "runs": runs,
        "projection": projection,
    }
    text = json.dumps(out, indent=1)
    print(text)
    if a.json_out:
        a.json_out.write_text(text)
    if a.out is None:
        shutil.rmtree(base, ignore_errors=True)
    return out


if __name__ == "__main__":
    main()

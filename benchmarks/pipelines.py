"""Pipeline jobs on a cluster: ingest and stats throughput on 1 and 2 workers, the stats job
against the same statistics written as plain xarray + dask over the Zarr group, and a projection
of the full BigEarthNet v2.0 (549,488 pairs).

Usage: ``python benchmarks/pipelines.py [--pairs 2000] [--workers 1,2] [--cluster local]
[--samples-per-shard 256] [--out DIR] [--keep] [--json-out FILE]``

1. **synth**: :func:`pipelines.synth.synthesize` writes a ``folders`` source of ``--pairs`` pairs
   (once; not part of any figure).
2. For each worker count ``w``:

   * ``--cluster local``: one distributed ``LocalCluster`` (``w`` worker processes with one
     thread each, nannies) is started per ``w`` and every job below connects to its scheduler
     address, so no figure includes cluster start-up (reported on its own). Any other
     ``--cluster`` (``tcp://...``, ``gateway://127.0.0.1:PORT``) is passed to the jobs as it is:
     each job then pays its own connection (and, on a Gateway, cluster creation), and the
     xarray baseline is skipped (it needs a plain scheduler).
   * **ingest**: :func:`pipelines.jobs.ingest.ingest` into a fresh local lake (scan, write,
     tables, catalog, manifest).
   * **stats**: :func:`pipelines.jobs.stats.compute_stats` with ``force=True`` (per-shard
     partials of every band for ``all`` and every split, season and country value, with
     histograms; then the Chan combine, the Parquet table, the collection and the manifest
     amendment).
   * **xarray**: the same statistics written as plain xarray + dask on ``Release.to_xarray``
     (chunks = one shard): per band mean, std, min, max overall and per split, season and
     country (``groupby``), and the overall histograms (``dask.array.histogram`` with the same
     edges), all in one ``dask.compute``. It computes less than the job (no per-group
     histograms) and writes nothing. The largest difference of the overall means and stds
     between the two is reported as a check.

3. **projection**: the time for 549,488 pairs on N workers, from the measured pairs/s per worker
   at the largest ``w`` (linear scaling: it assumes storage bandwidth and the scheduler keep up,
   which a 2-core machine cannot show).

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lake.config import store_spec  # noqa: E402
from lake.reader import open_lake  # noqa: E402
from pipelines.cluster.spec import ClusterSpec  # noqa: E402
from pipelines.jobs.ingest import IngestOptions, ingest  # noqa: E402
from pipelines.jobs.stats import GROUP_COLUMNS, RASTERS, bin_edges, compute_stats  # noqa: E402
from pipelines.sources.open import open_source  # noqa: E402
from pipelines.synth import synthesize  # noqa: E402

FULL_PAIRS = 549_488
PROJECT_WORKERS = (1, 2, 8, 32, 64)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def xarray_stats(spec: Any, per_shard: int) -> tuple[float, dict[str, tuple[float, float]]]:
    """The statistics as plain xarray + dask on the current client; (seconds, overall)."""
    import dask
    import dask.array as da

    t0 = time.perf_counter()
    rel = open_lake(spec).current
    ds = rel.to_xarray(chunks={"sample": per_shard})
    meta = rel.patches(columns=["sample_index", *GROUP_COLUMNS]).sort_by("sample_index")
    ds = ds.assign_coords({c: ("sample", np.array(meta[c].to_pylist())) for c in GROUP_COLUMNS})
    todo: dict[str, Any] = {}
    for name in RASTERS:
        x = ds[name].astype("float64")
        space = [d for d in x.dims if d.startswith(("y_", "x_"))]
        bands = [str(b) for b in ds[f"{name}_band"].values]
        dims = ["sample", *space]
        todo[f"{name}/all"] = [x.mean(dims), x.std(dims), x.min(dims), x.max(dims)]
        for c in GROUP_COLUMNS:
            g = x.groupby(c)
            todo[f"{name}/{c}"] = [g.mean(dims), g.std(dims), g.min(dims), g.max(dims)]
        for i, band in enumerate(bands):
            edges = bin_edges(band)
            clipped = da.clip(x.data[:, i], edges[0], edges[-1])
            todo[f"{name}/hist/{band}"] = da.histogram(clipped, bins=edges)[0]
    (done,) = dask.compute(todo)
    overall = {}
    for name in RASTERS:
        mean, std = done[f"{name}/all"][:2]
        for b, m, s in zip(
            [str(v) for v in mean[f"{name}_band"].values], mean.values, std.values, strict=True
        ):
            overall[b] = (float(m), float(s))
    return time.perf_counter() - t0, overall


def run_case(args: argparse.Namespace, source: Path, work: Path, workers: int) -> dict[str, Any]:
    """Ingest, stats and the xarray baseline on ``workers`` workers."""
    out: dict[str, Any] = {"workers": workers, "cluster": args.cluster}
    lake_dir = work / f"lake-w{workers}"
    shutil.rmtree(lake_dir, ignore_errors=True)
    spec = store_spec(str(lake_dir), environ={})
    stack: list[Any] = []
    if args.cluster == "local":
        from distributed import Client, LocalCluster

        t0 = time.perf_counter()
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=40,
        )
        client = Client(cluster)
        stack = [client, cluster]
        out["cluster_start_s"] = round(time.perf_counter() - t0, 2)
        target = ClusterSpec(cluster.scheduler_address)
    else:
        password = args.gateway_password or os.environ.get("LAKE_GATEWAY_PASSWORD") or None
        target = ClusterSpec(args.cluster, workers, password=password)
    try:
        opts = IngestOptions(
            release="b1",
            samples_per_shard=args.samples_per_shard,
            scan_batch=args.samples_per_shard,
            progress=False,
        )
        log(f"w={workers}: ingest {args.pairs} pairs")
        t0 = time.perf_counter()
        rep = ingest(open_source(source), spec, opts, target)
        out["ingest_s"] = round(time.perf_counter() - t0, 2)
        out["ingest_pairs_per_s"] = round(rep.patches / out["ingest_s"], 1)
        log(f"w={workers}: stats")
        t0 = time.perf_counter()
        stats = compute_stats(spec, cluster=target, force=True)
        out["stats_s"] = round(time.perf_counter() - t0, 2)
        out["stats_pairs_per_s"] = round(stats.patches / out["stats_s"], 1)
        out["stats_shards"] = stats.shards
        if args.cluster == "local" and not args.no_xarray:
            log(f"w={workers}: xarray + dask")
            seconds, overall = xarray_stats(spec, args.samples_per_shard)
            out["xarray_s"] = round(seconds, 2)
            out["xarray_pairs_per_s"] = round(rep.patches / seconds, 1)
            out["stats_vs_xarray_speedup"] = round(seconds / out["stats_s"], 2)
            ours = {
                r["band"]: (r["mean"], r["std"])
                for r in stats.table.to_pylist()
                if r["group_by"] == "all"
            }
            out["max_abs_diff_mean_std"] = max(
                max(abs(ours[b][0] - m), abs(ours[b][1] - s)) for b, (m, s) in overall.items()
            )
    finally:
        for thing in stack:
            thing.close()
        if not args.keep:
            shutil.rmtree(lake_dir, ignore_errors=True)
    return out


def projection(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Hours for the full set on N workers, from the largest measured worker count."""
    best = max(cases, key=lambda c: c["workers"])
    out: dict[str, Any] = {"pairs": FULL_PAIRS, "from_workers": best["workers"]}
    for job in ("ingest", "stats"):
        per_worker = best[f"{job}_pairs_per_s"] / best["workers"]
        out[job] = {
            "pairs_per_s_per_worker": round(per_worker, 1),
            "hours": {
                str(n): round(FULL_PAIRS / (per_worker * n) / 3600, 2) for n in PROJECT_WORKERS
            },
        }
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Pipeline jobs on a cluster: ingest and stats throughput, the stats job "
        "vs plain xarray + dask, projection to 549,488 pairs. JSON to stdout.",
    )
    ap.add_argument("--pairs", type=int, default=2000, help="pairs of the synthetic source")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument(
        "--cluster",
        default="local",
        help="local (a LocalCluster per worker count), tcp://scheduler:8786 or "
        "gateway://127.0.0.1:PORT (jobs only; no xarray baseline)",
    )
    ap.add_argument(
        "--gateway-password", help="Dask Gateway password (default: env LAKE_GATEWAY_PASSWORD)"
    )
    ap.add_argument("--samples-per-shard", type=int, default=256, help="pairs per shard")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic source")
    ap.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the source and the lakes")
    ap.add_argument("--no-xarray", action="store_true", help="skip the xarray baseline")
    ap.add_argument("--json-out", type=Path, help="also write the JSON here")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-pipelines-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"source-{args.pairs}"
    doc: dict[str, Any] = {
        "benchmark": "pipelines",
        "pairs": args.pairs,
        "samples_per_shard": args.samples_per_shard,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "cases": [],
    }
    try:
        if not (source / "metadata.parquet").exists():
            log(f"synth {args.pairs} pairs")
            t0 = time.perf_counter()
            synthesize(args.pairs, source, seed=args.seed, progress=False)
            doc["synth_s"] = round(time.perf_counter() - t0, 1)
        for w in (int(v) for v in args.workers.split(",")):
            doc["cases"].append(run_case(args, source, work, w))
            doc["load_avg_1m"] = round(os.getloadavg()[0], 2)
        doc["projection"] = projection(doc["cases"])
    finally:
        if not args.keep and args.out is None:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(doc, indent=1)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What ``Release.to_xarray``'s shard-aligned dask chunks buy: a band mean, one-sample chunks
against one-shard chunks.

Usage: ``python benchmarks/xarray_chunks.py [--pairs 300] [--per-shard 64] [--repeats 3]
[--out DIR] [--lake-backend file|s3]``. Synthesizes ``--pairs`` pairs (``pipelines.synth``),
ingests them (release ``r1``), then times ``ds["s2_10m"].mean(["sample", "y_10m", "x_10m"])``
(the four band means) through ``Release.to_xarray`` with ``chunks={}`` (the stored one-sample
chunks: one dask task and one small read per pair) and with the default ``chunks="shard"`` (one
task and one read per shard object), dask's threaded scheduler, best of ``--repeats`` runs each,
the runs interleaved. Prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RELEASE = "r1"


def _best(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for label, fn in runs.items():
            t = time.perf_counter()
            fn()
            best[label] = min(best[label], time.perf_counter() - t)
    return best


@contextmanager
def _lake(out: Path, pairs: int, per_shard: int, backend: str) -> Iterator[Any]:
    from lake.config import store_spec
    from pipelines.cluster.spec import ClusterSpec
    from pipelines.jobs.ingest import IngestOptions, ingest
    from pipelines.sources.open import open_source
    from pipelines.synth import synthesize

    print(f"synthesizing and ingesting {pairs} pairs ...", file=sys.stderr)
    synthesize(pairs, out / "src", fmt="lmdb", seed=7)
    opts = IngestOptions(
        release=RELEASE, samples_per_shard=per_shard, scan_batch=per_shard, progress=False
    )
    if backend == "file":
        spec = store_spec(str(out / "lake"), environ={})
        ingest(open_source(out / "src"), spec, opts, ClusterSpec("sync"))
        yield spec
        return
    from pipelines.local.s3 import EmbeddedS3

    with EmbeddedS3(out / "s3", buckets=["lake"]) as server:
        e = server.endpoint
        spec = store_spec(
            "s3://lake/bench",
            endpoint_url=e.endpoint_url,
            key=e.key,
            secret=e.secret,
            region=e.region,
            environ={},
        )
        ingest(open_source(out / "src"), spec, opts, ClusterSpec("sync"))
        yield spec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--per-shard", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lake-backend", choices=["file", "s3"], default="file")
    ap.add_argument("--out", type=Path, default=None, help="scratch folder (default: a temp one)")
    args = ap.parse_args(argv)
    from lake.reader import open_lake

    with (
        tempfile.TemporaryDirectory(dir=args.out) as tmp,
        _lake(Path(tmp), args.pairs, args.per_shard, args.lake_backend) as spec,
    ):
        release = open_lake(spec).current

        def mean(chunks: Any) -> Callable[[], np.ndarray]:
            def run() -> np.ndarray:
                ds = release.to_xarray(chunks=chunks, metadata=False)
                return np.asarray(ds["s2_10m"].mean(["sample", "y_10m", "x_10m"]).values)

            return run

        runs = {"one_sample_chunks": mean({}), "shard_chunks": mean("shard")}
        np.testing.assert_allclose(runs["one_sample_chunks"](), runs["shard_chunks"]())
        best = _best(runs, args.repeats)
    doc = {
        "pairs": args.pairs,
        "samples_per_shard": args.per_shard,
        "backend": args.lake_backend,
        "seconds": {k: round(v, 3) for k, v in best.items()},
        "speedup": round(best["one_sample_chunks"] / best["shard_chunks"], 2),
    }
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

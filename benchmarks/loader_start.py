"""How fast the loader starts: opening a dataset, its first batch, and a resume, split in phases.

Usage::

    python benchmarks/loader.py --pairs 20000 --out DATA --keep --formats lake --latency-ms ""
    python benchmarks/loader_start.py DATA [--latency-ms 20] [--repeat 3] [--workers 0,2]
        [--json-out FILE]

``DATA`` is a folder written by ``benchmarks/loader.py --out DATA --keep`` (its bucket holds the
lake under ``bench/lake``). The embedded S3 endpoint serves it; with ``--latency-ms`` above 0 the
loader talks to :class:`tests.support.fault_proxy.FaultProxy`, which waits that long before
forwarding each request (real S3's first-byte latency) and counts the requests.

For each worker count (0: one process, the dataset's own threads; 2: ``LakeDataLoader`` with two
worker processes) and each repeat, two fresh processes, as a training script would be:

* **first**: create the dataset (``LakeDataset``: ``lake.json`` and the release index), then take
  the epoch's first batch (native dtypes, moved with ``to_device(batch, "cpu")``);
* **resume**: create the dataset, ``load_state_dict`` of the state saved after 5 batches (by an
  untimed process), and take the next batch.

Reported per process: ``open_s`` (the dataset created), ``batch_s`` (from then to the batch),
``total_s`` and the requests the proxy forwarded. Imports (torch, s3fs, pandas, the loader) are
done before the clock, as in ``benchmarks/loader.py``. A markdown table goes to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUCKET = "bench"
MODALITIES = ["s2_10m", "s2_20m", "s1", "labels"]
RESUME_AFTER = 5

CHILD = r"""
import json, os, sys, time
import pandas, s3fs, torch  # imports before the clock (pyarrow imports pandas at its first array)
from lake.config import store_spec
from lake.loader import LakeDataLoader, LakeDataset, ReadOptions, to_device

workers = int(os.environ["BENCH_WORKERS"])
spec = store_spec(
    f"s3://{os.environ['BENCH_BUCKET']}/lake", endpoint_url=os.environ["BENCH_ENDPOINT"],
    key=os.environ["BENCH_KEY"], secret=os.environ["BENCH_SECRET"], region="us-east-1",
    environ={},
)
read = ReadOptions(decode_threads=2) if workers == 0 else None
t0 = time.perf_counter()
ds = LakeDataset(spec, modalities=json.loads(os.environ["BENCH_MODALITIES"]), shuffle=True,
                 seed=0, dtype="native", read=read)
t1 = time.perf_counter()
loader = LakeDataLoader(ds, batch_size=64, num_workers=workers)
load, save = os.environ.get("BENCH_LOAD"), os.environ.get("BENCH_SAVE")
if load:
    loader.load_state_dict(torch.load(load, weights_only=False))
batches = iter(loader)
batch = to_device(next(batches), "cpu")
t2 = time.perf_counter()
if save:
    for _ in range(int(os.environ["BENCH_AFTER"]) - 1):
        next(batches)
    torch.save(loader.state_dict(), save)
del batches
print(json.dumps({"open_s": t1 - t0, "batch_s": t2 - t1, "total_s": t2 - t0,
                  "samples": len(batch["patch_id"])}), flush=True)
"""


def _child(env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"the timed process failed (exit {out.returncode}): {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(data: Path, latency_ms: float, repeat: int, workers: list[int]) -> dict[str, Any]:
    """Time the first batch and a resume, ``repeat`` times per worker count."""
    from pipelines.local.s3 import EmbeddedS3
    from tests.support.fault_proxy import FaultProxy

    served = data / "s3"
    if not (served / BUCKET / "lake" / "lake.json").is_file():
        raise SystemExit(f"{served / BUCKET}/lake holds no lake: run benchmarks/loader.py first")
    rows: list[dict[str, Any]] = []
    with EmbeddedS3(served, buckets=[BUCKET]) as server, contextlib.ExitStack() as stack:
        ep = server.endpoint
        proxy = None
        if latency_ms > 0:
            proxy = stack.enter_context(
                FaultProxy(ep.endpoint_url, match="", delay=latency_ms / 1000)
            )
        base = {
            "BENCH_ENDPOINT": proxy.url if proxy else ep.endpoint_url,
            "BENCH_KEY": ep.key,
            "BENCH_SECRET": ep.secret,
            "BENCH_BUCKET": BUCKET,
            "BENCH_MODALITIES": json.dumps(MODALITIES),
            "BENCH_AFTER": str(RESUME_AFTER),
        }
        state = Path(tempfile.mkdtemp(prefix="loader-start-")) / "state.pt"
        for w in workers:
            env = {**base, "BENCH_WORKERS": str(w)}
            _child({**env, "BENCH_SAVE": str(state)})  # the state to resume from (untimed)
            for _ in range(repeat):
                for kind, extra in (("first", {}), ("resume", {"BENCH_LOAD": str(state)})):
                    before = proxy.requests if proxy else 0
                    r = _child({**env, **extra})
                    r.update(kind=kind, workers=w)
                    r["requests"] = proxy.requests - before if proxy else None
                    rows.append(r)
                    print(json.dumps(r), file=sys.stderr, flush=True)
        state.unlink(missing_ok=True)
        state.parent.rmdir()
    return {"latency_ms": latency_ms, "load_avg_end": os.getloadavg(), "runs": rows}


def markdown(report: dict[str, Any]) -> str:
    """Median and range of each phase per worker count and kind."""
    lines = [
        f"**{report['latency_ms']:g} ms per request** (load average at the end "
        f"{', '.join(f'{x:.1f}' for x in report['load_avg_end'])})",
        "",
        "| workers | batch | open s | to the batch s | total s (median) | total s (range) "
        "| requests |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in report["runs"]:
        groups.setdefault((r["workers"], r["kind"]), []).append(r)
    for (w, kind), rs in groups.items():

        def med(key: str, rs: list[dict[str, Any]] = rs) -> float:
            return statistics.median(r[key] for r in rs)

        totals = [r["total_s"] for r in rs]
        reqs = [r["requests"] for r in rs if r["requests"] is not None]
        lines.append(
            f"| {w or 'one process'} | {kind} | {med('open_s'):.2f} | {med('batch_s'):.2f} | "
            f"{med('total_s'):.2f} | {min(totals):.2f}-{max(totals):.2f} | "
            f"{statistics.median(reqs):.0f} |"
            if reqs
            else f"| {w or 'one process'} | {kind} | {med('open_s'):.2f} | {med('batch_s'):.2f} "
            f"| {med('total_s'):.2f} | {min(totals):.2f}-{max(totals):.2f} | - |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("data", type=Path, help="a folder written by benchmarks/loader.py --keep")
    ap.add_argument("--latency-ms", type=float, default=20.0, help="added per request (20)")
    ap.add_argument("--repeat", type=int, default=3, help="processes per measurement (3)")
    ap.add_argument("--workers", default="0,2", help="DataLoader worker counts (0: one process)")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat: give at least 1")
    try:
        workers = [int(w) for w in args.workers.split(",") if w]
    except ValueError:
        ap.error(f"--workers {args.workers!r}: give comma-separated integers")
    if not workers or any(w < 0 for w in workers):
        ap.error(f"--workers {args.workers!r}: give worker counts >= 0")
    report = run(args.data, args.latency_ms, args.repeat, workers)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=1))
    print(markdown(report))


if __name__ == "__main__":
    main()

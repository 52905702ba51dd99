"""Memory and lookup time of a pack stage's index: the former dicts against the sorted arrays.

Usage: ``python benchmarks/pack_index.py [--folders 550000] [--lookups 20000]``

A staged archive's ``index.parquet`` maps each patch folder to its run (pack, offset, length);
every process that reads the stage loads it once. The whole set has about 550,000 folders per
archive. This builds that many synthetic S2 folder names shaped like the real ones
(``BigEarthNet-S2/S2A_MSIL2A_<date>_N9999_R<orbit>_T<tile>/<same>_<x>_<y>``, about 110
characters), writes the index as staging does, and loads it in a fresh subprocess per variant:

* ``dict``: ``folder -> [(pack, offset, length)]``, as :class:`pipelines.sources.packs.PackStage`
  kept it before (Python str, list and tuple objects);
* ``arrays``: :class:`pipelines.sources.packs.PackIndex` (fixed-width UTF-8 names, sorted, and
  integer arrays; looked up with ``np.searchsorted``).

For each: the memory the index keeps after loading (``tracemalloc``: Python objects and NumPy
buffers, not Arrow's, of which the integer arrays are views; ``array_bytes``: the arrays
exactly; and RSS growth, which sees everything, temporaries the allocator kept included), the
peak while loading, the load time, and the time per folder of looking up batches of 64 folders
(as the scan and write tasks do). JSON on stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.sources.packs import INDEX_SCHEMA, PackIndex  # noqa: E402
from tests.support.packs import dict_index  # noqa: E402

BATCH = 64


def synthetic_index(n: int, seed: int = 0) -> pa.Table:
    """``n`` runs of S2-like folders in archive order (tile by tile), with plausible offsets."""
    rng = random.Random(seed)
    folders: list[str] = []
    while len(folders) < n:
        tile = f"{rng.randint(29, 35)}{rng.choice('TUVW')}{rng.choice('MNPQ')}{rng.choice('ABC')}"
        product = (
            f"S2{rng.choice('AB')}_MSIL2A_2017{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
            f"T{rng.randint(0, 235959):06d}_N9999_R{rng.randint(1, 143):03d}_T{tile}"
        )
        for x in range(rng.randint(20, 100)):
            for y in range(rng.randint(1, 12)):
                folders.append(f"BigEarthNet-S2/{product}/{product}_{x}_{y}")
    folders = folders[:n]
    packs, offsets, lengths, pack, offset = [], [], [], 0, 0
    for _ in folders:
        length = rng.randint(150_000, 190_000)
        packs.append(pack)
        offsets.append(offset)
        lengths.append(length)
        offset += length
        if offset >= 64 << 20:
            pack, offset = pack + 1, 0
    cols = {"folder": folders, "pack": packs, "offset": offsets, "length": lengths}
    return pa.table(cols, schema=INDEX_SCHEMA)


def measure(variant: str, path: Path, lookups: int) -> dict[str, Any]:
    """Load the index at ``path`` as ``variant`` in this (fresh) process and measure it."""
    table = pq.read_table(path)
    names = table["folder"].to_pylist()
    rng = random.Random(1)
    batches = [rng.sample(names, BATCH) for _ in range(max(1, lookups // BATCH))]
    del names
    gc.collect()
    pa.default_memory_pool().release_unused()
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    tracemalloc.start()
    t0 = time.perf_counter()
    index: Any = dict_index(table) if variant == "dict" else PackIndex.from_table(table)
    load = time.perf_counter() - t0
    gc.collect()
    pa.default_memory_pool().release_unused()
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = proc.memory_info().rss - rss0
    t0 = time.perf_counter()
    for batch in batches:
        if variant == "dict":
            [(f, *r) for f in batch for r in index.get(f, [])]
        else:
            index.runs(batch)
    lookup = time.perf_counter() - t0
    n = table.num_rows
    return {
        "variant": variant,
        "folders": n,
        "kept_bytes": kept,
        "kept_bytes_per_folder": round(kept / n, 1),
        "peak_bytes_while_loading": peak,
        "rss_growth_bytes": rss,
        "rss_growth_bytes_per_folder": round(rss / n, 1),
        "load_seconds": round(load, 3),
        "lookup_us_per_folder": round(1e6 * lookup / (len(batches) * BATCH), 2),
        "array_bytes": index.nbytes if variant == "arrays" else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write the synthetic index, measure each variant in a subprocess, print the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folders", type=int, default=550_000, help="runs in the index")
    ap.add_argument("--lookups", type=int, default=20_000, help="folders looked up (in batches)")
    ap.add_argument("--out", type=Path, default=Path("bench-output/pack_index"))
    ap.add_argument("--variant", choices=("dict", "arrays"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.folders < 1 or args.lookups < 1:
        ap.error("--folders and --lookups must be at least 1")
    path = args.out.resolve() / f"index-{args.folders}.parquet"
    if args.variant:  # the child: one variant
        print(json.dumps(measure(args.variant, path, args.lookups)))
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    table = synthetic_index(args.folders)
    pq.write_table(table, path, compression="zstd")
    names = table["folder"]
    doc: dict[str, Any] = {
        "benchmark": "pack_index",
        "command": " ".join(["python", *sys.argv]),
        "loadavg": os.getloadavg(),
        "folders": args.folders,
        "name_bytes_mean": round(sum(len(s.as_py()) for s in names.slice(0, 10_000)) / 10_000, 1),
        "index_parquet_bytes": path.stat().st_size,
        "variants": [],
    }
    for variant in ("dict", "arrays"):
        cmd = [sys.executable, __file__, "--variant", variant, "--folders", str(args.folders),
               "--lookups", str(args.lookups), "--out", str(args.out)]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
        doc["variants"].append(json.loads(out))
    path.unlink()
    old, new = doc["variants"]
    doc["kept_ratio_dict_over_arrays"] = round(old["kept_bytes"] / new["kept_bytes"], 1)
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

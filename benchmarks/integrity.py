"""What the chunk checksums of layout 2 cost (ADR 0008): bytes, and read time in every reader.

Usage: ``python benchmarks/integrity.py [--pairs 1024] [--out DIR] [--json-out FILE]``. Builds a
synthetic source (``pipelines.synth``), ingests it as layout 2 (every chunk ends with its
CRC32C), rewrites the same patch group as layout 1 (no chunk checksums) next to it, and prints
one JSON document:

* ``bytes``: the shard objects of each raster array in both layouts, and the ratio; the same for
  the one real sample of ``../shared/data/bigearthnet-v2/sample`` (one chunk per array);
* ``crc32c``: the check alone (``lake.integrity.crc32c_ok`` over every chunk), MB/s;
* ``chunk_decode``: the loader's decoder (``lake.loader.decode.chunk_decoder``) over every chunk
  of every raster array, one thread, with and without the check, samples/s;
* ``loader_epoch``: one in-process epoch of :class:`lake.loader.LakeDataset` (all rasters,
  shuffled, 2 decode threads) on the local lake, samples/s;
* ``zarr_read``: the whole group read through zarr: plain ``zarr.open_group`` (zarr's own
  ``crc32c`` codec checks layout 2) and ``Release.to_xarray`` (adds the project's
  :class:`~lake.integrity.IntegrityStore`, which names the damaged place), samples/s; and one
  sample at a time through ``Release.sample``, ms per sample.

Every time is the best of ``--repeats`` runs (default 3) on a warm page cache.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RELEASE = "r1"


def _interleaved(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Best seconds of each run, the runs alternating (so a load change hits all of them)."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for label, fn in runs.items():
            t = time.perf_counter()
            fn()
            best[label] = min(best[label], time.perf_counter() - t)
    return best


def build(out: Path, pairs: int, per_shard: int) -> tuple[Any, Any]:
    """Layout-2 lake by ingest, and the same group rewritten as layout 1 in a copy."""
    import zarr

    from lake.config import store_spec
    from lake.patchstore import array_of, create_group, write_block
    from pipelines.cluster.spec import ClusterSpec
    from pipelines.jobs.ingest import IngestOptions, ingest
    from pipelines.sources.open import open_source
    from pipelines.synth import synthesize

    print(f"synthesizing and ingesting {pairs} pairs ...", file=sys.stderr)
    synthesize(pairs, out / "src", fmt="lmdb", seed=7)
    new = store_spec(str(out / "layout2"), environ={})
    opts = IngestOptions(
        release=RELEASE, samples_per_shard=per_shard, scan_batch=per_shard, progress=False
    )
    ingest(open_source(out / "src"), new, opts, ClusterSpec("sync"))
    shutil.copytree(out / "layout2", out / "layout1")
    old = store_spec(str(out / "layout1"), environ={})
    group_dir = out / "layout1" / f"patches/{RELEASE}.zarr"
    src = zarr.open_group(str(out / "layout2" / f"patches/{RELEASE}.zarr"), mode="r")
    names = [n for n in src.array_keys() if not n.endswith("_band")]
    values: dict[str, np.ndarray] = {n: np.asarray(array_of(src, n)[:]) for n in names}
    shutil.rmtree(group_dir)
    group = create_group(old, RELEASE, pairs, per_shard, layout_version=1)
    for start in range(0, pairs, per_shard):
        write_block(group, start, {n: v[start : start + per_shard] for n, v in values.items()})
    for doc in (
        out / "layout1" / "lake.json",
        out / "layout1" / f"releases/{RELEASE}/manifest.json",
    ):
        content = json.loads(doc.read_text())
        content["layout_version"] = 1
        doc.write_text(json.dumps(content))
    return new, old


def shard_bytes(root: Path) -> dict[str, int]:
    """Bytes of every object below each raster array's ``c/`` folder."""
    from lake.bigearthnet import ARRAYS

    group = root / f"patches/{RELEASE}.zarr"
    return {
        a.name: sum(p.stat().st_size for p in (group / a.name / "c").rglob("*") if p.is_file())
        for a in ARRAYS
    }


def real_sample_bytes() -> dict[str, dict[str, int]]:
    """Encoded bytes of the real sample's chunk of each array, without and with the CRC32C."""
    from lake.codecs import codecs_for

    where = Path(__file__).resolve().parent / "codecs.py"  # not `codecs`: the stdlib has one
    spec = importlib.util.spec_from_file_location("bench_codecs", where)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {where}")
    bc = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bc  # dataclasses look their module up there
    spec.loader.exec_module(bc)

    data, _, _ = bc.load_real()
    out = {}
    for name, sample in data.items():
        stack = sample[None]
        _, without = bc.build_array(stack, codecs_for(name, checksum=False))
        _, with_crc = bc.build_array(stack, codecs_for(name))
        out[name] = {"layout1": without, "layout2": with_crc}
    return out


def chunks_of(spec: Any) -> dict[str, list[memoryview]]:
    """Every encoded chunk of every raster array, from the shard objects."""
    from lake.bigearthnet import ARRAYS
    from lake.loader.fetch import read_layouts

    layouts = read_layouts(spec, RELEASE, [a.name for a in ARRAYS])
    root = Path(spec.path()) / f"patches/{RELEASE}.zarr"
    out: dict[str, list[memoryview]] = {}
    for name, lay in layouts.items():
        out[name] = []
        for obj in sorted((root / name / "c").rglob("*")):
            if not obj.is_file():
                continue
            buf = memoryview(obj.read_bytes())
            index = np.frombuffer(buf[len(buf) - lay.index_nbytes : -4], "<u8").reshape(-1, 2)
            out[name] += [buf[o : o + n] for o, n in index.tolist() if o != 2**64 - 1]
    return out


def decode_job(spec: Any) -> Callable[[], None]:
    """The loader's chunk decoder over every raster chunk of the lake, one thread."""
    from lake.bigearthnet import ARRAYS
    from lake.loader.decode import chunk_decoder
    from lake.loader.fetch import read_layouts

    layouts = read_layouts(spec, RELEASE, [a.name for a in ARRAYS])
    chunks = chunks_of(spec)
    decoders = {n: chunk_decoder(lay) for n, lay in layouts.items()}

    def run() -> None:
        for name, items in chunks.items():
            decode = decoders[name]
            for c in items:
                decode(c)

    return run


def crc_rate(spec: Any, repeats: int) -> dict[str, float]:
    """The check alone over every raster chunk: MB/s and microseconds per sample (5 chunks)."""
    from lake.integrity import crc32c_ok

    chunks = [c for items in chunks_of(spec).values() for c in items]
    total = sum(len(c) for c in chunks)
    seconds = _interleaved({"crc": lambda: [crc32c_ok(c) for c in chunks]}, repeats)["crc"]
    return {"MB/s": total / seconds / 1e6, "us_per_sample": seconds / len(chunks) * 5 * 1e6}


def loader_job(spec: Any) -> Callable[[], None]:
    """One in-process epoch of the loader over every raster array."""
    from lake.loader import LakeDataset

    mods = ["s2_10m", "s2_20m", "s2_60m", "s1", "reference_map"]

    def run() -> None:
        for _ in LakeDataset(spec, modalities=mods, shuffle=True, seed=0):
            pass

    return run


def zarr_jobs(spec: Any, picks: list[int]) -> dict[str, Callable[[], None]]:
    """Whole group by plain zarr and by ``to_xarray``; ``Release.sample`` of ``picks``."""
    import zarr

    from lake.bigearthnet import ARRAYS
    from lake.patchstore import array_of
    from lake.reader import open_lake

    release = open_lake(spec).current
    path = str(Path(spec.path()) / f"patches/{RELEASE}.zarr")

    def plain() -> None:
        group = zarr.open_group(path, mode="r")
        for a in ARRAYS:
            np.asarray(array_of(group, a.name)[:])

    def xarray() -> None:
        ds = release.to_xarray()
        for a in ARRAYS:
            ds[a.name].values  # noqa: B018 (loads the array)

    def one_by_one() -> None:
        for i in picks:
            release.sample(i)

    return {"plain_zarr": plain, "to_xarray": xarray, "Release.sample": one_by_one}


def timings(specs: dict[str, Any], pairs: int, repeats: int) -> dict[str, Any]:
    """Every reader on every layout, interleaved; samples/s (ms per sample for ``sample``)."""
    picks = list(range(0, pairs, max(1, pairs // 64)))[:64]
    out: dict[str, Any] = {}
    print("timing the chunk decoder ...", file=sys.stderr)
    best = _interleaved({k: decode_job(s) for k, s in specs.items()}, repeats)
    out["chunk_decode_samples_per_s"] = {k: pairs / v for k, v in best.items()}
    print("timing loader epochs ...", file=sys.stderr)
    best = _interleaved({k: loader_job(s) for k, s in specs.items()}, repeats)
    out["loader_epoch_samples_per_s"] = {k: pairs / v for k, v in best.items()}
    print("timing zarr reads ...", file=sys.stderr)
    jobs = {f"{k}/{j}": fn for k, s in specs.items() for j, fn in zarr_jobs(s, picks).items()}
    best = _interleaved(jobs, repeats)
    out["zarr_read"] = {
        label: (
            {"ms_per_sample": seconds / len(picks) * 1e3}
            if label.endswith("Release.sample")
            else {"samples_per_s": pairs / seconds}
        )
        for label, seconds in best.items()
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1024)
    ap.add_argument("--samples-per-shard", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args(argv)

    out = args.out or Path(tempfile.mkdtemp(prefix="bench-integrity-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        new, old = build(out, args.pairs, args.samples_per_shard)
        b2, b1 = shard_bytes(out / "layout2"), shard_bytes(out / "layout1")
        report: dict[str, Any] = {
            "pairs": args.pairs,
            "samples_per_shard": args.samples_per_shard,
            "bytes": {
                "synthetic": {
                    name: {"layout1": b1[name], "layout2": b2[name], "ratio": b2[name] / b1[name]}
                    for name in b1
                },
                "synthetic_total_ratio": sum(b2.values()) / sum(b1.values()),
                "real_sample": real_sample_bytes(),
            },
        }
        print("bytes done", file=sys.stderr)
        report["crc32c"] = crc_rate(new, args.repeats)
        report.update(timings({"layout1": old, "layout2": new}, args.pairs, args.repeats))
        text = json.dumps(report, indent=2)
        print(text)
        if args.json_out:
            args.json_out.write_text(text)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

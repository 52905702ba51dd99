"""Ingest throughput, peak memory and lake size against the source GeoTIFFs, per source kind.

Usage: ``python benchmarks/ingest.py [--sizes 2000,20000]
[--kinds folders,folders-s3,tar.zst,tar.zst-s3,lmdb] [--lake-backend file|s3] [--cluster local]
[--workers 2] [--staging-workers 1,2] [--out DIR] [--keep] [--json-out FILE]``

The ``-s3`` kinds are the same sources uploaded to the embedded S3 endpoint (``lake s3 serve``'s
rclone) and ingested from their URL (``lake ingest s3://lake/src/...``): the workers read the
GeoTIFFs, or the archives (streamed, staged as compressed packs on S3), from S3, as the workers
of a Gateway cluster without a shared disk do (issue 15). Each case reports pairs/s per core
(the ingest's cores: ``--workers`` x 1 thread), the staging bytes and the projected time for all
549,488 pairs on 8, 32 and 128 cores (staging, which streams each archive once, added at the
time measured with ``--workers``: the three archives stage as parallel tasks, so the S2 archive,
58% of the bytes, bounds it).

For each size and source kind (one *case*):

1. **synth**: :func:`pipelines.synth.synthesize` writes the source (timed on its own; source
   bytes = every file it wrote, GeoTIFF bytes = the band files, or for ``tar.zst`` the archive
   members, which are the same GeoTIFF bytes; for ``lmdb`` they are taken from the ``folders``
   case of the same size and seed, which holds the same pairs).
2. **stage** (``tar.zst`` only): ``TarZstSource.prepare(runner=...)`` is timed on a cluster like
   the ingest's (``--cluster``), once per worker count of ``--staging-workers`` (default: the
   ingest's ``--workers``), the stage deleted before each: archives on S3 stage as one task per
   archive on the workers (the seconds and CPU seconds of each archive's task and its
   worker's pid come from its ``stage.json``); local archives stage into the LMDB in this
   process whatever the workers. The cluster's start is timed apart. The ingest that follows
   finds the finished stage and reuses it, so its time excludes staging. Both are reported,
   and their sum is the end-to-end figure.
3. **ingest**: ``python -m pipelines.cli ingest SOURCE --lake URL --json`` in a fresh subprocess.
   Peak memory is measured two ways: the largest single process of the child tree
   (``/usr/bin/time -f %M``, which covers the Dask workers once they are reaped), and the
   sum of RSS over the whole tree (ingest driver, nannies, Dask workers) sampled every 0.2 s with
   psutil (an upper bound: shared pages count once per process), and the same sum of anonymous
   pages only (the mmap'd LMDB pages of the ``lmdb`` source and the ``tar.zst`` stage are
   file-backed: they show in RSS but are page cache the kernel can drop).
4. **lake bytes** from the release manifest: the patch group (``patches/``) per array and in
   total, and every object of the release (Parquet tables included).
5. **profile** (in this process, one core, after the ingest): scan ms/pair
   (``source.scan_pair``: headers only), decode ms/pair (``source.read_pair``, once per pair, in
   the write) and encode ms/pair (one shard written through ``lake.patchstore`` into an
   in-memory store).

The honest compression figure comes from the real sample rasters
(``shared/data/bigearthnet-v2/sample``): their values are encoded with ``lake.codecs`` in a real
sharded zarr array (``build_array`` of ``benchmarks/codecs.py``), next to the synthetic ratio.

JSON goes to stdout (and ``--json-out``, rewritten after every case); progress to stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lake.bigearthnet import ARRAYS, BAND_ARRAY  # noqa: E402
from lake.codecs import codecs_for  # noqa: E402
from lake.config import StoreSpec, store_spec  # noqa: E402
from lake.layout import patches_path  # noqa: E402
from lake.names import MAPS_ROOT, S1_ROOT, S2_ROOT, split_member  # noqa: E402
from lake.patchstore import create_group, write_block  # noqa: E402
from lake.release import read_manifest  # noqa: E402
from lake.storage import filesystem  # noqa: E402
from pipelines.cluster.runner import Runner  # noqa: E402
from pipelines.cluster.spec import ClusterSpec  # noqa: E402
from pipelines.sources.base import Source  # noqa: E402
from pipelines.sources.open import open_source  # noqa: E402
from pipelines.sources.tarzst import ARCHIVES, iter_members  # noqa: E402
from pipelines.synth import synthesize  # noqa: E402

KINDS = ("folders", "folders-s3", "tar.zst", "tar.zst-s3", "lmdb")
#: Pairs of the whole official set (clean plus snow/cloud), for the projection.
FULL_SET_PAIRS = 549_488
PROJECT_CORES = (8, 32, 128)
ARRAY_NAMES = tuple(a.name for a in ARRAYS)
RELEASE = "v1"
#: Disk a case needs per pair: source (~300 KB), tar.zst staging (~290 KB), lake (~190 KB).
BYTES_PER_PAIR = {
    "folders": 500_000,
    "folders-s3": 1_000_000,
    "tar.zst": 800_000,
    "tar.zst-s3": 900_000,
    "lmdb": 520_000,
}
N_REAL_COPIES = 32  # samples per shard of the real-sample arrays, as benchmarks/codecs.py


def log(msg: str) -> None:
    """One progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the real sample


def _codecs_module() -> ModuleType:
    """``benchmarks/codecs.py`` as a module (its name would clash with the stdlib ``codecs``)."""
    spec = importlib.util.spec_from_file_location("bench_codecs", ROOT / "benchmarks/codecs.py")
    if spec is None or spec.loader is None:
        raise ImportError("cannot load benchmarks/codecs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def real_sample_compression() -> dict[str, Any]:
    """Lake bytes / GeoTIFF bytes of the 15 real sample files, per array and overall.

    Each array's real sample is repeated ``N_REAL_COPIES`` times in one shard (chunk = one
    sample, as in the lake) and encoded with ``lake.codecs.codecs_for`` (the default pipeline
    and the portable fallback); the stored bytes (shard with its index) per sample are compared
    with the bytes of that array's GeoTIFF files on disk. The round trip is checked bit-exact.
    """
    bc = _codecs_module()
    data, geo, _ = bc.load_real()
    per_array: dict[str, dict[str, Any]] = {}
    totals = {"geotiff": 0.0, "lake": 0.0, "portable": 0.0}
    for name in ARRAY_NAMES:
        stack = np.repeat(data[name][None], N_REAL_COPIES, axis=0)
        _, stored = bc.build_array(stack, codecs_for(name))
        _, stored_p = bc.build_array(stack, codecs_for(name, portable=True))
        lake, portable = stored / N_REAL_COPIES, stored_p / N_REAL_COPIES
        per_array[name] = {
            "geotiff_bytes": geo[name],
            "lake_bytes": round(lake, 1),
            "ratio": round(lake / geo[name], 4),
            "portable_bytes": round(portable, 1),
            "portable_ratio": round(portable / geo[name], 4),
        }
        totals["geotiff"] += geo[name]
        totals["lake"] += lake
        totals["portable"] += portable
    return {
        "sample": str(bc.SAMPLE),
        "files": 15,
        "per_array": per_array,
        "geotiff_bytes": int(totals["geotiff"]),
        "lake_bytes": round(totals["lake"], 1),
        "ratio": round(totals["lake"] / totals["geotiff"], 4),
        "portable_ratio": round(totals["portable"] / totals["geotiff"], 4),
    }


# ---------------------------------------------------------------- sizes of sources and lakes


def _array_of_member(relpath: str) -> str | None:
    parts = split_member(relpath)
    if parts is None:
        return None
    band = parts[2]
    return BAND_ARRAY[band].name if band in BAND_ARRAY else band


def geotiff_bytes_folders(root: Path) -> dict[str, int]:
    """Bytes of the band GeoTIFFs of an extracted source, per lake array."""
    out = dict.fromkeys(ARRAY_NAMES, 0)
    for top in (S2_ROOT, S1_ROOT, MAPS_ROOT):
        for folder, _, files in os.walk(root / top):
            for f in files:
                rel = os.path.relpath(os.path.join(folder, f), root)
                name = _array_of_member(rel)
                if name in out:
                    out[name] += os.path.getsize(os.path.join(folder, f))
    return out


def geotiff_bytes_tarzst(root: Path) -> dict[str, int]:
    """Bytes of the GeoTIFF members of the three archives (streamed), per lake array."""
    out = dict.fromkeys(ARRAY_NAMES, 0)
    for archive in ARCHIVES.values():
        for name, data in iter_members(root / archive):
            arr = _array_of_member(name)
            if arr in out:
                out[arr] += len(data)
    return out


def dir_bytes(path: Path) -> int:
    """Bytes of every file below ``path``."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def lake_bytes(spec: StoreSpec) -> dict[str, Any]:
    """Bytes of the release's objects: total, the patch group, and per patch array."""
    objects = read_manifest(spec, RELEASE)["objects"]
    group = patches_path(RELEASE) + "/"
    per_array = dict.fromkeys(ARRAY_NAMES, 0)
    patch_group = 0
    for o in objects:
        if not o["path"].startswith(group):
            continue
        patch_group += o["size"]
        arr = o["path"][len(group) :].split("/", 1)[0]
        if arr in per_array:
            per_array[arr] += o["size"]
    return {
        "total": sum(o["size"] for o in objects),
        "patch_group": patch_group,
        "per_array": per_array,
        "objects": len(objects),
    }


# ---------------------------------------------------------------- running ingest


class TreeSampler:
    """Samples the summed RSS of a process and all its descendants in a thread.

    Two sums: all resident pages (file-backed ones included: an LMDB source or stage read
    through ``mmap`` counts here, once per process that maps it), and the anonymous pages alone
    (RSS minus shared/file-backed pages: the heap that would push the machine into swap).
    """

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_bytes = 0
        self.peak_anon_bytes = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = anon = 0
            for p in procs:
                try:
                    info = p.memory_info()
                except psutil.NoSuchProcess:
                    continue
                total += info.rss
                anon += info.rss - getattr(info, "shared", 0)  # Linux: RssFile + RssShmem
            self.peak_bytes = max(self.peak_bytes, total)
            self.peak_anon_bytes = max(self.peak_anon_bytes, anon)
            self.peak_processes = max(self.peak_processes, len(procs))
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_ingest(
    source: Path | str,
    kind: str,
    lake_url: str,
    args: argparse.Namespace,
    env: Mapping[str, str],
    log_to: Path,
) -> dict[str, Any]:
    """Run ``pipelines.cli ingest --json`` in a fresh subprocess; its report plus wall and memory.

    The child runs under ``/usr/bin/time -f %M``: its ``ru_maxrss`` (the largest process of the
    tree, Dask workers included once reaped). Taking ``ru_maxrss`` of a child forked from this
    process instead would be wrong: Linux carries the forking process's RSS high-water mark over
    ``exec`` into the child's ``ru_maxrss``.

    Raises:
        RuntimeError: The ingest failed (the tail of its stderr is in the message).
    """
    cmd = [
        sys.executable, "-m", "pipelines.cli", "ingest", str(source), "--lake", lake_url,
        "--kind", kind.removesuffix("-s3"), "--cluster", args.cluster,
        "--workers", str(args.workers), "--seed", str(args.seed), "--json",
    ]  # fmt: skip
    out_path, rss_path = log_to.with_suffix(".stdout"), log_to.with_suffix(".maxrss")
    timer = shutil.which("time", path="/usr/bin:/bin")
    wrapped = [timer, "-f", "%M", "-o", str(rss_path), *cmd] if timer else cmd
    with open(out_path, "wb") as out, open(log_to, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            wrapped, cwd=ROOT, env=dict(env), stdout=out, stderr=err, start_new_session=True
        )
        try:
            with TreeSampler(proc.pid) as sampler:
                proc.wait()
        finally:
            if proc.poll() is None:  # interrupted: stop the whole ingest tree, Dask workers too
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
        wall = time.perf_counter() - t0
    if proc.returncode not in (0, 3):  # 3: finished, some input quarantined
        tail = log_to.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"ingest exited with {proc.returncode}: {tail}")
    report = json.loads(out_path.read_text())
    max_process = None
    if timer:
        lines = rss_path.read_text().split()
        max_process = round(int(lines[-1]) / 1024, 1)  # KiB
    return {
        "command": " ".join(["python", *cmd[1:]]),
        "exit_status": proc.returncode,
        "report": report,
        "wall_seconds": round(wall, 2),
        "peak_rss_max_process_mb": max_process,
        "peak_rss_tree_mb": round(sampler.peak_bytes / 2**20, 1),
        "peak_anon_tree_mb": round(sampler.peak_anon_bytes / 2**20, 1),
        "peak_processes": sampler.peak_processes,
    }


def profile(source: Source, n: int) -> dict[str, Any]:
    """Single-core cost per pair of decoding (``read_pair``) and encoding one shard of ``n``."""
    meta = source.metadata()
    rows = list(
        zip(
            meta.column("patch_id").to_pylist()[:n],
            meta.column("s1_name").to_pylist()[:n],
            strict=True,
        )
    )
    t0 = time.perf_counter()
    for pid, s1 in rows:
        source.scan_pair(pid, s1)
    scan = time.perf_counter() - t0
    t0 = time.perf_counter()
    pairs = [source.read_pair(pid, s1) for pid, s1 in rows]
    decode = time.perf_counter() - t0
    stacks: dict[str, list[np.ndarray]] = {}
    for pair in pairs:
        for name, values in pair.stacked().items():
            stacks.setdefault(name, []).append(values)
    arrays: dict[str, np.ndarray] = {k: np.stack(v) for k, v in stacks.items()}
    arrays["patch_id"] = np.array([r[0] for r in rows], dtype=object)
    arrays["s1_name"] = np.array([r[1] for r in rows], dtype=object)
    spec = store_spec(f"memory://bench-ingest-{os.getpid()}-{time.monotonic_ns()}")
    group = create_group(spec, "probe", len(rows), len(rows))
    t0 = time.perf_counter()
    write_block(group, 0, arrays)
    encode = time.perf_counter() - t0
    import fsspec

    fsspec.filesystem("memory").rm(spec.root, recursive=True)
    per_decode, per_encode = 1000 * decode / len(rows), 1000 * encode / len(rows)
    per_scan = 1000 * scan / len(rows)
    return {
        "pairs": len(rows),
        "scan_ms_per_pair": round(per_scan, 2),
        "decode_ms_per_pair": round(per_decode, 2),
        "encode_ms_per_pair": round(per_encode, 2),
        "model_cpu_ms_per_pair": round(per_scan + per_decode + per_encode, 2),
    }


def staging_bytes(source: Source) -> int:
    """Bytes of a tar.zst source's stage: the local LMDB folder, or the packs' recorded sizes."""
    if getattr(source, "uses_packs", False):
        stage = source.packs()  # type: ignore[attr-defined]
        return sum(int((stage.marker(a) or {}).get("staged_bytes", 0)) for a in ARCHIVES.values())
    return dir_bytes(Path(source.staging))  # type: ignore[attr-defined]


def clear_stage(source: Source) -> None:
    """Delete a tar.zst source's stage (the packs of each archive, or the local LMDB)."""
    if getattr(source, "uses_packs", False):
        files = source.packs().files  # type: ignore[attr-defined]
        fs = files.fs()
        for archive in ARCHIVES.values():
            if fs.exists(files.path(archive)):
                fs.rm(files.path(archive), recursive=True)
            source.packs().forget(archive)  # type: ignore[attr-defined]
    else:
        shutil.rmtree(source.staging, ignore_errors=True)  # type: ignore[attr-defined]


def stage_source(source: Source, size: int, args: argparse.Namespace) -> dict[str, Any]:
    """Stage a tar.zst source once per ``--staging-workers`` count; seconds of each run.

    The figure the case keeps (``seconds``) is the run with the ingest's ``--workers`` (else
    the last run).
    """
    runs = []
    for workers in args.staging_workers or [args.workers]:
        clear_stage(source)
        t0 = time.perf_counter()
        with Runner(ClusterSpec(args.cluster, workers=workers)) as runner:
            started = time.perf_counter() - t0
            t1 = time.perf_counter()
            source.prepare(progress=False, runner=runner)
            seconds = time.perf_counter() - t1
        run: dict[str, Any] = {
            "workers": workers,
            "cluster": args.cluster,
            "seconds": round(seconds, 2),
            "cluster_start_seconds": round(started, 2),
            "loadavg": os.getloadavg(),
        }
        if getattr(source, "uses_packs", False):
            stage = source.packs()  # type: ignore[attr-defined]
            markers = {a: stage.marker(a) or {} for a in ARCHIVES.values()}
            run["archives"] = {
                a: {
                    "seconds": m.get("seconds"),
                    "cpu_seconds": m.get("cpu_seconds"),
                    "pid": m.get("staged_by", {}).get("pid"),
                }
                for a, m in markers.items()
            }
            run["where"] = "one task per archive on the cluster's workers"
        else:
            run["where"] = "this process (local archives, local LMDB stage)"
        runs.append(run)
        log(f"staging with {workers} worker(s): {seconds:.1f} s")
    kept = next((r for r in runs if r["workers"] == args.workers), runs[-1])
    return {
        "seconds": kept["seconds"],
        "workers": kept["workers"],
        "by_workers": runs,
        "bytes": staging_bytes(source),
        "bytes_per_pair": round(staging_bytes(source) / size),
        "where": source.staging,  # type: ignore[attr-defined]
        "note": "measured before the ingest on a cluster like its own; the ingest reuses the stage",
    }


def projection(per_core: float, staging_s_per_pair: float | None) -> dict[str, Any]:
    """Hours for all 549,488 pairs on 8, 32 and 128 cores at the measured pairs/s per core.

    Staging (tar.zst) streams each archive once, one task per archive: it is added at the
    seconds per pair measured with ``--workers`` (at most three archives run at once, so more
    cores do not shorten it), on top of the parallel ingest.
    Linear scaling is an assumption: the lake's storage must take the writes
    (``cores x pairs/s per core x ~190 KB``).
    """
    out: dict[str, Any] = {"pairs": FULL_SET_PAIRS, "assumes": "linear scaling from this run"}
    staging_h = 0.0 if staging_s_per_pair is None else staging_s_per_pair * FULL_SET_PAIRS / 3600
    if staging_s_per_pair is not None:
        out["staging_hours"] = round(staging_h, 2)
    for cores in PROJECT_CORES:
        out[f"hours_on_{cores}_cores"] = round(
            FULL_SET_PAIRS / (per_core * cores) / 3600 + staging_h, 2
        )
    return out


def source_spec(args: argparse.Namespace, case: str) -> StoreSpec:
    """Where an ``-s3`` case's source goes on the embedded endpoint."""
    e = args.s3_endpoint
    return store_spec(
        f"s3://lake/src/{case}",
        endpoint_url=e.endpoint_url,
        key=e.key,
        secret=e.secret,
        region=e.region,
        environ={},
    )


# ---------------------------------------------------------------- one case


@contextmanager
def lake_location(
    args: argparse.Namespace, case: str, work: Path
) -> Iterator[tuple[str, StoreSpec, dict[str, str], Path]]:
    """The lake URL, its spec, the environment for the subprocess and the local folder to delete."""
    if args.lake_backend == "file":
        path = work / "lake"
        url = str(path)
        yield url, store_spec(url), dict(os.environ), path
        return
    endpoint = args.s3_endpoint
    url = f"s3://lake/{case}"
    spec = store_spec(
        url,
        endpoint_url=endpoint.endpoint_url,
        key=endpoint.key,
        secret=endpoint.secret,
        region=endpoint.region,
    )
    yield url, spec, {**os.environ, **endpoint.environment()}, args.s3_dir / "lake" / case


def run_case(
    kind: str,
    size: int,
    args: argparse.Namespace,
    geotiff_cache: dict[tuple[int, int], dict[str, int]],
) -> dict[str, Any]:
    """Synthesize, (stage,) ingest, measure and clean up one source kind at one size."""
    case = f"{kind}-{size}"
    work = args.out / case
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    src_dir = work / "source"
    result: dict[str, Any] = {"kind": kind, "patches": size, "loadavg_before": os.getloadavg()}

    fmt = kind.removesuffix("-s3")
    log(f"{case}: synthesizing")
    rep = synthesize(size, src_dir, fmt=fmt, seed=args.seed, progress=False)
    result["synth"] = {
        "seconds": round(rep.seconds, 2),
        "patches_per_second": round(size / rep.seconds, 1),
        "source_bytes": rep.bytes_written,
    }
    log(f"{case}: synth {rep.seconds:.1f} s, {rep.bytes_written / 1e9:.2f} GB")

    key = (size, args.seed)
    if fmt == "folders":
        geo, geo_from = geotiff_bytes_folders(src_dir), "band files"
        geotiff_cache[key] = geo
    elif key in geotiff_cache:
        geo, geo_from = geotiff_cache[key], "folders case of the same size and seed"
    elif fmt == "tar.zst":
        geo, geo_from = geotiff_bytes_tarzst(src_dir), "archive members (uncompressed)"
    else:
        geo, geo_from = {}, "unknown (run the folders case of the same size and seed)"
    result["geotiff"] = {"bytes": sum(geo.values()) or None, "per_array": geo, "from": geo_from}

    where: Path | str = src_dir
    if kind.endswith("-s3"):
        s3 = source_spec(args, case)
        log(f"{case}: uploading the source to {s3.url}")
        filesystem(s3).put(str(src_dir), s3.path(), recursive=True)
        where = s3.url
        source = open_source(where, kind=fmt, store=s3)
    else:
        source = open_source(src_dir, kind=fmt)
    staging = None
    if fmt == "tar.zst":
        log(f"{case}: staging (TarZstSource.prepare on --cluster {args.cluster})")
        result["staging"] = stage_source(source, size, args)
        staging = float(result["staging"]["seconds"])
        log(f"{case}: staging {staging:.1f} s, {result['staging']['bytes'] / 1e6:.1f} MB")

    with lake_location(args, case, work) as (url, spec, env, lake_dir):
        log(f"{case}: ingesting into {url}")
        if kind.endswith("-s3"):
            env = {**env, **args.s3_endpoint.environment()}
        ing = run_ingest(where, kind, url, args, env, work / "ingest.log")
        r = ing["report"]
        ingest_s = float(r["seconds"])
        ing["ingest_seconds"] = round(ingest_s, 2)
        ing["patches_per_second"] = round(r["patches"] / ingest_s, 1)
        ing["patches_per_second_wall"] = round(r["patches"] / ing["wall_seconds"], 1)
        cores = min(args.workers, os.cpu_count() or 1) if args.cluster == "local" else args.workers
        ing["cores"] = cores
        ing["patches_per_second_per_core"] = round(r["patches"] / ingest_s / cores, 2)
        if staging is not None:
            ing["patches_per_second_with_staging"] = round(r["patches"] / (ingest_s + staging), 1)
        result["ingest"] = ing
        result["projection_full_set"] = projection(
            ing["patches_per_second_per_core"], None if staging is None else staging / size
        )
        log(
            f"{case}: ingest {ingest_s:.1f} s ({ing['patches_per_second']} pairs/s), "
            f"peak tree RSS {ing['peak_rss_tree_mb']} MB (anonymous {ing['peak_anon_tree_mb']} MB)"
        )
        sizes = lake_bytes(spec)
        result["lake"] = sizes
        if geo:
            total_geo = sum(geo.values())
            result["ratio"] = {
                "patch_group": round(sizes["patch_group"] / total_geo, 4),
                "total": round(sizes["total"] / total_geo, 4),
                "per_array": {
                    a: round(sizes["per_array"][a] / geo[a], 4) for a in ARRAY_NAMES if geo.get(a)
                },
            }
        if args.profile_pairs:
            log(f"{case}: profiling decode/encode on {args.profile_pairs} pairs")
            result["profile"] = profile(source, args.profile_pairs)
        if not args.keep and args.lake_backend == "s3":
            shutil.rmtree(lake_dir, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


# ---------------------------------------------------------------- driver


def comparisons(cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """tar.zst against folders at each size: ratios of patches/s (above 1: tar.zst faster)."""
    by = {(c["kind"], c["patches"]): c for c in cases if "ingest" in c}
    out = []
    for size in sorted({c["patches"] for c in cases}):
        f, t = by.get(("folders", size)), by.get(("tar.zst", size))
        if f is None or t is None:
            continue
        fi, ti = f["ingest"], t["ingest"]
        out.append({
            "patches": size,
            "folders_patches_per_second": fi["patches_per_second"],
            "tarzst_patches_per_second": ti["patches_per_second"],
            "tarzst_patches_per_second_with_staging": ti["patches_per_second_with_staging"],
            "ratio_ingest_only": round(ti["patches_per_second"] / fi["patches_per_second"], 3),
            "ratio_with_staging": round(
                ti["patches_per_second_with_staging"] / fi["patches_per_second"], 3
            ),
            "tarzst_staging_seconds": t["staging"]["seconds"],
            "tarzst_ingest_seconds": ti["ingest_seconds"],
            "folders_ingest_seconds": fi["ingest_seconds"],
        })  # fmt: skip
    return out


def machine() -> dict[str, Any]:
    """What ran the benchmark."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(
        description="Ingest benchmark: patches/s, peak memory and lake/GeoTIFF bytes per "
        "source kind (JSON on stdout, progress on stderr)."
    )
    ap.add_argument("--sizes", default="2000,20000", help="comma-separated patch counts")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated source kinds")
    ap.add_argument(
        "--lake-backend",
        choices=("file", "s3"),
        default="file",
        help="lake on local disk, or on an embedded S3 endpoint (rclone)",
    )
    ap.add_argument("--cluster", default="local", help="--cluster of lake ingest")
    ap.add_argument("--workers", type=int, default=2, help="--workers of lake ingest")
    ap.add_argument(
        "--staging-workers",
        default="",
        help="comma-separated worker counts to stage each tar.zst case with, one after another "
        "on the same archives (default: --workers)",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of synth and ingest")
    ap.add_argument(
        "--out",
        type=Path,
        default=Path("bench-output/ingest"),
        help="work folder (each case's folder is deleted after it unless --keep)",
    )
    ap.add_argument("--keep", action="store_true", help="keep sources and lakes")
    ap.add_argument("--json-out", type=Path, help="also write the JSON here (after every case)")
    ap.add_argument(
        "--profile-pairs",
        type=int,
        default=256,
        help="pairs of the in-process decode/encode profile (0: skip it)",
    )
    ap.add_argument("--no-real", action="store_true", help="skip the real-sample compression")
    args = ap.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.kinds = [k for k in args.kinds.split(",") if k]
    try:
        args.staging_workers = [int(w) for w in args.staging_workers.split(",") if w]
    except ValueError:
        ap.error(f"--staging-workers {args.staging_workers!r}: give worker counts such as 1,2")
    if any(w < 1 for w in args.staging_workers):
        ap.error(f"--staging-workers {args.staging_workers}: each count must be at least 1")
    bad = [k for k in args.kinds if k not in KINDS]
    if bad:
        ap.error(f"unknown kind(s) {bad}; use {', '.join(KINDS)}")
    args.out = args.out.resolve()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every case; print the JSON document."""
    args = parse_args(argv)
    # SIGTERM (kill PID) unwinds like Ctrl-C, so a running ingest's process group is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    doc: dict[str, Any] = {
        "benchmark": "ingest",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "options": {
            "sizes": args.sizes,
            "kinds": args.kinds,
            "lake_backend": args.lake_backend,
            "cluster": args.cluster,
            "workers": args.workers,
            "staging_workers": args.staging_workers or [args.workers],
            "seed": args.seed,
        },
        "cases": [],
        "skipped": [],
    }

    def save() -> None:
        doc["tar_zst_vs_folders"] = comparisons(doc["cases"])
        if args.json_out:
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(json.dumps(doc, indent=1) + "\n")

    if not args.no_real:
        log("real sample: encoding with lake.codecs")
        doc["real_sample"] = real_sample_compression()
        log(f"real sample: lake/GeoTIFF = {doc['real_sample']['ratio']}")
    args.out.mkdir(parents=True, exist_ok=True)
    server = None
    if args.lake_backend == "s3" or any(k.endswith("-s3") for k in args.kinds):
        from pipelines.local.s3 import EmbeddedS3

        args.s3_dir = args.out / "s3"
        server = EmbeddedS3(args.s3_dir, buckets=["lake"])
        args.s3_endpoint = server.start()
        log(f"embedded S3 at {args.s3_endpoint.endpoint_url}")
    geotiff_cache: dict[tuple[int, int], dict[str, int]] = {}
    try:
        for size in args.sizes:
            for kind in args.kinds:
                need = BYTES_PER_PAIR[kind] * size
                free = shutil.disk_usage(args.out).free
                if free < need * 1.2:
                    reason = f"{kind} x {size}: needs ~{need / 1e9:.1f} GB, {free / 1e9:.1f} free"
                    doc["skipped"].append(reason)
                    log(f"skipped: {reason}")
                    continue
                try:
                    doc["cases"].append(run_case(kind, size, args, geotiff_cache))
                except (RuntimeError, OSError) as exc:
                    doc["skipped"].append(f"{kind} x {size}: failed: {exc}")
                    log(f"{kind} x {size} failed: {exc}")
                save()
    finally:
        if server is not None:
            server.stop()
    save()
    print(json.dumps(doc, indent=1))
    return 1 if not doc["cases"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The loader against its peers: one epoch of the same pairs from the same S3 endpoint.

Usage::

    make bench-deps   # LitData, MosaicML Streaming, WebDataset (benchmarks/requirements-peers.txt)
    python benchmarks/loader.py [--pairs 10000] [--batch-size 64] [--workers 2]
        [--formats lake,lake1p,litdata,mds,mds_block,wds,geotiff] [--latency-ms 0,20]
        [--out DIR] [--keep]
        [--json-out FILE]

What it does:

1. **data**: ``lake synth`` writes ``--pairs`` synthetic pairs as official GeoTIFF folders
   (real patch ids and georeferencing); ``lake ingest`` builds our lake from them. Every peer is
   then written *by its own writer* from the same arrays (read back from the lake, native dtypes:
   S2 uint16, S1 float32) plus the 19-class multi-hot and the patch id:
   LitData chunks (``litdata.optimize``), MosaicML MDS shards (``MDSWriter``), WebDataset tar
   shards (``ShardWriter``, ``.npy`` members), and the naive layout: the GeoTIFF-per-band folders
   themselves with ``metadata.parquet``. Peers use their default shard sizes and no compression
   (their defaults); sizes are reported.
2. **serve**: all five live in one bucket of the embedded S3 endpoint (``rclone serve s3`` on
   loopback). With ``--latency-ms 20`` the clients instead talk to
   :class:`tests.support.fault_proxy.FaultProxy`, which waits 20 ms before forwarding each request
   (the first-byte latency of real S3 that loopback hides).
3. **raw ceiling**: parallel GETs (16 in flight, s3fs) of every shard object of our lake's
   arrays that the loader reads, no decode: MB/s.
4. **epoch**: for each format, a fresh subprocess runs one epoch through a PyTorch
   ``DataLoader`` (same batch size and workers, shuffled, every sample delivered as float32
   tensors ``s2_10m (4,120,120)``, ``s2_20m (6,60,60)``, ``s1 (2,120,120)`` and ``labels (19,)``).
   Our lake runs twice: ``lake`` (``LakeDataLoader`` with ``--workers`` worker processes) and
   ``lake1p`` (no worker processes: the dataset's threads fetch and decode in the training
   process); both deliver native dtypes (``dtype="native"``) that the epoch loop turns into
   float32 with ``lake.loader.to_device(batch, "cpu")`` inside the timed loop, where a GPU
   trainer would do it on the device.
   Reported: samples/s, MB/s (bytes of the format's objects read / epoch seconds), time to the
   first batch (from creating the dataset), peak RSS (sum over the process tree, sampled every
   0.1 s), CPU seconds per 1,000 samples (user + system of the subprocess and its reaped
   DataLoader workers, from ``wait4``), and the count of distinct patch ids delivered (must be
   ``--pairs``). For our lake also the time to the next batch after a mid-epoch resume
   (``state_dict`` after 5 batches, then a fresh loader from ``load_state_dict``).
   Each epoch's first batch is checked against the lake's own values (pixels and labels).
   Cores in use over the epoch: the loader's (its CPU / wall), the serving side's (the
   endpoint and this process, which runs the proxy and the ceiling) and the machine's (all
   busy cores, from ``/proc/stat``): where the machine is full, a faster loader needs a faster
   CPU, not a better design.
   MosaicML Streaming runs twice: ``mds`` with its defaults, and ``mds_block`` with
   ``shuffle_block_size`` set to the lake's shuffle window (4 shards of pairs), the same number
   of samples mixed at a time. Its default block (262,144 samples) is larger than the epoch
   here, so the first batch waits for most of the epoch to download and the rest comes from
   the local cache; ``mds_block`` measures it streaming.

JSON goes to stdout (and ``--json-out``); progress to stderr. Ratios are against the best peer
of the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORMATS = ("lake", "lake1p", "litdata", "mds", "mds_block", "wds", "geotiff")
#: Our loader: 2 DataLoader workers, and in one process (no forked workers, decode threads).
LAKES = ("lake", "lake1p")
PEERS = ("litdata", "mds", "mds_block", "wds", "geotiff")
#: Formats read from another format's stored data (a peer configured another way).
STORED_AS = {"mds_block": "mds"}
#: MosaicML Streaming, whose epoch leaves whole shards in a local cache (checked afterwards).
MDS = ("mds", "mds_block")
RASTERS = ("s2_10m", "s2_20m", "s1")
BUCKET = "bench"
RELEASE = "v1"
SHAPES = {"s2_10m": (4, 120, 120), "s2_20m": (6, 60, 60), "s1": (2, 120, 120)}
DTYPES = {"s2_10m": "uint16", "s2_20m": "uint16", "s1": "float32"}
RESUME_AFTER = 5  # batches before the state is taken in the resume measurement


def log(msg: str) -> None:
    print(f"[loader-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# data: our lake, then each peer written by its own writer from the lake's arrays
# --------------------------------------------------------------------------------------------


def lake_blocks(lake_dir: Path) -> Iterator[dict[str, Any]]:
    """The lake's samples in storage order, one shard at a time (native dtypes)."""
    import lake
    from lake.bigearthnet import multi_hot

    rel = lake.open_lake(str(lake_dir)).release(RELEASE)
    group = rel.group
    table = rel.patches(columns=["patch_id", "labels"]).to_pydict()
    labels = dict(zip(table["patch_id"], table["labels"], strict=True))
    n = group["s2_10m"].shape[0]
    per = int(group["s2_10m"].shards[0])
    for start in range(0, n, per):
        stop = min(n, start + per)
        ids = [str(p) for p in group["patch_id"][start:stop]]
        yield {
            "patch_id": ids,
            **{m: np.asarray(group[m][start:stop]) for m in RASTERS},
            "labels": np.stack([multi_hot(labels[p]) for p in ids]).astype(np.float32),
        }


def lake_samples(lake_dir: Path) -> Iterator[dict[str, Any]]:
    for block in lake_blocks(lake_dir):
        for k, pid in enumerate(block["patch_id"]):
            yield {
                "patch_id": pid,
                **{m: block[m][k] for m in RASTERS},
                "labels": block["labels"][k],
            }


def _litdata_shard(start: int, lake_dir: str, per: int) -> Iterator[dict[str, Any]]:
    """``litdata.optimize``'s function: the samples of one lake shard (module level: picklable)."""
    import lake
    from lake.bigearthnet import multi_hot

    rel = lake.open_lake(lake_dir).release(RELEASE)
    g = rel.group
    stop = min(g["s2_10m"].shape[0], start + per)
    ids = [str(p) for p in g["patch_id"][start:stop]]
    labels = dict(
        zip(
            *rel.patches(columns=["patch_id", "labels"]).to_pydict().values(),
            strict=True,
        )
    )
    arrays = {m: np.asarray(g[m][start:stop]) for m in RASTERS}
    for k, pid in enumerate(ids):
        yield {
            "patch_id": pid,
            **{m: arrays[m][k] for m in RASTERS},
            "labels": multi_hot(labels[pid]).astype(np.float32),
        }


def write_litdata(lake_dir: Path, out: Path, workers: int) -> None:
    import functools

    from litdata import optimize

    import lake

    g = lake.open_lake(str(lake_dir)).release(RELEASE).group
    n, per = g["s2_10m"].shape[0], int(g["s2_10m"].shards[0])
    optimize(
        fn=functools.partial(_litdata_shard, lake_dir=str(lake_dir), per=per),
        inputs=list(range(0, n, per)),
        output_dir=str(out),
        chunk_bytes="64MB",
        num_workers=workers,
        mode="overwrite",
    )


def import_mds() -> types.ModuleType:
    """``streaming.base`` without ``streaming/__init__``.

    mosaicml-streaming's package ``__init__`` imports ``streaming.vision``, which needs
    torchvision; PyPI's torchvision cannot load beside this machine's torch 2.13.0 CPU wheel.
    The MDS writer and dataset live in ``streaming.base`` and do not need it.
    """
    if "streaming" not in sys.modules:
        spec = importlib.util.find_spec("streaming")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("mosaicml-streaming is not installed: run `make bench-deps`")
        pkg = types.ModuleType("streaming")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["streaming"] = pkg
    import streaming.base

    return streaming.base


def write_mds(lake_dir: Path, out: Path) -> None:
    mds = import_mds()
    columns = {
        "patch_id": "str",
        **{m: f"ndarray:{DTYPES[m]}:{','.join(map(str, SHAPES[m]))}" for m in RASTERS},
        "labels": "ndarray:float32:19",
    }
    with mds.MDSWriter(out=str(out), columns=columns) as writer:
        for sample in lake_samples(lake_dir):
            writer.write(sample)


def write_wds(lake_dir: Path, out: Path) -> None:
    import webdataset as wds

    out.mkdir(parents=True)
    with wds.ShardWriter(str(out / "shard-%06d.tar"), maxsize=64e6, verbose=0) as sink:
        for s in lake_samples(lake_dir):
            sink.write(
                {
                    "__key__": s["patch_id"],
                    **{f"{m}.npy": s[m] for m in RASTERS},
                    "labels.npy": s["labels"],
                }
            )


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def prepare(base: Path, pairs: int, workers: int) -> dict[str, Any]:
    """Write the source, the lake and every peer under ``base/s3/bench`` (the served bucket)."""
    bucket = base / "s3" / BUCKET
    done = base / "prepared.json"
    if done.exists():
        info = json.loads(done.read_text())
        if info.get("pairs") == pairs:
            log(f"reusing the data in {base}")
            return info
        raise SystemExit(f"{base} holds data for {info.get('pairs')} pairs, not {pairs}: use --out")
    bucket.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> None:
        t = time.perf_counter()
        fn()
        timings[name] = round(time.perf_counter() - t, 1)
        log(f"{name}: {timings[name]} s")

    geotiff = bucket / "geotiff"
    timed(
        "synth",
        lambda: subprocess.run(
            [
                py,
                "-m",
                "pipelines.cli",
                "synth",
                "--out",
                str(geotiff),
                "--patches",
                str(pairs),
                "--format",
                "folders",
                "--no-text",
                "--json",
            ],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        ),
    )
    lake_dir = bucket / "lake"
    timed(
        "ingest",
        lambda: subprocess.run(
            [
                py,
                "-m",
                "pipelines.cli",
                "ingest",
                str(geotiff),
                "--lake",
                str(lake_dir),
                "--release",
                RELEASE,
                "--workers",
                str(workers),
                "--json",
            ],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        ),
    )
    timed("litdata", lambda: write_litdata(lake_dir, bucket / "litdata", workers))
    timed("mds", lambda: write_mds(lake_dir, bucket / "mds"))
    timed("wds", lambda: write_wds(lake_dir, bucket / "wds"))
    sizes = {f: dir_bytes(bucket / f) for f in FORMATS if f not in LAKES[1:]}
    import lake as lake_pkg

    group = lake_pkg.open_lake(str(lake_dir)).release(RELEASE).group
    sizes["lake_read"] = sum(dir_bytes(lake_dir / f"patches/{RELEASE}.zarr/{m}") for m in RASTERS)
    info = {
        "pairs": pairs,
        "write_s": timings,
        "bytes": sizes,
        "samples_per_shard": int(group["s2_10m"].shards[0]),
    }
    done.write_text(json.dumps(info))
    return info


# --------------------------------------------------------------------------------------------
# the five datasets (built inside the epoch subprocess)
# --------------------------------------------------------------------------------------------


def to_sample(pid: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The delivered sample, the same for every format: float32 tensors and the patch id."""
    import torch

    out: dict[str, Any] = {"patch_id": pid}
    for m in (*RASTERS, "labels"):
        values = np.array(arrays[m], dtype=np.float32, copy=None).reshape(SHAPES.get(m, (19,)))
        out[m] = torch.from_numpy(values if values.flags.writeable else values.copy())
    return out


class S3Env:
    """Where the bucket is served and how to sign for it (from the parent's environment)."""

    def __init__(self) -> None:
        self.endpoint = os.environ["BENCH_ENDPOINT"]
        self.key = os.environ["AWS_ACCESS_KEY_ID"]
        self.secret = os.environ["AWS_SECRET_ACCESS_KEY"]
        self.region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")


def lake_loader(
    env: S3Env, args: argparse.Namespace, in_process: bool = False
) -> tuple[Any, Callable[[], Any]]:
    """``LakeDataLoader`` delivering native dtypes; the epoch loop makes them float32 with
    ``to_device(batch, "cpu")`` (counted in its time), as a GPU trainer would on the device.

    ``in_process``: no worker processes; the dataset's own threads fetch (``max_in_flight``)
    and decode (``decode_threads`` = the workers' count) in the training process.
    """
    from lake.config import store_spec
    from lake.loader import LakeDataLoader, LakeDataset, ReadOptions

    spec = store_spec(
        f"s3://{BUCKET}/lake",
        endpoint_url=env.endpoint,
        key=env.key,
        secret=env.secret,
        region=env.region,
        environ={},
    )

    def make(state: dict[str, Any] | None = None) -> Any:
        read = ReadOptions(decode_threads=max(2, args.workers)) if in_process else None
        ds = LakeDataset(
            spec,
            modalities=[*RASTERS, "labels"],
            shuffle=True,
            seed=0,
            dtype="native",
            read=read,
        )
        workers = 0 if in_process else args.workers
        dl = LakeDataLoader(ds, batch_size=args.batch_size, num_workers=workers)
        if state is not None:
            dl.load_state_dict(state)
        return dl

    # A resume builds its own loader from the saved state (resume_main), and only that one.
    return (None if args.resume_state is not None else make()), make


def litdata_loader(env: S3Env, args: argparse.Namespace, cache: Path) -> Any:
    from litdata import StreamingDataLoader, StreamingDataset

    _obstore_allow_http()

    class Dataset(StreamingDataset):  # type: ignore[misc]
        def __getitem__(self, index: Any) -> dict[str, Any]:
            item = super().__getitem__(index)
            return to_sample(item["patch_id"], item)

    ds = Dataset(
        f"s3://{BUCKET}/litdata",
        cache_dir=str(cache),
        shuffle=True,
        seed=0,
        storage_options={
            "endpoint_url": env.endpoint,
            "aws_access_key_id": env.key,
            "aws_secret_access_key": env.secret,
            "region_name": env.region,
        },
    )
    return StreamingDataLoader(ds, batch_size=args.batch_size, num_workers=args.workers)


def _obstore_allow_http() -> None:
    """Let LitData's obstore client talk to a plain-http endpoint.

    LitData fetches chunks with obstore when it is installed (its fastest path), but builds the
    ``S3Store`` without ``client_options={"allow_http": True}``, which an ``http://`` endpoint
    needs (obstore refuses it with "builder error"); without obstore it would fall back to
    single-threaded boto3 downloads. We add the option rather than take LitData off its best path.
    """
    import obstore.store

    original = obstore.store.S3Store

    def s3_store(*args: Any, client_options: dict[str, Any] | None = None, **kw: Any) -> Any:
        return original(*args, client_options={**(client_options or {}), "allow_http": True}, **kw)

    obstore.store.S3Store = s3_store  # type: ignore[misc]


def mds_loader(
    env: S3Env, args: argparse.Namespace, cache: Path, shuffle_block: int | None = None
) -> Any:
    """MosaicML Streaming with its defaults, or with ``shuffle_block_size=shuffle_block``.

    Its default shuffle block, ``max(4_000_000 // num_canonical_nodes, 1 << 18)`` samples, is
    larger than the benchmark's epoch: every batch then draws from every shard, so the first
    batch waits while most of the epoch is downloaded to the local cache. ``mds_block`` sets the
    block to the lake's shuffle window (the same number of samples mixed at a time), which
    measures it streaming.
    """
    from torch.utils.data import DataLoader

    mds = import_mds()
    os.environ["S3_ENDPOINT_URL"] = env.endpoint
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()  # what MosaicML advises after an interrupted run

    class Dataset(mds.StreamingDataset):  # type: ignore[misc, name-defined]
        def __getitem__(self, index: int) -> dict[str, Any]:
            item = super().__getitem__(index)
            return to_sample(item["patch_id"], item)

    ds = Dataset(
        remote=f"s3://{BUCKET}/mds",
        local=str(cache),
        shuffle=True,
        shuffle_seed=0,
        batch_size=args.batch_size,
        **({"shuffle_block_size": shuffle_block} if shuffle_block else {}),
    )
    _forget_s3_clients(ds)
    return DataLoader(ds, batch_size=args.batch_size, num_workers=args.workers)


def _forget_s3_clients(ds: Any) -> None:
    """Drop the boto3 clients a MosaicML dataset made in this process before workers fork.

    The dataset downloads ``index.json`` in the process that builds it, and its downloader keeps
    that boto3 client, with the kept-alive connection in its pool. Forked DataLoader workers
    inherit the client and so the one socket: two workers then read each other's response
    bytes. Here that gave shards with 8 KiB of the first part missing and the rest shifted
    (then a ``UnicodeDecodeError`` in MDS decoding), or a GET waiting out botocore's 60 s read
    timeout for the bytes another worker took (the 61 s first batches of earlier runs). After
    this, each worker builds its own client on first use (``clean_up`` is MosaicML's own reset,
    which it calls between download retries).
    """
    for stream in ds.streams:
        downloader = getattr(stream, "_downloader", None)
        if downloader is not None:
            downloader.clean_up()


def wds_loader(env: S3Env, args: argparse.Namespace) -> Any:
    import webdataset as wds

    from pipelines.local.s3 import rclone_binary

    # The usual way to read WebDataset shards from S3: a `pipe:` URL through an S3 CLI
    # (`aws s3 cp` in WebDataset's docs; rclone here, configured for this endpoint).
    os.environ.update(
        RCLONE_CONFIG_BENCH_TYPE="s3",
        RCLONE_CONFIG_BENCH_PROVIDER="Other",
        RCLONE_CONFIG_BENCH_ENDPOINT=env.endpoint,
        RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=env.key,
        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=env.secret,
        RCLONE_CONFIG_BENCH_REGION=env.region,
    )
    shards = json.loads(os.environ["BENCH_WDS_SHARDS"])
    urls = [f"pipe:{rclone_binary()} cat bench:{BUCKET}/wds/{s}" for s in shards]

    def convert(s: dict[str, Any]) -> dict[str, Any]:
        return to_sample(s["__key__"], {m: s[f"{m}.npy"] for m in (*RASTERS, "labels")})

    ds = (
        wds.WebDataset(
            urls,
            shardshuffle=len(urls),
            seed=0,
            workersplitter=wds.split_by_worker,
            nodesplitter=wds.single_node_only,
            empty_check=False,
        )
        .shuffle(1000)
        .decode()
        .map(convert)
        .batched(args.batch_size, partial=True)
    )
    return wds.WebLoader(ds, batch_size=None, num_workers=args.workers)


class GeoTiffDataset:
    """The naive layout: one GeoTIFF per band on S3, fetched together per pair, decoded."""

    def __init__(self, env: S3Env, rows: list[tuple[str, list[str], list[str]]]) -> None:
        self.env = env
        self.rows = rows
        self._fs: Any = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.rows)

    def fs(self) -> Any:
        if self._pid != os.getpid():  # one client per process (s3fs is not fork-safe)
            import s3fs

            self._fs = s3fs.S3FileSystem(
                key=self.env.key,
                secret=self.env.secret,
                skip_instance_cache=True,
                client_kwargs={"endpoint_url": self.env.endpoint, "region_name": self.env.region},
                config_kwargs={
                    "request_checksum_calculation": "when_required",
                    "response_checksum_validation": "when_required",
                },
            )
            self._pid = os.getpid()
        return self._fs

    def __getitem__(self, i: int) -> dict[str, Any]:
        import tifffile

        from lake.bigearthnet import ARRAYS, multi_hot

        pid, files, labels = self.rows[i]
        blobs = self.fs().cat(files)  # all band files of the pair in flight together
        planes = [tifffile.imread(__import__("io").BytesIO(blobs[f])) for f in files]
        arrays: dict[str, Any] = {}
        k = 0
        for spec in ARRAYS:
            if spec.name in RASTERS:
                nb = len(spec.bands)
                arrays[spec.name] = np.stack(planes[k : k + nb])
                k += nb
        arrays["labels"] = multi_hot(labels)
        return to_sample(pid, arrays)


def geotiff_loader(env: S3Env, args: argparse.Namespace) -> Any:
    import pyarrow.parquet as pq
    import s3fs
    from torch.utils.data import DataLoader

    from lake.bigearthnet import ARRAYS
    from lake.names import pair_files

    fs = s3fs.S3FileSystem(
        key=env.key,
        secret=env.secret,
        skip_instance_cache=True,
        client_kwargs={"endpoint_url": env.endpoint, "region_name": env.region},
    )
    with fs.open(f"{BUCKET}/geotiff/metadata.parquet", "rb") as f:
        meta = pq.read_table(f, columns=["patch_id", "s1_name", "labels"]).to_pylist()
    del fs
    bands = [b for spec in ARRAYS if spec.name in RASTERS for b in spec.bands]
    rows = []
    for r in meta:
        files = pair_files(r["patch_id"], r["s1_name"])
        rows.append((r["patch_id"], [f"{BUCKET}/geotiff/{files[b]}" for b in bands], r["labels"]))
    return DataLoader(
        GeoTiffDataset(env, rows),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        generator=__import__("torch").Generator().manual_seed(0),
    )


# --------------------------------------------------------------------------------------------
# one epoch (in a fresh subprocess) and its measurement from the parent
# --------------------------------------------------------------------------------------------


def check_batch(batch: dict[str, Any], truth: dict[str, dict[str, np.ndarray]]) -> int:
    """Compare a batch with the lake's values; return how many samples were checked."""
    n = 0
    for k, pid in enumerate(batch["patch_id"]):
        want = truth.get(pid)
        if want is None:
            continue
        for m in (*RASTERS, "labels"):
            got = batch[m][k].numpy()
            if not np.array_equal(got, want[m].astype(np.float32)):
                raise SystemExit(f"{pid}: {m} differs from the lake's values")
        n += 1
    return n


def _import_for(fmt: str) -> None:
    """Import what a format's loader needs before the clock starts (imports are not I/O).

    pandas for every format: pyarrow imports it at its first ``pa.array`` (0.3 s cold), which
    the lake's open makes, and a training script has usually imported it anyway.
    """
    import pandas  # noqa: F401
    import torch.utils.data  # noqa: F401

    if fmt in LAKES:
        import s3fs  # its client, as for the naive layout below

        import lake.loader.dataset
        import lake.loader.device  # noqa: F401
    elif fmt == "litdata":
        import litdata  # noqa: F401
    elif fmt in MDS:
        import_mds()
    elif fmt == "wds":
        import webdataset  # noqa: F401
    else:
        import s3fs  # noqa: F401
        import tifffile  # noqa: F401


def epoch_main(args: argparse.Namespace) -> None:
    """Child: one epoch of one format; prints one JSON line."""
    env = S3Env()
    fmt = args.epoch
    # Made, checked and removed by the parent (run_epoch); a temporary one when run by hand.
    cache = args.cache or Path(tempfile.mkdtemp(prefix=f"bench-{fmt}-"))
    truth_ids = json.loads(os.environ.get("BENCH_TRUTH", "{}"))
    _import_for(fmt)
    truth = _truth(truth_ids) if truth_ids else {}  # read before the clock starts
    t0 = time.perf_counter()
    make = None
    if fmt in LAKES:
        loader, make = lake_loader(env, args, in_process=fmt == "lake1p")
    elif fmt == "litdata":
        loader = litdata_loader(env, args, cache)
    elif fmt == "mds":
        loader = mds_loader(env, args, cache)
    elif fmt == "mds_block":
        loader = mds_loader(env, args, cache, int(os.environ["BENCH_SHUFFLE_BLOCK"]))
    elif fmt == "wds":
        loader = wds_loader(env, args)
    else:
        loader = geotiff_loader(env, args)
    if args.resume_state is not None:  # the second half of the resume measurement
        return resume_main(args, make, t0)
    seen: set[str] = set()
    n = 0
    first = None
    checked = 0
    deadline = t0 + args.time_limit
    if fmt in LAKES:
        from lake.loader import to_device

        loader = _on_device(loader, to_device)
    for i, batch in enumerate(loader):
        if first is None:
            first = time.perf_counter() - t0
        ids = list(batch["patch_id"])
        n += len(ids)
        seen.update(ids)
        if truth and checked < 8:
            checked += check_batch(batch, truth)
        if args.save_state is not None and i + 1 == RESUME_AFTER:
            import torch

            torch.save(loader.state_dict(), args.save_state)
            break
        if time.perf_counter() > deadline:
            break
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "format": fmt,
                "samples": n,
                "distinct": len(seen),
                "seconds": seconds,
                "first_batch_s": first,
                "checked": checked,
            }
        ),
        flush=True,
    )


class _on_device:  # noqa: N801 (a thin iterable wrapper)
    """The loader's batches moved "to the device" (the CPU here): float32 rasters, as delivered
    by every peer; keeps ``state_dict`` reachable for the resume measurement."""

    def __init__(self, loader: Any, move: Callable[..., Any]) -> None:
        self.loader, self.move = loader, move

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            yield self.move(batch, "cpu")

    def state_dict(self) -> Any:
        return self.loader.state_dict()


def resume_main(args: argparse.Namespace, make: Any, t0: float) -> None:
    """Child: a fresh process resumes from a saved state; time to its first batch."""
    import torch

    state = torch.load(args.resume_state, weights_only=False)
    from lake.loader import to_device

    loader = make(state)
    batches = iter(loader)  # kept: dropping it would stop the workers inside the timed part
    batch = to_device(next(batches), "cpu")
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "resume_next_batch_s": seconds,
                "next_batch_samples": len(batch["patch_id"]),
            }
        ),
        flush=True,
    )


_TRUTH: dict[str, dict[str, np.ndarray]] = {}


def _truth(spec: dict[str, str]) -> dict[str, dict[str, np.ndarray]]:
    """The lake's own values of a few pairs (read once per process from the local lake)."""
    if not _TRUTH:
        import lake
        from lake.bigearthnet import multi_hot

        rel = lake.open_lake(spec["lake"]).release(RELEASE)
        table = rel.patches(columns=["patch_id", "labels"]).to_pydict()
        labels = dict(zip(table["patch_id"], table["labels"], strict=True))
        for pid in spec["ids"]:
            k = rel.sample_index[pid]
            _TRUTH[pid] = {m: np.asarray(rel.group[m][k]) for m in RASTERS}
            _TRUTH[pid]["labels"] = multi_hot(labels[pid])
    return _TRUTH


def _differing(cache: Path, stored: Path) -> list[str]:
    """The files of a peer's local cache whose bytes differ from the stored objects."""
    import filecmp

    return sorted(
        f.name
        for f in cache.iterdir()
        if f.is_file()
        and (stored / f.name).is_file()
        and not filecmp.cmp(f, stored / f.name, shallow=False)
    )


def _cpu_s(procs: Sequence[psutil.Process]) -> float:
    """CPU seconds (user + system) of ``procs`` so far."""
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _idle_s() -> float:
    """Seconds every core of the machine has spent idle (or waiting for I/O) so far."""
    t = psutil.cpu_times()
    return t.idle + getattr(t, "iowait", 0.0)


def run_epoch(
    fmt: str,
    args: argparse.Namespace,
    env: dict[str, str],
    extra: tuple[str, ...] = (),
    serving: Sequence[psutil.Process] = (),
    bucket: Path | None = None,
) -> dict[str, Any]:
    """Parent: run one epoch in a subprocess; sample its tree's RSS; CPU from ``wait4``.

    ``serving``: the processes that serve the epoch (the S3 endpoint, and this process, which
    runs the latency proxy); their CPU over the epoch is reported beside the loader's, with the
    machine's busy cores, so a reader sees whether the CPU left the loader room to go faster.
    ``bucket``: the served folder; MosaicML's local cache is compared with its objects there
    after the epoch (outside the child's CPU count). The cache folder is made here and always
    removed here, so an epoch that crashes leaves nothing behind.
    """
    cache = Path(tempfile.mkdtemp(prefix=f"bench-{fmt}-"))
    try:
        return _run_epoch(fmt, args, env, extra, serving, bucket, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _run_epoch(
    fmt: str,
    args: argparse.Namespace,
    env: dict[str, str],
    extra: tuple[str, ...],
    serving: Sequence[psutil.Process],
    bucket: Path | None,
    cache: Path,
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--epoch",
        fmt,
        "--batch-size",
        str(args.batch_size),
        "--workers",
        str(args.workers),
        "--time-limit",
        str(args.time_limit),
        "--cache",
        str(cache),
        *extra,
    ]
    t = time.perf_counter()
    idle0, serve0 = _idle_s(), _cpu_s(serving)
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.PIPE, cwd=ROOT)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            p = psutil.Process(proc.pid)
            while not stop.is_set():
                try:
                    tree = [p, *p.children(recursive=True)]
                    peak = max(peak, sum(q.memory_info().rss for q in tree if q.is_running()))
                except psutil.Error:
                    pass
                stop.wait(0.1)
        except psutil.Error:
            pass

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    idle, serve = _idle_s() - idle0, _cpu_s(serving) - serve0
    proc.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    th.join()
    if proc.returncode != 0:
        return {"format": fmt, "error": f"exit {proc.returncode}"}
    res = json.loads(out.decode().strip().splitlines()[-1])
    if fmt in MDS and bucket is not None and "samples" in res:
        res["cache_files_differing"] = _differing(cache, bucket / STORED_AS.get(fmt, fmt))
    if "samples" not in res:
        return res
    cpu = usage.ru_utime + usage.ru_stime
    res["wall_s"] = wall
    res["peak_rss_mb"] = round(peak / 2**20)
    res["cpu_s_per_1000"] = round(cpu / res["samples"] * 1000, 2)
    # Cores in use over the epoch's process lifetime: the loader's, the serving side's (endpoint
    # + proxy) and the whole machine's (these plus anything else running).
    res["loader_cores"] = round(cpu / wall, 2)
    if serving:
        res["serving_cores"] = round(serve / wall, 2)
    res["machine_busy_cores"] = round(max(0.0, (psutil.cpu_count() or 1) - idle / wall), 2)
    return res


def resume_probe(
    args: argparse.Namespace, env: dict[str, str], base: Path, fmt: str = "lake"
) -> dict[str, Any]:
    """Resume in a fresh process from the state after ``RESUME_AFTER`` batches."""
    state = base / "resume-state.pt"
    run_epoch(fmt, args, env, ("--save-state", str(state)))
    res = run_epoch(fmt, args, env, ("--resume-state", str(state)))
    state.unlink(missing_ok=True)
    return {"resume_next_batch_s": res.get("resume_next_batch_s")}


def raw_ceiling(
    endpoint: str, key: str, secret: str, base: Path, threads: int = 16
) -> dict[str, Any]:
    """Parallel GETs of every shard object the loader reads (no decode): MB/s.

    The ceiling is s3fs with one GET per object (``max_concurrency=1``: by default s3fs sends a
    HEAD before each whole-object GET, which doubles the round trips; the loader does not).
    obstore (the Rust ``object_store`` client) reads the same objects for comparison when it is
    installed (``obstore`` in the result).
    """
    import s3fs

    lake_dir = base / "s3" / BUCKET / "lake"
    paths = sorted(
        f"{BUCKET}/{p.relative_to(base / 's3' / BUCKET).as_posix()}"
        for m in RASTERS
        for p in (lake_dir / f"patches/{RELEASE}.zarr/{m}/c").rglob("*")
        if p.is_file()
    )
    fs = s3fs.S3FileSystem(
        key=key,
        secret=secret,
        skip_instance_cache=True,
        client_kwargs={"endpoint_url": endpoint},
        config_kwargs={
            "max_pool_connections": threads + 4,
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        },
    )

    def timed(get: Callable[[str], bytes]) -> dict[str, Any]:
        t = time.perf_counter()
        with ThreadPoolExecutor(threads) as ex:
            nbytes = sum(len(b) for b in ex.map(get, paths))
        s = time.perf_counter() - t
        return {
            "objects": len(paths),
            "MB": round(nbytes / 1e6, 1),
            "seconds": round(s, 2),
            "MB_s": round(nbytes / s / 1e6, 1),
        }

    out = timed(lambda p: fs.cat_file(p, max_concurrency=1))
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError:
        return out
    store = S3Store(
        BUCKET,
        endpoint=endpoint,
        access_key_id=key,
        secret_access_key=secret,
        region="us-east-1",
        client_options={"allow_http": True},
    )
    prefix = f"{BUCKET}/"
    out["obstore"] = timed(lambda p: bytes(obstore.get(store, p[len(prefix) :]).bytes()))
    return out


def _stored_bytes(sizes: dict[str, int], fmt: str) -> int:
    """The bytes a format's epoch reads (the lake: the shard objects of the rasters it loads)."""
    return sizes["lake_read"] if fmt in LAKES else sizes[STORED_AS.get(fmt, fmt)]


def summarise(
    results: list[dict[str, Any]],
    sizes: dict[str, int],
    ceiling: dict[str, Any],
    pairs: int,
    batch: int = 64,
) -> dict[str, Any]:
    rows = {}
    for r in results:
        if "error" in r:
            rows[r["format"]] = r
            continue
        nbytes = _stored_bytes(sizes, r["format"])
        nbytes = nbytes * min(1.0, r["samples"] / pairs)  # a timed-out epoch read a part
        rows[r["format"]] = {
            "samples": r["samples"],
            "seconds": round(r["seconds"], 2),
            "samples_s": round(r["samples"] / r["seconds"], 1),
            # After the first batch: the streaming rate without the start-up.
            "steady_samples_s": round(
                max(0, r["samples"] - batch) / max(1e-9, r["seconds"] - r["first_batch_s"]), 1
            ),
            "MB_s": round(nbytes / r["seconds"] / 1e6, 1),
            "first_batch_s": round(r["first_batch_s"], 2),
            "peak_rss_mb": r["peak_rss_mb"],
            "cpu_s_per_1000": r["cpu_s_per_1000"],
            **{k: r[k] for k in ("loader_cores", "serving_cores", "machine_busy_cores") if k in r},
            "complete": r["distinct"] == pairs,
            "values_checked": r["checked"],
            "failed_tries": r.get("failed_tries", 0),
            **(
                {"cache_files_differing": r["cache_files_differing"]}
                if "cache_files_differing" in r
                else {}
            ),
            **(
                {"resume_next_batch_s": round(r["resume_next_batch_s"], 2)}
                if r.get("resume_next_batch_s") is not None
                else {}
            ),
        }
    out: dict[str, Any] = {"formats": rows, "raw_ceiling": ceiling}
    for key in ("samples_s", "steady_samples_s"):
        ok_peers = [rows[f][key] for f in PEERS if f in rows and key in rows[f]]
        for lake in LAKES:
            if lake in rows and key in rows[lake] and ok_peers:
                out.setdefault(f"{lake}_vs_best_peer", {})[key] = round(
                    rows[lake][key] / max(ok_peers), 2
                )
    for lake in LAKES:
        if lake in rows and "MB_s" in rows[lake]:
            share = round(rows[lake]["MB_s"] / ceiling["MB_s"], 2)
            out[f"{lake}_share_of_ceiling"] = share
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pairs", type=int, default=10_000, help="synthetic pairs (default 10,000)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers (and writers)")
    ap.add_argument("--formats", default=",".join(FORMATS), help="comma-separated subset")
    ap.add_argument("--latency-ms", default="0,20", help="runs: added first-byte latency, ms")
    ap.add_argument("--out", type=Path, default=None, help="data folder (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the data folder")
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument(
        "--time-limit",
        type=float,
        default=180.0,
        help="stop an epoch after this many seconds and report the rate so far (default 180)",
    )
    ap.add_argument(
        "--retries", type=int, default=2, help="reruns of an epoch that fails (default 2)"
    )
    ap.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="print the tables of an earlier --json-out file as Markdown, and exit",
    )
    ap.add_argument("--epoch", choices=FORMATS, help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--save-state", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--resume-state", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.epoch:
        return epoch_main(args)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return None
    formats = [f for f in args.formats.split(",") if f]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        ap.error(f"--formats: unknown {bad}; use {','.join(FORMATS)}")
    if any(f in PEERS and f != "geotiff" for f in formats):
        import_mds()  # fail early, with the install hint, when the peers are missing
    base = args.out or Path(tempfile.mkdtemp(prefix="loader-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    from pipelines.local.s3 import EmbeddedS3
    from tests.support.fault_proxy import FaultProxy

    try:
        info = prepare(base, args.pairs, args.workers)
        wds_shards = sorted(p.name for p in (base / "s3" / BUCKET / "wds").glob("*.tar"))
        truth = {
            "lake": str(base / "s3" / BUCKET / "lake"),
            "ids": _first_ids(base / "s3" / BUCKET / "lake", 64),
        }
        report: dict[str, Any] = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_avg_start": os.getloadavg(),
            },
            "pairs": args.pairs,
            "batch_size": args.batch_size,
            "workers": args.workers,
            "data": info,
            "runs": {},
        }
        bucket = base / "s3" / BUCKET
        window = _shuffle_window(info["samples_per_shard"])
        report["mds_shuffle_block"] = window
        with EmbeddedS3(base / "s3", buckets=[BUCKET]) as srv:
            ep = srv.endpoint
            assert srv.pid is not None
            serving = [psutil.Process(srv.pid), psutil.Process()]
            for lat in [float(x) for x in args.latency_ms.split(",") if x]:
                with FaultProxy(ep.endpoint_url, match="", delay=lat / 1000) as proxy:
                    url = proxy.url if lat else ep.endpoint_url
                    env = {
                        "BENCH_ENDPOINT": url,
                        "AWS_ACCESS_KEY_ID": ep.key,
                        "AWS_SECRET_ACCESS_KEY": ep.secret,
                        "AWS_DEFAULT_REGION": ep.region,
                        "BENCH_WDS_SHARDS": json.dumps(wds_shards),
                        "BENCH_TRUTH": json.dumps(truth),
                        "BENCH_SHUFFLE_BLOCK": str(window),
                    }
                    log(f"latency {lat:g} ms: raw ceiling")
                    ceiling = raw_ceiling(url, ep.key, ep.secret, base)
                    results = []
                    for fmt in formats:
                        for attempt in range(args.retries + 1):
                            log(f"latency {lat:g} ms: one epoch of {fmt} (try {attempt + 1})")
                            r = run_epoch(fmt, args, env, serving=serving, bucket=bucket)
                            log(f"  {r}")
                            if "error" not in r:
                                break
                        r["failed_tries"] = attempt if "error" not in r else attempt + 1
                        if fmt in LAKES and "error" not in r:
                            r.update(resume_probe(args, env, base, fmt))
                        results.append(r)
                    run = summarise(results, info["bytes"], ceiling, args.pairs, args.batch_size)
                    run["proxy_requests"] = proxy.requests if lat else None
                    run["load_avg_end"] = os.getloadavg()
                    report["runs"][f"{lat:g}ms"] = run
                    _write(report, args.json_out)
        report["machine"]["load_avg_end"] = os.getloadavg()
        _write(report, args.json_out)
        print(json.dumps(report, indent=1))
    finally:
        if not args.keep and args.out is None:
            shutil.rmtree(base, ignore_errors=True)


NAMES = {
    "lake": "**this lake** (`LakeDataLoader`, 2 workers, native dtypes + `to_device`)",
    "lake1p": "**this lake**, one process (no workers, 2 decode threads)",
    "litdata": "LitData 0.2.76 (`optimize` chunks, `StreamingDataLoader`)",
    "mds": "MosaicML Streaming 0.13.0 (MDS shards, default shuffle block)",
    "mds_block": "MosaicML Streaming 0.13.0, `shuffle_block_size` = the lake's shuffle window",
    "wds": "WebDataset 1.0.2 (tar shards via `pipe:rclone cat`)",
    "geotiff": "naive GeoTIFF per band (s3fs + tifffile)",
}


def markdown(report: dict[str, Any]) -> str:
    """The report's tables, one per run, as Markdown."""
    lines = []
    sizes = report["data"]["bytes"]
    for run, res in report["runs"].items():
        ceiling = res["raw_ceiling"]
        obs = ceiling.get("obstore")
        obstore = f", {obs['MB_s']} MB/s with obstore" if obs else ""
        ratios = "; ".join(
            f"{lake} / best peer: **{r.get('samples_s')}x** whole epoch, "
            f"**{r.get('steady_samples_s')}x** after the first batch, "
            f"{res.get(f'{lake}_share_of_ceiling')} of the raw ceiling"
            for lake in LAKES
            if (r := res.get(f"{lake}_vs_best_peer")) is not None
        )
        lines += [
            f"**{run} added latency** (raw ceiling: {ceiling['MB_s']} MB/s, parallel GETs of "
            f"the lake's {ceiling['objects']} shard objects with s3fs"
            f"{obstore}; {ratios + '; ' if ratios else ''}load average at the "
            f"end {res.get('load_avg_end')})",
            "",
            "| loader | samples/s | after 1st batch | MB/s | first batch s | peak RSS MB "
            "| CPU s / 1000 | cores: loader / serving / machine | stored GB | notes |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for fmt, row in res["formats"].items():
            gb = round(_stored_bytes(sizes, fmt) / 1e9, 2)
            if "error" in row:
                lines.append(f"| {NAMES[fmt]} | failed | | | | | | | {gb} | {row['error']} |")
                continue
            notes = []
            if not row["complete"]:
                notes.append("stopped at the time limit")
            if row.get("failed_tries"):
                notes.append(f"{row['failed_tries']} failed tries first")
            if (bad := row.get("cache_files_differing")) is not None:
                notes.append(
                    f"**{len(bad)} cached shards differ from the stored ones**"
                    if bad
                    else "cached shards equal the stored ones"
                )
            if "resume_next_batch_s" in row:
                notes.append(f"resume to next batch {row['resume_next_batch_s']} s")
            cores = " / ".join(
                str(row.get(k, "")) for k in ("loader_cores", "serving_cores", "machine_busy_cores")
            )
            lines.append(
                f"| {NAMES[fmt]} | {row['samples_s']} | {row.get('steady_samples_s', '')} "
                f"| {row['MB_s']} | {row['first_batch_s']} | {row['peak_rss_mb']} "
                f"| {row['cpu_s_per_1000']} | {cores} | {gb} | {'; '.join(notes)} |"
            )
        lines.append("")
    return "\n".join(lines)


def _shuffle_window(samples_per_shard: int) -> int:
    """Samples the lake's loader mixes at a time: default shards per window x pairs per shard."""
    import inspect

    from lake.loader import LakeDataset

    shards = inspect.signature(LakeDataset).parameters["shuffle_buffer_shards"].default
    return int(shards) * samples_per_shard


def _first_ids(lake_dir: Path, n: int) -> list[str]:
    import lake

    rel = lake.open_lake(str(lake_dir)).release(RELEASE)
    return [str(p) for p in rel.group["patch_id"][:n]]


def _write(report: dict[str, Any], path: Path | None) -> None:
    if path is not None:
        path.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

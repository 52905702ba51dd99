"""I/O measurements behind ADR 0005 (the loader): S3 clients, whole shards vs ranges, zarr.

Usage: ``python benchmarks/loader_io.py LAKE_FOLDER [--release r1]`` (or ``--ranges`` alone for
the Range/206 probe), where LAKE_FOLDER is a local lake (e.g. from ``lake synth`` + ``lake
ingest``). The lake is served by the embedded S3 endpoint (rclone on loopback) from a copy;
prints one JSON document.

Measures:
* ``raw_get``: parallel GETs of every shard object, s3fs vs obstore's fsspec adapter (when
  obstore is installed), MB/s;
* ``epoch``: one epoch of :class:`lake.loader.LakeDataset` (all rasters) in process and with 2
  DataLoader workers, local and S3, samples/s;
* ``--ranges``: whether ``rclone serve s3`` and moto's server answer a Range GET with ``206``
  and whether obstore can read byte ranges from them (:func:`range_support`);
* ``sparse``: a 5 % selection read by the loader's index + coalesced ranges, by whole shards,
  and by zarr's own partial reads (``oindex``): seconds, requests, bytes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the project's `pipelines` package, not benchmarks/pipelines.py


def _best(fn: Any, reps: int = 3) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


#: Clients of :func:`raw_get` stay alive to the end: dropping an s3fs instance whose loop is
#: running elsewhere prints a harmless "attached to a different loop" traceback.
_KEEP: list[Any] = []


def raw_get(spec: Any, ep: Any, keys: list[str], threads: int = 16) -> dict[str, Any]:
    import s3fs

    from lake import storage

    opts = storage.s3_options(spec, max_connections=threads + 4)
    clients: dict[str, Any] = {"s3fs": s3fs.S3FileSystem(skip_instance_cache=True, **opts)}
    try:
        from obstore.fsspec import FsspecStore

        clients["obstore"] = FsspecStore(
            "s3",
            endpoint=ep.endpoint_url,
            access_key_id=ep.key,
            secret_access_key=ep.secret,
            region=ep.region,
            client_options={"allow_http": True},
            skip_instance_cache=True,
        )
    except ImportError:
        pass
    _KEEP.extend(clients.values())
    paths = [spec.path(k) for k in keys]
    nbytes = sum(len(clients["s3fs"].cat_file(p)) for p in paths)
    out = {}
    for name, fs in clients.items():
        with ThreadPoolExecutor(threads) as ex:
            t = _best(lambda fs=fs, ex=ex: list(ex.map(fs.cat_file, paths)))
        out[name] = {"MB_s": round(nbytes / t / 1e6, 1), "objects_s": round(len(paths) / t, 1)}
    if "obstore" in clients:
        try:
            clients["obstore"].cat_file(paths[0], start=0, end=100)
            out["obstore"]["ranges"] = "ok"
        except Exception as exc:  # rclone answers ranges with 200, obstore wants 206
            out["obstore"]["ranges"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return out


def epoch(spec: Any, workers: int, **kw: Any) -> float:
    from lake.loader import LakeDataLoader, LakeDataset

    mods = ["s2_10m", "s2_20m", "s2_60m", "s1", "reference_map", "labels"]
    ds = LakeDataset(spec, modalities=mods, **kw)
    dl = LakeDataLoader(ds, batch_size=64, num_workers=workers, timeout=300 if workers else 0)
    t = time.perf_counter()
    n = sum(len(b["patch_id"]) for b in dl)
    return round(n / (time.perf_counter() - t), 1)


def sparse(spec: Any, release: str) -> dict[str, Any]:
    import zarr

    import lake
    from lake.layout import patches_path
    from lake.loader import LakeDataset, ReadOptions
    from lake.storage import zarr_store

    rel = lake.open_lake(spec).release(release)
    pids = rel.patches(columns=["patch_id"])["patch_id"].to_pylist()
    chosen = pids[:: max(1, len(pids) // (len(pids) // 20))]
    mods = ["s2_10m", "s1"]
    out: dict[str, Any] = {"selected": len(chosen), "of": len(pids)}
    for name, frac in (("loader_ranges", 0.25), ("loader_whole_shards", 0.0)):
        read = ReadOptions(dense_fraction=frac)
        ds = LakeDataset(spec, select=chosen, modalities=mods, shuffle=False, read=read)
        t = time.perf_counter()
        assert len(list(ds)) == len(chosen)
        st = ds._runtime.reader.stats  # type: ignore[union-attr]
        out[name] = {
            "s": round(time.perf_counter() - t, 3),
            "requests": st.requests,
            "MB": round(st.bytes / 1e6, 2),
        }
    group = zarr.open_group(zarr_store(spec, patches_path(release), read_only=True), mode="r")
    idx = np.sort(np.array([rel.sample_index[p] for p in chosen]))
    t = time.perf_counter()
    for m in mods:
        group[m].get_orthogonal_selection((idx,))
    out["zarr_oindex"] = {"s": round(time.perf_counter() - t, 3)}
    return out


def range_support() -> dict[str, Any]:
    """Does each local S3 server answer a ``Range`` GET with ``206``, and can obstore read it?

    obstore (Rust ``object_store``) refuses a ranged answer whose status is not ``206``
    ("Received non-partial response when range requested"). ``rclone serve s3`` answers ``200``
    with a correct ``Content-Range`` and body; moto's server (``moto[server]``, already a test
    dependency) answers ``206``. Probed with boto3 (status, bytes) and obstore (a range and a
    suffix read of the same object).
    """
    import os

    import boto3  # type: ignore[import-untyped]
    import obstore
    from moto.server import ThreadedMotoServer
    from obstore.store import S3Store

    from pipelines.local.s3 import EmbeddedS3, rclone_binary

    bucket, data = "probe", os.urandom(1 << 20)

    def probe(endpoint: str, key: str, secret: str) -> dict[str, Any]:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )
        r = s3.get_object(Bucket=bucket, Key="obj", Range="bytes=100-199")
        res: dict[str, Any] = {
            "status": r["ResponseMetadata"]["HTTPStatusCode"],
            "content_range": r.get("ContentRange"),
            "bytes_ok": r["Body"].read() == data[100:200],
        }
        store = S3Store(
            bucket,
            endpoint=endpoint,
            access_key_id=key,
            secret_access_key=secret,
            region="us-east-1",
            client_options={"allow_http": True},
        )
        for what, kw in (
            ("range", {"start": 100, "end": 200}),
            ("suffix", {"start": len(data) - 100, "length": 100}),
        ):
            try:
                got = bytes(obstore.get_range(store, "obj", **kw))
                want = data[100:200] if what == "range" else data[-100:]
                res[f"obstore_{what}"] = "ok" if got == want else "wrong bytes"
            except Exception as exc:
                res[f"obstore_{what}"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        return res

    out: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="range-probe-"))
    (tmp / bucket).mkdir()
    (tmp / bucket / "obj").write_bytes(data)
    version = subprocess.run([rclone_binary(), "version"], capture_output=True, text=True)
    with EmbeddedS3(tmp, buckets=[bucket]) as srv:
        ep = srv.endpoint
        out["rclone"] = {
            "version": version.stdout.split("\n")[0],
            **probe(ep.endpoint_url, ep.key, ep.secret),
        }
    shutil.rmtree(tmp, ignore_errors=True)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="k",
            aws_secret_access_key="s",
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="obj", Body=data)
        out["moto"] = probe(endpoint, "k", "s")
    finally:
        moto.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("lake", type=Path, nargs="?")
    ap.add_argument("--release", default=None)
    ap.add_argument(
        "--ranges",
        action="store_true",
        help="only probe which local S3 servers answer Range GETs with 206 (no lake needed)",
    )
    args = ap.parse_args()
    if args.ranges:
        print(json.dumps(range_support(), indent=1))
        return
    if args.lake is None:
        ap.error("give a LAKE folder (or --ranges)")
    import lake
    from lake.config import store_spec
    from lake.layout import patches_path
    from lake.loader import ReadOptions
    from pipelines.local.s3 import EmbeddedS3

    local = store_spec(str(args.lake), environ={})
    release = lake.open_lake(local).release(args.release).name
    tmp = Path(tempfile.mkdtemp(prefix="loader-io-"))
    shutil.copytree(args.lake, tmp / "data" / "lake" / "bench")
    with EmbeddedS3(tmp / "data", buckets=["lake"]) as srv:
        ep = srv.endpoint
        s3 = store_spec(
            "s3://lake/bench",
            endpoint_url=ep.endpoint_url,
            key=ep.key,
            secret=ep.secret,
            region=ep.region,
            environ={},
        )
        group = patches_path(release)
        keys = sorted(
            str(p.relative_to(args.lake))
            for p in (args.lake / group).glob("*/c/*/0/**/0")
            if p.is_file()
        )
        report = {
            "raw_get": raw_get(s3, ep, keys),
            "epoch_samples_s": {
                "local_in_process": epoch(local, 0),
                "s3_in_process": epoch(s3, 0),
                "local_2_workers": epoch(local, 2),
                "s3_2_workers": epoch(s3, 2),
                "s3_in_process_1_decode_thread": epoch(s3, 0, read=ReadOptions(decode_threads=1)),
            },
            "sparse_s3": sparse(s3, release),
        }
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

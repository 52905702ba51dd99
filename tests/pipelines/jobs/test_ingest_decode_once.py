"""Ingest decodes each pair once (the scan reads headers only) and hashes each shard object as it
is encoded (no shard is read back); a pair whose pixels fail where its headers passed is
quarantined all the same, with the result a scan that had caught it would give (issue 15)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import zarr.storage

import lake.release
from lake.config import store_spec
from lake.layout import patches_path, quarantine_path
from lake.names import pair_files
from lake.patchstore import shard_object_keys
from lake.reader import open_lake
from lake.storage import filesystem
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.ingest import IngestOptions, ingest
from pipelines.sources import geotiff, lmdb_source
from pipelines.sources.open import open_source
from pipelines.synth import synthesize

N = 12
OPTS = IngestOptions(release="r1", samples_per_shard=4, scan_batch=4, progress=False)
#: Pixel decodes of one pair: 15 GeoTIFFs, or 3 safetensors blobs (S2, S1, map) in an LMDB.
DECODES_PER_PAIR = {"folders": 15, "tar.zst": 15, "lmdb": 3}


@pytest.fixture(scope="module", params=["folders", "tar.zst", "lmdb"])
def source_dir(request, tmp_path_factory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("once") / request.param
    synthesize(N, out, fmt=request.param, seed=31)
    return request.param, out


def test_each_pair_is_decoded_once_and_no_shard_is_read_back(source_dir, tmp_path, monkeypatch):
    kind, root = source_dir
    source = open_source(root)
    source.prepare()  # staging (tar.zst) reads the archives, decoding nothing
    decodes: Counter[str] = Counter()
    for module, name in ((geotiff, "decode_pixels"), (geotiff, "read_pixels")):
        original = getattr(module, name)

        def counted(*args, _original=original, **kwargs):
            decodes["pixels"] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)
    original_load = lmdb_source.load_tensors

    def counted_load(*args, **kwargs):
        decodes["pixels"] += 1
        return original_load(*args, **kwargs)

    monkeypatch.setattr(lmdb_source, "load_tensors", counted_load)
    chunk_reads: list[str] = []
    original_get = zarr.storage.LocalStore.get

    async def counted_get(self, key, *args, **kwargs):
        got = await original_get(self, key, *args, **kwargs)
        if got is not None and "/c/" in f"/{key}":
            chunk_reads.append(key)
        return got

    monkeypatch.setattr(zarr.storage.LocalStore, "get", counted_get)
    hashed: list[str] = []
    original_hash = lake.release.hash_objects

    def counted_hash(spec, paths):
        paths = list(paths)
        hashed.extend(paths)
        return original_hash(spec, paths)

    monkeypatch.setattr(lake.release, "hash_objects", counted_hash)

    spec = store_spec(str(tmp_path / "lake"), environ={})
    report = ingest(source, spec, OPTS, ClusterSpec("sync"))
    assert report.patches == N and report.n_quarantined == 0
    assert decodes["pixels"] == N * DECODES_PER_PAIR[kind]  # once per pair, not twice
    assert chunk_reads == []  # no shard object read back (nor read before its write)
    # The checksums taken while encoding are those of the stored objects.
    manifest = open_lake(spec).release("r1").manifest
    fs = filesystem(spec)
    keys = {k for s in range(N // 4) for k in shard_object_keys(patches_path("r1"), s)}
    shards = [o for o in manifest["objects"] if o["path"] in keys]
    assert len(shards) == len(keys) == 7 * (N // 4)
    assert not keys & set(hashed)  # none hashed from storage
    for o in shards:
        data = fs.cat_file(spec.path(o["path"]))
        assert (len(data), hashlib.sha256(data).hexdigest()) == (o["size"], o["sha256"])


@pytest.fixture(scope="module")
def clean_folders(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("late") / "folders"
    synthesize(N, out, fmt="folders", seed=37)
    return out


def _nan_into_vv(root: Path, patch_id: str, s1_name: str) -> Path:
    """Put a NaN into a pair's VV file in place: its header stays valid, its pixels do not."""
    path = root / pair_files(patch_id, s1_name)["VV"]
    with geotiff.rasterio.open(path, "r+") as ds:
        data = ds.read(1)
        data[3, 4] = np.nan
        ds.write(data, 1)
    return path


def test_a_pixel_fault_the_headers_hide_is_quarantined_and_the_plan_rederived(
    clean_folders, tmp_path
):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(clean_folders, damaged)
    source = open_source(damaged)
    rows = source.metadata().select(["patch_id", "s1_name"]).to_pylist()
    bad = rows[5]
    path = _nan_into_vv(damaged, bad["patch_id"], bad["s1_name"])
    source.scan_pair(bad["patch_id"], bad["s1_name"])  # the header passes

    spec = store_spec(str(tmp_path / "lake"), environ={})
    report = ingest(source, spec, OPTS, ClusterSpec("sync"))
    assert report.patches == N - 1 and report.quarantined["non_finite"] == 1
    assert set(report.quarantined) == {"non_finite", "patch_quarantined"}  # + its text rows
    assert report.resumed["late_rejections"] == 1
    body = filesystem(spec).cat_file(spec.path(quarantine_path("r1"))).decode()
    records = [json.loads(line) for line in body.splitlines()]
    pixels = [r for r in records if r["reason"] == "non_finite"]
    assert [(r["subject"], r["patch_id"]) for r in pixels] == [(str(path), bad["patch_id"])]
    assert "NaN" in pixels[0]["detail"]
    # The same lake as an ingest of a source without that pair at all.
    clean = tmp_path / "without"
    shutil.copytree(clean_folders, clean)
    shutil.rmtree((clean / pair_files(bad["patch_id"], bad["s1_name"])["B02"]).parent)
    shutil.rmtree((clean / pair_files(bad["patch_id"], bad["s1_name"])["VV"]).parent)
    shutil.rmtree((clean / pair_files(bad["patch_id"], bad["s1_name"])["reference_map"]).parent)
    other = store_spec(str(tmp_path / "other"), environ={})
    assert ingest(open_source(clean), other, OPTS, ClusterSpec("sync")).patches == N - 1

    def chunks(s):
        m = open_lake(s).release("r1").manifest
        return {o["path"]: o["sha256"] for o in m["objects"] if "/c/" in o["path"]}

    assert chunks(spec) == chunks(other)

"""docs/format.md is enough to read a lake: a reader written from it alone agrees with ours.

The reader here uses only what the page names: JSON, Parquet (pyarrow), ``pcodec`` and
``zstandard``, and byte offsets computed from the page (no zarr, no project code). It reads a
small lake (two shards, the last one partial) from the folder that the tour's S3 endpoint serves
and compares every array of a few samples with :mod:`lake.reader`.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import zstandard
from pcodec import standalone

import lake
from pipelines.showcase import tour

EMPTY = 2**64 - 1
RASTERS = {"s2_10m": "<u2", "s2_20m": "<u2", "s2_60m": "<u2", "s1": "<f4", "reference_map": "<u2"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, tour.Tour]]:
    """A 40-pair lake (shards of 32: the second holds 8); its folder on disk."""
    with tour.start(tmp_path_factory.mktemp("spec") / "t", patches=40) as t:
        yield t.lake_folder, t


def read_json(path: Path) -> Any:
    return json.loads(path.read_bytes())


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), bit by bit: slow, but needs nothing."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def shard_chunk(path: Path, samples_per_shard: int, position: int) -> bytes | None:
    """The compressed inner chunk at ``position`` of a shard object, per the page."""
    data = path.read_bytes()
    index = data[-(16 * samples_per_shard + 4) : -4]
    (stored_crc,) = struct.unpack("<I", data[-4:])
    assert stored_crc == crc32c(index), f"{path}: the index's CRC32C does not match"
    offset, nbytes = struct.unpack_from("<QQ", index, 16 * position)
    if offset == EMPTY and nbytes == EMPTY:
        return None
    return data[offset : offset + nbytes]


def checked(data: bytes) -> bytes:
    """The bytes before the trailing CRC32C (layout 2), which must match them."""
    (stored,) = struct.unpack("<I", data[-4:])
    assert stored == crc32c(data[:-4]), "a chunk's CRC32C does not match"
    return data[:-4]


def vlen_utf8(frame: bytes) -> list[str]:
    raw = zstandard.ZstdDecompressor().decompress(checked(frame))
    (count,) = struct.unpack_from("<I", raw, 0)
    items, at = [], 4
    for _ in range(count):
        (n,) = struct.unpack_from("<I", raw, at)
        items.append(raw[at + 4 : at + 4 + n].decode())
        at += 4 + n
    return items


def test_a_reader_written_from_the_page_agrees(built: tuple[Path, tour.Tour]) -> None:
    root, t = built
    doc = read_json(root / "lake.json")
    assert doc["layout_version"] == 2
    name = doc["current"]
    manifest = read_json(root / doc["releases"][name]["manifest"])
    s = manifest["parameters"]["samples_per_shard"]
    group = root / f"patches/{name}.zarr"
    attrs = read_json(group / "zarr.json")["attributes"]["bigearthnet_lake"]
    n = attrs["n_samples"]
    assert (s, n) == (attrs["samples_per_shard"], manifest["counts"]["patches"]) == (32, 40)

    # every object of the manifest, and its checksum; lake.json and the manifest are not listed
    listed = {o["path"] for o in manifest["objects"]}
    for o in manifest["objects"]:
        data = (root / o["path"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (o["size"], o["sha256"])
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert listed == on_disk - {"lake.json", f"releases/{name}/manifest.json"}

    # the zarr.json fields the page gives
    for array in RASTERS:
        meta = read_json(group / array / "zarr.json")
        sharding = meta["codecs"][0]
        assert meta["chunk_grid"]["configuration"]["chunk_shape"][0] == s
        assert sharding["name"] == "sharding_indexed"
        assert sharding["configuration"]["chunk_shape"][0] == 1
        assert sharding["configuration"]["index_location"] == "end"
        assert [c["name"] for c in sharding["configuration"]["index_codecs"]] == [
            "bytes",
            "crc32c",
        ]
        inner = [c["name"] for c in sharding["configuration"]["codecs"]]
        plain = ["bytes", "zstd"] if array == "reference_map" else ["numcodecs.pcodec"]
        assert inner == [*plain, "crc32c"]

    # sample -> pair from the patches table; names from the string arrays
    table = pq.read_table(root / f"tables/{name}/patches/part-0.parquet")
    pairs = zip(table["sample_index"].to_pylist(), table["patch_id"].to_pylist(), strict=True)
    by_sample = dict(pairs)
    shards = range(-(-n // s))
    ids = [x for k in shards for x in vlen_utf8((group / f"patch_id/c/{k}").read_bytes())]
    assert ids[:n] == [by_sample[i] for i in range(n)]
    assert vlen_utf8((group / "s2_20m_band/c/0").read_bytes()) == attrs["arrays"]["s2_20m"]

    release = lake.open_lake(t.spec).current
    for i in (0, 31, 32, n - 1):  # both shards, their edges, the partial shard's last sample
        k, p = divmod(i, s)
        theirs = release.sample(i)
        assert theirs["metadata"]["patch_id"] == by_sample[i]
        for array, dtype in RASTERS.items():
            meta = read_json(group / array / "zarr.json")
            shape = meta["shape"][1:]
            key = "/".join(["c", str(k), *("0" for _ in shape)])
            stored = shard_chunk(group / array / key, s, p)
            assert stored is not None
            chunk = checked(stored)
            if array == "reference_map":
                raw = zstandard.ZstdDecompressor().decompress(chunk)
                mine = np.frombuffer(raw, dtype).reshape(shape)
            else:
                mine = standalone.simple_decompress(chunk).astype(dtype).reshape(shape)
            bands = attrs["arrays"][array] or [array]
            planes = mine if array != "reference_map" else mine[None]
            for b, band in enumerate(bands):
                assert np.array_equal(planes[b], theirs[band]), (i, array, band)
    # the partial shard: positions past N were never written
    assert shard_chunk(group / "s2_10m/c/1/0/0/0", s, n - s) is None


def test_crc32c_matches_the_standard_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert zlib.crc32(b"123456789") != crc32c(b"123456789")  # not the zlib polynomial

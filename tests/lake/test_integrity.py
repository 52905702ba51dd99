"""Every chunk read is checked: flipped bits in stored objects never reach a reader silently.

Each test damages a private copy of a small lake (20 pairs, shards of 8: the third holds 4) one
bit at a time, in the chunk bytes and in the shard index of every array, and reads the damaged
objects through every reader: ``Release.sample``, ``Release.to_xarray``, the streaming loader
(whole-shard and byte-range reads, with and without ``skip_errors``) and plain zarr. Every read
must either raise, naming the array, the object and the sample (the project's readers), or
return exactly the stored values; the loader with ``skip_errors=True`` skips and counts exactly
the damaged samples. One more test does the same on the embedded S3 endpoint; another reads a
lake written in layout 1 (no chunk checksums), which must still open and read.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from lake.bigearthnet import ARRAYS
from lake.config import StoreSpec, store_spec
from lake.errors import ConfigError, IntegrityError
from lake.integrity import crc32c_ok
from lake.loader import LakeDataset, ReadOptions
from lake.patchstore import STRING_ARRAYS, array_of, create_group, write_block
from lake.reader import open_lake
from pipelines.local.s3 import EmbeddedS3
from tests.conftest import s3_spec_for
from tests.support.lakes import LakeRecipe, TestLake

N, PER_SHARD, RELEASE = 20, 8, "r1"
RASTERS = [a.name for a in ARRAYS]
EMPTY = 2**64 - 1


@dataclass(frozen=True)
class Built:
    """The pristine lake and what it holds."""

    root: Path
    values: dict[str, np.ndarray]


@pytest.fixture(scope="module")
def built(build_lake: Callable[..., TestLake]) -> Built:
    lake = build_lake(LakeRecipe(N, 11, per_shard=PER_SHARD, scan_batch=PER_SHARD))
    base = lake.root.parent
    group = zarr.open_group(str(base / "lake" / f"patches/{RELEASE}.zarr"), mode="r")
    values: dict[str, np.ndarray] = {
        name: np.asarray(array_of(group, name)[:]) for name in [*RASTERS, *STRING_ARRAYS]
    }
    return Built(base / "lake", values)


def private_copy(built: Built, dest: Path) -> StoreSpec:
    shutil.copytree(built.root, dest)
    return store_spec(str(dest), environ={})


def object_key(array: str, number: int) -> str:
    """The key of shard (or string chunk) ``number`` of ``array`` inside the group."""
    if array in STRING_ARRAYS:
        return f"{array}/c/{number}"
    ndim = len(next(a for a in ARRAYS if a.name == array).sample_shape)
    return f"{array}/c/{number}" + "/0" * ndim


def chunk_at(data: bytes, byte: int) -> int | None:
    """The position of the shard's chunk that holds ``byte`` (None: in the index)."""
    index_start = len(data) - (16 * PER_SHARD + 4)
    if byte >= index_start:
        return None
    for position in range(PER_SHARD):
        offset, nbytes = struct.unpack_from("<QQ", data, index_start + 16 * position)
        if offset != EMPTY and offset <= byte < offset + nbytes:
            return position
    raise AssertionError(f"byte {byte} is in no chunk")


def flip(path: Path, bit: int) -> bytes:
    """Flip one bit of a file; return its original bytes."""
    original = path.read_bytes()
    damaged = bytearray(original)
    damaged[bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(damaged))
    return original


def names_the_place(message: str, array: str, key: str, sample: int) -> bool:
    """Whether an error message names the array, the object and the sample (or its range)."""
    if f"'{array}'" not in message or key not in message:
        return False
    if re.search(rf"\bsample {sample}\b", message):
        return True
    ranges = re.findall(r"samples (\d+)\.\.(\d+)", message)
    return any(int(lo) <= sample <= int(hi) for lo, hi in ranges)


def sample_values(release: Any, index: int) -> dict[str, np.ndarray]:
    """``Release.sample`` restacked per array (as stored)."""
    got = release.sample(index)
    out = {a.name: np.stack([got[b] for b in a.bands]) if a.bands else got[a.name] for a in ARRAYS}
    out["patch_id"] = np.asarray(got["metadata"]["patch_id"])
    return out


class Tally:
    """Flips tried, flips that some read reported, reads that returned wrong values."""

    def __init__(self) -> None:
        self.tried = 0
        self.detected = 0
        self.silent: list[str] = []  # wrong values, or damage not reported
        self.unnamed: list[str] = []  # an error, but not one naming the place


def check_readers(
    spec: StoreSpec, built: Built, array: str, number: int, damaged: set[int], tally: Tally
) -> None:
    """Read every sample of object ``number`` of ``array`` through every reader."""
    key = object_key(array, number)
    samples = [i for i in range(number * PER_SHARD, (number + 1) * PER_SHARD) if i < N]
    raised = False
    release = open_lake(spec).current
    for i in samples:
        try:
            got = sample_values(release, i)
        except IntegrityError as exc:
            raised = True
            assert i in damaged, f"sample {i} is intact, yet: {exc}"
            assert names_the_place(str(exc), array, key, i), str(exc)
            continue
        except Exception as exc:
            raised = True
            tally.unnamed.append(f"Release.sample({i}) of {key}: {type(exc).__name__}")
            continue
        if array not in got:  # s1_name: Release.sample does not read it
            continue
        if i in damaged:
            tally.silent.append(f"Release.sample({i}) of {key}: no error")
        if not np.array_equal(got[array], built.values[array][i]):
            tally.silent.append(f"Release.sample({i}) of {key}: wrong values")
    for chunks in (None, {"sample": PER_SHARD}):  # lazy arrays, then dask
        try:
            xr_values = release.to_xarray(chunks=chunks)[array].values
        except IntegrityError as exc:
            raised = True
            assert any(names_the_place(str(exc), array, key, i) for i in damaged), str(exc)
        except Exception as exc:
            raised = True
            tally.unnamed.append(f"to_xarray(chunks={chunks}) of {key}: {type(exc).__name__}")
        else:
            if not np.array_equal(xr_values, built.values[array]):
                tally.silent.append(f"to_xarray(chunks={chunks}) of {key}")
    try:  # plain zarr: no project code, zarr's own crc32c check
        plain = zarr.open_group(str(Path(spec.path()) / f"patches/{RELEASE}.zarr"), mode="r")
        if not np.array_equal(array_of(plain, array)[:], built.values[array]):
            tally.silent.append(f"plain zarr of {key}")
    except Exception:
        raised = True
    if array not in STRING_ARRAYS:  # the loader reads names from the tables
        raised |= check_loader(spec, built, array, key, samples, damaged, tally)
    tally.detected += raised


def check_loader(
    spec: StoreSpec,
    built: Built,
    array: str,
    key: str,
    samples: list[int],
    damaged: set[int],
    tally: Tally,
) -> bool:
    raised = False
    for dense in (0.0, 1.1):  # whole shard objects, then byte ranges of index and chunks
        read = ReadOptions(dense_fraction=dense)
        kw: dict[str, Any] = {"modalities": [array], "shuffle": False, "read": read}
        try:
            list(LakeDataset(spec, **kw))
        except IntegrityError as exc:
            raised = True
            assert any(names_the_place(str(exc), array, key, i) for i in damaged), str(exc)
        except Exception as exc:
            raised = True
            tally.unnamed.append(f"loader of {key}: {type(exc).__name__}")
        else:
            tally.silent.append(f"loader (dense_fraction={dense}) of {key}: no error")
        ds = LakeDataset(spec, skip_errors=True, **kw)
        try:
            got = {int(s["sample_index"]): s[array].numpy() for s in ds}
        except Exception as exc:
            tally.unnamed.append(f"loader, skip_errors=True, of {key}: {type(exc).__name__}")
            continue
        if ds.errors != len(damaged) or set(got) != set(range(N)) - damaged:
            tally.silent.append(f"loader skip_errors of {key}: skipped {ds.errors}")
        for i in samples:
            if i in got and not np.array_equal(got[i], built.values[array][i]):
                tally.silent.append(f"loader sample {i} of {key}")
    return raised


def test_every_flipped_bit_in_every_array_is_caught_by_every_reader(
    built: Built, tmp_path: Path
) -> None:
    spec = private_copy(built, tmp_path / "lake")
    group = tmp_path / "lake" / f"patches/{RELEASE}.zarr"
    rng = np.random.default_rng(2026)
    tally = Tally()
    for array in [*RASTERS, *STRING_ARRAYS]:
        for number in range(-(-N // PER_SHARD)):
            path = group / object_key(array, number)
            size = path.stat().st_size
            samples = {i for i in range(number * PER_SHARD, (number + 1) * PER_SHARD) if i < N}
            if array in STRING_ARRAYS:  # one chunk of PER_SHARD names: any bit
                bits = [int(rng.integers(0, size * 8))]
            else:  # one bit in the chunks, one in the index
                index_bits = (16 * PER_SHARD + 4) * 8
                bits = [
                    int(rng.integers(0, size * 8 - index_bits)),
                    int(rng.integers(size * 8 - index_bits, size * 8)),
                ]
            for bit in bits:
                original = flip(path, bit)
                position = None if array in STRING_ARRAYS else chunk_at(original, bit // 8)
                damaged = samples if position is None else {number * PER_SHARD + position}
                tally.tried += 1
                try:
                    check_readers(spec, built, array, number, damaged, tally)
                finally:
                    path.write_bytes(original)
    print(f"bit flips: {tally.tried} tried, {tally.detected} reported by a reader")
    print(f"silent reads ({len(tally.silent)}):", *tally.silent, sep="\n  ")
    print(f"unnamed errors ({len(tally.unnamed)}):", *tally.unnamed, sep="\n  ")
    assert tally.tried == 5 * 3 * 2 + 2 * 3
    assert tally.silent == [], tally.silent
    assert tally.unnamed == [], tally.unnamed
    assert tally.detected == tally.tried


def test_a_new_lake_is_layout_2_with_a_crc32c_on_every_chunk(built: Built) -> None:
    assert json.loads((built.root / "lake.json").read_text())["layout_version"] == 2
    group = built.root / f"patches/{RELEASE}.zarr"
    attrs = json.loads((group / "zarr.json").read_text())["attributes"]["bigearthnet_lake"]
    assert attrs["layout_version"] == 2
    arrays = [*RASTERS, *STRING_ARRAYS, *(f"{a.name}_band" for a in ARRAYS if a.bands)]
    for array in arrays:
        codecs = json.loads((group / array / "zarr.json").read_text())["codecs"]
        if array in RASTERS:
            codecs = codecs[0]["configuration"]["codecs"]
        assert codecs[-1] == {"name": "crc32c"}, (array, codecs)
    # the last 4 bytes of an inner chunk are the CRC32C of the bytes before them
    data = (group / object_key("s1", 0)).read_bytes()
    offset, nbytes = struct.unpack_from("<QQ", data, len(data) - (16 * PER_SHARD + 4))
    assert crc32c_ok(data[offset : offset + nbytes])
    assert not crc32c_ok(data[offset : offset + nbytes - 1] + b"\0")


def to_layout_1(spec: StoreSpec, built: Built) -> None:
    """Rewrite a lake as the previous version wrote it: no CRC32C on chunks, layout 1."""
    root = Path(spec.path())
    shutil.rmtree(root / f"patches/{RELEASE}.zarr")
    group = create_group(spec, RELEASE, N, PER_SHARD, layout_version=1)
    for start in range(0, N, PER_SHARD):
        write_block(
            group, start, {k: v[start : start + PER_SHARD] for k, v in built.values.items()}
        )
    for doc in (root / "lake.json", root / f"releases/{RELEASE}/manifest.json"):
        content = json.loads(doc.read_text())
        content["layout_version"] = 1
        doc.write_text(json.dumps(content))
    # Layout 1 predates the release index (lake/index.py): such a release opens without one.
    (root / f"releases/{RELEASE}/index.parquet").unlink(missing_ok=True)


def test_a_layout_1_lake_still_opens_and_reads(built: Built, tmp_path: Path) -> None:
    spec = private_copy(built, tmp_path / "lake")
    to_layout_1(spec, built)
    group = tmp_path / "lake" / f"patches/{RELEASE}.zarr"
    inner = json.loads((group / "s2_10m/zarr.json").read_text())["codecs"][0]["configuration"]
    assert [c["name"] for c in inner["codecs"]] == ["numcodecs.pcodec"]  # what layout 1 wrote
    assert [
        c["name"] for c in json.loads((group / "patch_id/zarr.json").read_text())["codecs"]
    ] == [
        "vlen-utf8",
        "zstd",
    ]

    release = open_lake(spec).current
    for i in (0, 7, 8, N - 1):
        got = sample_values(release, i)
        for array in [*RASTERS, "patch_id"]:
            assert np.array_equal(got[array], built.values[array][i]), (i, array)
    ds = release.to_xarray()
    for array in RASTERS:
        assert np.array_equal(ds[array].values, built.values[array])
        loader = LakeDataset(spec, modalities=[array], shuffle=False)
        got_loader = {int(s["sample_index"]): s[array].numpy() for s in loader}
        assert all(np.array_equal(v, built.values[array][i]) for i, v in got_loader.items())
        assert len(got_loader) == N
    # layout 1 checked its shard indexes already, and still does
    path = group / object_key("s2_20m", 1)
    flip(path, path.stat().st_size * 8 - 40)
    with pytest.raises(IntegrityError, match=r"'s2_20m'.*samples 8\.\.15.*s2_20m/c/1/0/0/0"):
        open_lake(spec).current.sample(9)


def test_only_known_layouts_are_written(tmp_path: Path) -> None:
    spec = store_spec(str(tmp_path / "lake"), environ={})
    with pytest.raises(ConfigError, match="layout_version=3"):
        create_group(spec, RELEASE, N, PER_SHARD, layout_version=3)


def test_on_s3_the_damaged_sample_is_named_and_the_rest_reads(built: Built, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(built.root, data / "lake" / "damaged")
    path = data / "lake" / "damaged" / f"patches/{RELEASE}.zarr" / object_key("s1", 1)
    original = path.read_bytes()
    offset, _ = struct.unpack_from("<QQ", original, len(original) - (16 * PER_SHARD + 4) + 16 * 3)
    flip(path, (offset + 10) * 8 + 5)  # inside the chunk of sample 8 + 3
    with EmbeddedS3(data, buckets=["lake"]) as server:
        spec = s3_spec_for(server, "damaged")
        release = open_lake(spec).current
        with pytest.raises(IntegrityError, match=r"'s1', sample 11\b") as info:
            release.sample(11)
        assert f"{spec.url}/patches/{RELEASE}.zarr/s1/c/1/0/0/0" in str(info.value)
        assert np.array_equal(sample_values(release, 12)["s1"], built.values["s1"][12])
        with pytest.raises(IntegrityError, match=r"'s1', sample 11\b"):
            release.to_xarray()["s1"].values  # noqa: B018 (loads the array)
        ds = LakeDataset(spec, modalities=["s1"], shuffle=False, skip_errors=True)
        assert len(list(ds)) == N - 1 and ds.errors == 1

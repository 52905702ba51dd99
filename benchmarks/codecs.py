"""Lossless codec pipelines for the patch arrays: size against the GeoTIFFs, encode/decode speed.

Usage: ``python benchmarks/codecs.py [--json] [--seconds S] [--no-synthetic]``

Every candidate is built as a real zarr v3 array (chunk = one sample, one shard of N samples) in a
``MemoryStore`` with the exact ``filters`` / ``serializer`` / ``compressors`` pipeline, reopened
from its metadata alone and read back bit-exact. Reported per array and candidate:

* ``B/sample``: stored bytes (shard objects, index included, ``zarr.json`` excluded) / samples;
* ``ratio``: those bytes / the bytes of the sample GeoTIFFs on disk;
* ``enc``/``dec``: MB/s of uncompressed data through the chunk's codec chain (the same codec
  objects zarr calls, one chunk repeated, no zarr overhead);
* ``zarr rd``: MB/s of ``array[:]`` on a reopened array of one 32-sample shard (what a loader
  sees: decode plus zarr's per-chunk overhead).

Tiers: ``builtin`` decodes with zarr + numcodecs alone; ``pkg`` needs one more package but no
import (zarr registers ``numcodecs.pcodec`` itself); ``import`` needs a package AND code that
registers the codec before ``open_group`` (imagecodecs), which breaks "no project code to read".

Real data: the 15 files of ``shared/data/bigearthnet-v2/sample``. Secondary: seeded synthetic
samples of the same shapes (smooth fields + sensor noise, speckled S1 in dB, Voronoi maps) whose
GeoTIFF sizes come from writing them with the release's profiles; and chunk = 1 sample against
chunk = several samples. Decision record: ``docs/decisions/0002-compression.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import zarr
from rasterio.io import MemoryFile
from zarr.abc.codec import BytesBytesCodec
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, TransposeCodec, ZstdCodec
from zarr.codecs import numcodecs as znc
from zarr.codecs.numcodecs._codecs import (
    _NumcodecsArrayBytesCodec,
    _NumcodecsBytesBytesCodec,
    _NumcodecsCodec,
)
from zarr.registry import register_codec

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared/data/bigearthnet-v2/sample"
sys.path.insert(0, str(ROOT))

warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3")
warnings.filterwarnings("ignore", category=UserWarning, module="zarr")

ARRAY_BANDS: dict[str, tuple[str, ...]] = {
    "s2_10m": ("B02", "B03", "B04", "B08"),
    "s2_20m": ("B05", "B06", "B07", "B8A", "B11", "B12"),
    "s2_60m": ("B01", "B09"),
    "s1": ("VV", "VH"),
    "reference_map": ("reference_map",),
}
N_SHARD = 32  # samples per shard of the real-data arrays (copies of the one real sample)
N_SYNTH = 16  # distinct synthetic samples per array


# ---------------------------------------------------------------- data


def _band_file(band: str) -> Path:
    return next(SAMPLE.rglob(f"*_{band}.tif"))


def load_real() -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, dict[str, Any]]]:
    """Per array: the one real sample, the GeoTIFF bytes on disk, the GeoTIFF profile."""
    data: dict[str, np.ndarray] = {}
    size: dict[str, int] = {}
    profiles: dict[str, dict[str, Any]] = {}
    for name, bands in ARRAY_BANDS.items():
        planes = []
        size[name] = 0
        for band in bands:
            path = _band_file(band)
            with rasterio.open(path) as ds:
                planes.append(ds.read(1))
                prof = dict(ds.profile)
                structure = ds.tags(ns="IMAGE_STRUCTURE")
            if "PREDICTOR" in structure:
                prof["predictor"] = int(structure["PREDICTOR"])
            profiles[name] = prof
            size[name] += path.stat().st_size
        data[name] = planes[0] if name == "reference_map" else np.stack(planes)
    return data, size, profiles


def _smooth(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Gaussian-filtered white noise (FFT), unit variance: a spatially correlated field."""
    noise = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    kernel = np.exp(-((fx**2 + fy**2) * (scale**2) * 2 * np.pi**2))
    field_ = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=shape)
    return (field_ - field_.mean()) / (field_.std() + 1e-12)


_S2_STATS = {  # train mean / std (DN), BIGEARTHNET.md
    "B01": (361, 575), "B02": (438, 607), "B03": (614, 603), "B04": (588, 685),
    "B05": (943, 738), "B06": (1770, 1100), "B07": (2050, 1276), "B08": (2193, 1369),
    "B8A": (2236, 1357), "B09": (2241, 1316), "B11": (1568, 1070), "B12": (998, 814),
}  # fmt: skip
_CLC = (111, 112, 121, 211, 231, 242, 243, 311, 312, 313, 324, 411, 512)


def synthetic_sample(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One synthetic pair of the same shapes/dtypes as the release (secondary figures only)."""
    base = 0.6 * _smooth(rng, (120, 120), 12) + 0.4 * _smooth(rng, (120, 120), 3)
    texture = _smooth(rng, (120, 120), 1.0)
    out: dict[str, np.ndarray] = {}
    for name, size in (("s2_10m", 120), ("s2_20m", 60), ("s2_60m", 20)):
        planes = []
        k = 120 // size
        for band in ARRAY_BANDS[name]:
            mean, std = _S2_STATS[band]
            gain = rng.uniform(0.25, 0.45) * std
            v = mean + gain * (base + 0.3 * rng.uniform(0.5, 1.5) * texture)
            v = v.reshape(size, k, size, k).mean(axis=(1, 3))
            v = v + rng.normal(0, 4 + 0.01 * mean, v.shape)  # sensor noise, a few DN
            planes.append(np.clip(np.rint(v), 1, 65535).astype(np.uint16))
        out[name] = np.stack(planes)
    s1 = []
    for mean_db in (-12.6, -19.4):
        sigma0 = 10 ** ((mean_db + 3.0 * base) / 10)
        speckle = rng.gamma(4.4, 1 / 4.4, (120, 120))  # ~4.4-look GRD intensity speckle
        s1.append((10 * np.log10(sigma0 * speckle)).astype(np.float32))
    out["s1"] = np.stack(s1)
    n_seeds = int(rng.integers(3, 9))
    seeds = rng.uniform(0, 120, (n_seeds, 2))
    yy, xx = np.mgrid[0:120, 0:120]
    warp = 6 * _smooth(rng, (120, 120), 8)
    dist = (yy[None] + warp - seeds[:, 0, None, None]) ** 2 + (
        xx[None] - warp - seeds[:, 1, None, None]
    ) ** 2
    codes = rng.choice(_CLC, n_seeds)
    out["reference_map"] = codes[np.argmin(dist, axis=0)].astype(np.uint16)
    return out


def geotiff_bytes(name: str, sample: np.ndarray, profiles: dict[str, dict[str, Any]]) -> int:
    """Bytes of the sample's GeoTIFFs written with the release's profile (one file per band)."""
    planes = [sample] if sample.ndim == 2 else list(sample)
    total = 0
    for plane in planes:
        prof = dict(profiles[name])
        prof.update(height=plane.shape[0], width=plane.shape[1], blockysize=None, blockxsize=None)
        prof = {k: v for k, v in prof.items() if v is not None}
        with MemoryFile() as mem:
            with mem.open(**prof) as ds:
                ds.write(plane, 1)
            total += len(mem.read())
    return total


# ---------------------------------------------------------------- imagecodecs (extra import)


def register_imagecodecs() -> bool:
    """What a reader would have to run before ``open_group`` to decode imagecodecs codecs."""
    try:
        import imagecodecs.numcodecs as icn
    except ImportError:
        return False
    icn.register_codecs()  # numcodecs registry: ids "imagecodecs_*"
    for ident, base in (
        ("jpegxl", _NumcodecsArrayBytesCodec),
        ("jpegls", _NumcodecsArrayBytesCodec),
        ("lerc", _NumcodecsArrayBytesCodec),
        ("zfp", _NumcodecsArrayBytesCodec),
        ("blosc2", _NumcodecsBytesBytesCodec),
    ):
        cls = type(f"IC{ident}", (base,), {}, codec_name=f"imagecodecs_{ident}")
        register_codec(f"numcodecs.imagecodecs_{ident}", cls)
    return True


def _ic(ident: str, **config: Any) -> Any:
    from zarr.registry import get_codec_class

    return get_codec_class(f"numcodecs.imagecodecs_{ident}")(**config)


# ---------------------------------------------------------------- candidates


@dataclass(frozen=True)
class Candidate:
    name: str
    tier: str  # builtin | pkg:<package> | import:<package>
    kinds: str  # "uint16", "float32" or "any"
    build: Callable[[np.dtype], dict[str, Any]]


def _bytes_then(*compressors: Any) -> Callable[[np.dtype], dict[str, Any]]:
    return lambda dt: {"filters": (), "serializer": BytesCodec(), "compressors": compressors}


def _delta_then(*compressors: Any, transpose: bool = False) -> Callable[[np.dtype], dict[str, Any]]:
    def build(dt: np.dtype) -> dict[str, Any]:
        filters: tuple[Any, ...] = (znc.Delta(dtype=dt.str),)
        if transpose:  # vertical difference: swap the last two axes, then difference
            filters = (TransposeCodec(order=(0, 1, 3, 2)), *filters)
        return {"filters": filters, "serializer": BytesCodec(), "compressors": compressors}

    return build


def _serializer(make: Callable[[], Any], filters: Sequence[Any] = ()) -> Callable[..., Any]:
    return lambda dt: {"filters": tuple(filters), "serializer": make(), "compressors": ()}


def _blosc(cname: str, shuffle: str, clevel: int) -> BloscCodec:
    return BloscCodec(cname=cname, clevel=clevel, shuffle=shuffle)


def _blosc_only(cname: str, shuffle: str, clevel: int) -> Callable[[np.dtype], dict[str, Any]]:
    return _bytes_then(_blosc(cname, shuffle, clevel))


def _blosc2(shuffle: str) -> Callable[[np.dtype], dict[str, Any]]:
    def build(dt: np.dtype) -> dict[str, Any]:
        codec = _ic("blosc2", compressor="zstd", level=5, shuffle=shuffle, typesize=dt.itemsize)
        return {"filters": (), "serializer": BytesCodec(), "compressors": (codec,)}

    return build


def candidates(with_imagecodecs: bool) -> list[Candidate]:
    c = [
        Candidate("zstd-1", "builtin", "any", _bytes_then(ZstdCodec(level=1))),
        Candidate("zstd-3", "builtin", "any", _bytes_then(ZstdCodec(level=3))),
        Candidate("zstd-9", "builtin", "any", _bytes_then(ZstdCodec(level=9))),
        Candidate("zstd-15", "builtin", "any", _bytes_then(ZstdCodec(level=15))),
        Candidate("zstd-19", "builtin", "any", _bytes_then(ZstdCodec(level=19))),
        Candidate("shuffle+zstd-19", "builtin", "any",
                  lambda dt: {"filters": (), "serializer": BytesCodec(),
                              "compressors": (znc.Shuffle(elementsize=dt.itemsize),
                                              ZstdCodec(level=19))}),
        Candidate("blosc-lz4-shuffle-5", "builtin", "any", _blosc_only("lz4", "shuffle", 5)),
        Candidate("blosc-lz4-bitshuffle-5", "builtin", "any",
                  _blosc_only("lz4", "bitshuffle", 5)),
        Candidate("blosc-zstd-shuffle-5", "builtin", "any", _blosc_only("zstd", "shuffle", 5)),
        Candidate("blosc-zstd-bitshuffle-5", "builtin", "any",
                  _blosc_only("zstd", "bitshuffle", 5)),
        Candidate("blosc-zstd-shuffle-9", "builtin", "any", _blosc_only("zstd", "shuffle", 9)),
        Candidate("delta+blosc-zstd-shuffle-5", "builtin", "uint16",
                  _delta_then(_blosc("zstd", "shuffle", 5))),
        Candidate("delta+blosc-zstd-bitshuffle-5", "builtin", "uint16",
                  _delta_then(_blosc("zstd", "bitshuffle", 5))),
        Candidate("delta+blosc-zstd-shuffle-9", "builtin", "uint16",
                  _delta_then(_blosc("zstd", "shuffle", 9))),
        Candidate("delta+blosc-lz4-bitshuffle-5", "builtin", "uint16",
                  _delta_then(_blosc("lz4", "bitshuffle", 5))),
        Candidate("vdelta+blosc-zstd-shuffle-5", "builtin", "uint16",
                  _delta_then(_blosc("zstd", "shuffle", 5), transpose=True)),
        Candidate("pcodec-4", "pkg:pcodec", "any", _serializer(lambda: znc.PCodec(level=4))),
        Candidate("pcodec-8", "pkg:pcodec", "any", _serializer(lambda: znc.PCodec(level=8))),
        Candidate("pcodec-10", "pkg:pcodec", "any", _serializer(lambda: znc.PCodec(level=10))),
    ]  # fmt: skip
    if with_imagecodecs:
        c += [
            Candidate("jpegxl-lossless-e1", "import:imagecodecs", "uint16",
                      _serializer(lambda: _ic("jpegxl", lossless=True, effort=1))),
            Candidate("jpegxl-lossless-e3", "import:imagecodecs", "uint16",
                      _serializer(lambda: _ic("jpegxl", lossless=True, effort=3))),
            # JPEG-LS wants bands last: transpose (1,C,H,W) -> (1,H,W,C), codec squeezes the 1
            Candidate("jpegls", "import:imagecodecs", "uint16",
                      lambda dt: {"filters": (TransposeCodec(order=(0, 2, 3, 1)),),
                                  "serializer": _ic("jpegls"), "compressors": ()}),
            Candidate("lerc-maxzerror0", "import:imagecodecs", "any",
                      _serializer(lambda: _ic("lerc", level=0.0))),
            Candidate("zfp-reversible", "import:imagecodecs", "float32",
                      _serializer(lambda: _ic("zfp"))),
            Candidate("blosc2-zstd-shuffle-5", "import:imagecodecs", "any", _blosc2("shuffle")),
            Candidate("blosc2-zstd-bitshuffle-5", "import:imagecodecs", "any",
                      _blosc2("bitshuffle")),
        ]  # fmt: skip
    return c


def applies(cand: Candidate, dtype: np.dtype) -> bool:
    return cand.kinds == "any" or cand.kinds == dtype.name


# ---------------------------------------------------------------- measuring


def build_array(
    stack: np.ndarray, kwargs: dict[str, Any], chunk_n: int = 1
) -> tuple[zarr.storage.MemoryStore, int]:
    """Write ``stack`` (N, ...) as one shard of chunks of ``chunk_n`` samples; stored bytes."""
    store = zarr.storage.MemoryStore()
    shape = stack.shape
    arr = zarr.create_array(
        store,
        shape=shape,
        dtype=stack.dtype,
        chunks=(chunk_n, *shape[1:]),
        shards=shape,
        fill_value=0,
        **kwargs,
    )
    arr[...] = stack
    stored = sum(
        len(v.to_bytes()) for k, v in store._store_dict.items() if not k.endswith("zarr.json")
    )
    back = zarr.open_array(store, mode="r")[...]
    if not np.array_equal(back, stack) or back.dtype != stack.dtype:
        raise AssertionError("round trip is not bit-exact")
    return store, stored


def _inner_codecs(store: zarr.storage.MemoryStore) -> list[Any]:
    arr = zarr.open_array(store, mode="r")
    sharding = arr.metadata.codecs[0]
    return list(sharding.codecs)


def _sync_pair(codec: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """encode/decode callables that run exactly the numcodecs object zarr runs for ``codec``."""
    if isinstance(codec, TransposeCodec):
        order = tuple(codec.order)
        inverse = tuple(int(i) for i in np.argsort(order))
        return (lambda x: np.ascontiguousarray(x.transpose(order)),
                lambda x: np.ascontiguousarray(x.transpose(inverse)))  # fmt: skip
    if isinstance(codec, BytesCodec):
        return (lambda x: x.tobytes(), lambda b: b)  # reshape is done by the caller
    if isinstance(codec, Crc32cCodec):  # layout 2 ends every chunk with one
        from numcodecs import CRC32C

        nc = CRC32C()
    elif isinstance(codec, ZstdCodec):
        nc = codec._zstd_codec
    elif isinstance(codec, BloscCodec):
        nc = codec._blosc_codec
    elif isinstance(codec, _NumcodecsCodec):
        nc = codec._codec
    else:
        raise TypeError(f"no sync path for {codec!r}")
    return nc.encode, nc.decode


def chain(codecs: list[Any], sample: np.ndarray) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    """Sync encode/decode of one chunk through ``codecs``, feeding each codec what zarr feeds it.

    Array codecs get arrays (their input shape and dtype are recorded so decode can restore
    them, as zarr does from the chunk spec); bytes-to-bytes codecs get uint8 arrays.
    """
    pairs = [_sync_pair(c) for c in codecs]
    takes_array = [not isinstance(c, BytesBytesCodec) for c in codecs]
    specs: list[tuple[tuple[int, ...], np.dtype] | None] = []

    def encode() -> Any:
        y: Any = sample[None]
        for (enc, _), is_array in zip(pairs, takes_array, strict=True):
            if not is_array and not isinstance(y, np.ndarray):
                y = np.frombuffer(y, np.uint8)
            y = enc(y)
        return y

    y: Any = sample[None]
    for (enc, _), is_array in zip(pairs, takes_array, strict=True):
        if is_array:
            specs.append((y.shape, y.dtype))
        else:
            specs.append(None)
            y = np.frombuffer(y, np.uint8) if not isinstance(y, np.ndarray) else y
        y = enc(y)

    def decode(blob: Any) -> np.ndarray:
        y = blob
        for (_, dec), spec in zip(reversed(pairs), reversed(specs), strict=True):
            if not isinstance(y, np.ndarray):
                y = np.frombuffer(y, np.uint8)
            y = dec(y)
            if spec is not None:
                shape, dtype = spec
                y = y if isinstance(y, np.ndarray) else np.frombuffer(y, dtype)
                y = (y if y.dtype == dtype else y.view(dtype)).reshape(shape)
        return y

    return encode, decode


def rate(fn: Callable[[], Any], nbytes: int, seconds: float) -> float:
    """MB/s of ``nbytes`` per call: best of 3 batches of about ``seconds`` / 3 each."""
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    reps = max(1, int(seconds / 3 / once))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return nbytes / best / 1e6


@dataclass
class Row:
    array: str
    candidate: str
    tier: str
    bytes_per_sample: float
    geotiff_bytes: int
    ratio: float
    encode_mbs: float | None = None
    decode_mbs: float | None = None
    zarr_read_mbs: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def measure_real(cand: Candidate, name: str, sample: np.ndarray, geo: int, seconds: float) -> Row:
    kwargs = cand.build(sample.dtype)
    stack = np.repeat(sample[None], N_SHARD, axis=0)
    store, stored = build_array(stack, kwargs)
    encode, decode = chain(_inner_codecs(store), sample)
    blob = encode()
    if not np.array_equal(decode(blob).reshape(sample.shape), sample):
        raise AssertionError(f"{cand.name}/{name}: codec chain is not bit-exact")
    arr = zarr.open_array(store, mode="r")
    per = stored / N_SHARD
    return Row(
        array=name,
        candidate=cand.name,
        tier=cand.tier,
        bytes_per_sample=per,
        geotiff_bytes=geo,
        ratio=per / geo,
        encode_mbs=rate(encode, sample.nbytes, seconds),
        decode_mbs=rate(lambda: decode(blob), sample.nbytes, seconds),
        zarr_read_mbs=rate(lambda: arr[...], stack.nbytes, seconds),
    )


# ---------------------------------------------------------------- reporting


def overall(rows: list[Row], geo: dict[str, int]) -> list[dict[str, Any]]:
    """Per candidate present on all five arrays, and for the pipelines of ``lake.codecs``."""
    by = {(r.array, r.candidate): r for r in rows}
    names = list(dict.fromkeys(r.candidate for r in rows))
    out = []
    total_geo = sum(geo.values())
    for cand in names:
        if all((a, cand) in by for a in geo):
            b = sum(by[(a, cand)].bytes_per_sample for a in geo)
            out.append({"candidate": cand, "bytes_per_pair": b, "ratio": b / total_geo})
    return out


def lake_rows(
    data: dict[str, np.ndarray], geo: dict[str, int], seconds: float, portable: bool
) -> list[Row]:
    from lake.codecs import codecs_for

    label = "lake.codecs portable" if portable else "lake.codecs default"
    tier = "builtin" if portable else "pkg:pcodec"
    rows = []
    for name, sample in data.items():
        kwargs = codecs_for(name, portable=portable)
        cand = Candidate(label, tier, "any", lambda dt, kw=kwargs: kw)
        rows.append(measure_real(cand, name, sample, geo[name], seconds))
    return rows


def chunk_experiment(
    samples: dict[str, list[np.ndarray]], kwargs_of: dict[str, Callable[[np.dtype], Any]]
) -> list[dict[str, Any]]:
    """Bytes/sample with chunk = 1 sample against chunk = all samples of the list."""
    out = []
    for label, build in kwargs_of.items():
        for name, lst in samples.items():
            stack = np.stack(lst)
            kwargs = build(stack.dtype)
            _, one = build_array(stack, kwargs, 1)
            _, many = build_array(stack, kwargs, len(lst))
            out.append({"pipeline": label, "array": name, "samples": len(lst),
                        "bytes_chunk1": one / len(lst), "bytes_chunkN": many / len(lst),
                        "gain": 1 - many / one})  # fmt: skip
    return out


def _fmt(v: float | None, spec: str) -> str:
    width = spec.split(".")[0]
    return format("-", f">{width}") if v is None else format(v, spec)


def print_report(report: dict[str, Any]) -> None:
    print(f"sample: {report['sample']}")
    print(f"GeoTIFF bytes per array: {report['geotiff_bytes']} (total {report['geotiff_total']})")
    head = (
        f"{'array':14} {'candidate':31} {'tier':19} {'B/sample':>9} {'ratio':>6} "
        f"{'enc MB/s':>9} {'dec MB/s':>9} {'zarr rd':>8}"
    )
    print("\n== real sample, chunk = 1 sample, shard of 32 ==")
    print(head)
    for r in report["rows"]:
        print(
            f"{r['array']:14} {r['candidate']:31} {r['tier']:19} {r['bytes_per_sample']:9.0f} "
            f"{r['ratio']:6.3f} {_fmt(r['encode_mbs'], '9.0f')} {_fmt(r['decode_mbs'], '9.0f')} "
            f"{_fmt(r['zarr_read_mbs'], '8.0f')}"
        )
    for key, title in (("overall", "overall, all 15 files"), ("lake", "lake.codecs pipelines")):
        print(f"\n== {title} ==")
        for o in report[key]:
            print(
                f"  {o['candidate']:31} {o['bytes_per_pair']:9.0f} B/pair  ratio {o['ratio']:.3f}"
            )
    if report.get("synthetic"):
        syn = report["synthetic"]
        print(
            f"\n== synthetic (secondary): {N_SYNTH} distinct samples, GeoTIFF {syn['geotiff']} =="
        )
        print(f"  {'candidate':31} {'overall':>7} " + " ".join(f"{a:>13}" for a in ARRAY_BANDS))
        for o in syn["overall"]:
            per = " ".join(_fmt(o["per_array"].get(a), "13.3f") for a in ARRAY_BANDS)
            print(f"  {o['candidate']:31} {_fmt(o['ratio'], '7.3f')} {per}")
    print("\n== chunk = 1 sample vs chunk = several samples (bytes/sample) ==")
    for e in report["chunking"]:
        print(
            f"  {e['source']:9} {e['pipeline']:26} {e['array']:14} n={e['samples']:2d} "
            f"{e['bytes_chunk1']:9.0f} -> {e['bytes_chunkN']:9.0f}  ({100 * e['gain']:+.1f} %)"
        )
    for s in report["skipped"]:
        print(f"skipped: {s}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ap.add_argument("--seconds", type=float, default=0.06, help="timing budget per figure")
    ap.add_argument("--no-synthetic", action="store_true", help="skip the secondary figures")
    args = ap.parse_args(argv)

    data, geo, profiles = load_real()
    skipped: list[str] = []
    with_ic = register_imagecodecs()
    if not with_ic:
        skipped.append("imagecodecs candidates (package not installed)")
    try:
        import pcodec  # noqa: F401

        with_pcodec = True
    except ImportError:
        with_pcodec = False
        skipped.append("pcodec candidates and lake.codecs default (package not installed)")

    rows: list[Row] = []
    for cand in candidates(with_ic):
        if cand.tier == "pkg:pcodec" and not with_pcodec:
            continue
        for name, sample in data.items():
            if not applies(cand, sample.dtype):
                continue
            try:
                rows.append(measure_real(cand, name, sample, geo[name], args.seconds))
            except AssertionError:
                raise
            except Exception as exc:  # a codec that cannot take this shape/dtype
                skipped.append(f"{cand.name}/{name}: {type(exc).__name__}: {str(exc)[:80]}")
    lake = lake_rows(data, geo, args.seconds, portable=True)
    if with_pcodec:
        lake += lake_rows(data, geo, args.seconds, portable=False)
    rows += lake

    report: dict[str, Any] = {
        "sample": str(SAMPLE),
        "geotiff_bytes": geo,
        "geotiff_total": sum(geo.values()),
        "rows": [r.__dict__ for r in rows],
        "overall": [o for o in overall(rows, geo) if not o["candidate"].startswith("lake.")],
        "lake": [o for o in overall(lake, geo)],
        "skipped": skipped,
    }

    # chunk = 1 vs several: the 4 rotations of the real sample (no rows shared between them)
    from lake.codecs import codecs_for

    labels = ["blosc-zstd-shuffle-5", "lake.codecs portable"]
    labels += ["lake.codecs default"] if with_pcodec else []
    chunking: list[dict[str, Any]] = []

    def kwargs_for(label: str, name: str, dtype: np.dtype) -> dict[str, Any]:
        if label.startswith("lake.codecs"):
            return codecs_for(name, portable=label.endswith("portable"))
        return _blosc_only("zstd", "shuffle", 5)(dtype)

    def run_chunking(source: str, samples: dict[str, list[np.ndarray]]) -> None:
        for label in labels:
            for name, lst in samples.items():
                kw = kwargs_for(label, name, lst[0].dtype)
                res = chunk_experiment({name: lst}, {label: lambda dt, kw=kw: kw})
                chunking.extend({"source": source, **e} for e in res)

    rotations = {n: [np.ascontiguousarray(np.rot90(s, k, axes=(-2, -1))) for k in range(4)]
                 for n, s in data.items()}  # fmt: skip
    run_chunking("real-rot4", rotations)

    if not args.no_synthetic:
        rng = np.random.default_rng(20170613)
        synth = [synthetic_sample(rng) for _ in range(N_SYNTH)]
        syn_geo = {n: sum(geotiff_bytes(n, s[n], profiles) for s in synth) for n in ARRAY_BANDS}
        syn_overall = []
        for cand in [
            *candidates(False),
            Candidate("lake.codecs portable", "builtin", "any", lambda dt: None),
            Candidate("lake.codecs default", "pkg:pcodec", "any", lambda dt: None),
        ]:
            if cand.tier == "pkg:pcodec" and not with_pcodec:
                continue
            per: dict[str, float] = {}
            for name in ARRAY_BANDS:
                stack = np.stack([s[name] for s in synth])
                if not applies(cand, stack.dtype):
                    continue
                if cand.name.startswith("lake.codecs"):
                    kwargs = kwargs_for(cand.name, name, stack.dtype)
                else:
                    kwargs = cand.build(stack.dtype)
                try:
                    per[name] = build_array(stack, kwargs)[1]
                except ValueError:  # shape the codec cannot take (same skips as above)
                    continue
            complete = len(per) == len(ARRAY_BANDS)
            syn_overall.append({
                "candidate": cand.name,
                "ratio": sum(per.values()) / sum(syn_geo.values()) if complete else None,
                "per_array": {n: per[n] / syn_geo[n] for n in per},
            })  # fmt: skip
        report["synthetic"] = {"geotiff": syn_geo, "overall": syn_overall}
        run_chunking("synthetic", {n: [s[n] for s in synth[:8]] for n in ARRAY_BANDS})
    report["chunking"] = chunking

    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

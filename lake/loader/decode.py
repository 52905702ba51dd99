"""Decoding chunks into arrays: the codec chain of ``zarr.json``, resampling, normalisation.

Chunks of a block of samples are decoded in a thread pool (pcodec, zstd and NumPy release the
GIL for most of the work) straight into preallocated arrays:

* rasters (``s2_10m``, ``s2_20m``, ``s2_60m``, ``s1``) as float32 ``(n, bands, size, size)``:
  the values exactly as stored (uint16 values are exact in float32), or normalised with the
  official per-band statistics (:data:`lake.bigearthnet.BAND_STATS`) on request;
* ``reference_map`` as int32 ``(n, size, size)`` CLC codes (never normalised; resampled with
  nearest neighbour whatever the mode);
* or, with ``native``, every raster in its stored dtype (uint16 S2 and map, float32 S1), with
  no per-sample float work: the normalisation is then done on the device
  (:mod:`lake.loader.device`).

and, for vision-language models, uint8 composites computed from the raw values before any
normalisation or resampling of the multispectral arrays:

* ``rgb``: ``(n, 3, S, S)`` R, G, B from ``s2_10m``'s B04, B03, B02 with a stretch
  (:func:`lake.vlm.composite.s2_rgb`), resized to ``image_size``
  (:func:`lake.vlm.composite.resize`);
* ``s1_rgb``: ``(n, 3, S, S)`` false colour of ``s1``
  (:func:`lake.vlm.composite.s1_false_colour`), resized the same way.

Resampling to a common ``size`` is separable: ``nearest`` takes the pixel whose centre is
nearest (PyTorch's ``nearest-exact``), ``bilinear`` interpolates between pixel centres
(PyTorch's ``bilinear`` with ``align_corners=False``, no antialiasing).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal

import numpy as np

from lake.bigearthnet import ARRAYS_BY_NAME, BAND_STATS
from lake.errors import ConfigError, IntegrityError, LayoutError, ShardReadError
from lake.integrity import crc32c_ok
from lake.loader.fetch import ArrayLayout, ShardData
from lake.vlm.composite import FIXED_STRETCH, Stretch, resize, s1_false_colour, s2_rgb

Resample = Literal["nearest", "bilinear"]
RESAMPLE_MODES: Final = ("nearest", "bilinear")
RASTERS: Final = ("s2_10m", "s2_20m", "s2_60m", "s1", "reference_map")
#: uint8 composites for VLMs and the array each is computed from.
COMPOSITES: Final = {"rgb": "s2_10m", "s1_rgb": "s1"}
_BYTES_TO_BYTES: Final = {"zstd": "zstd", "blosc": "blosc", "gzip": "gzip"}


def chunk_decoder(layout: ArrayLayout) -> Callable[[memoryview | bytes], np.ndarray]:
    """A function that decodes one encoded chunk of ``layout`` into its sample array.

    Supports what the lake writes (``numcodecs.pcodec``; ``bytes`` + ``zstd``; the portable
    ``numcodecs.delta`` + ``bytes`` + ``blosc``; each followed by ``crc32c`` in layout 2) and
    ``gzip``. The decoder checks a ``crc32c`` before anything else decodes the bytes, and
    raises :class:`~lake.errors.IntegrityError` when it fails (the caller names the place).

    Raises:
        LayoutError: A codec is not supported.
    """
    import numcodecs

    codecs: list[dict[str, Any]] = json.loads(layout.codecs)
    dtype = np.dtype(layout.dtype)
    shape = layout.sample_shape
    filters: list[Any] = []
    serializer: Callable[[bytes | memoryview], np.ndarray] | None = None
    compressors: list[Callable[[Any], Any]] = []
    for codec in codecs:
        name, conf = codec["name"], codec.get("configuration", {}) or {}
        if name == "bytes":
            dt = dtype.newbyteorder("<" if conf.get("endian", "little") == "little" else ">")

            def _frombytes(b: bytes | memoryview, dt: np.dtype[Any] = dt) -> np.ndarray:
                return np.frombuffer(b, dtype=dt)

            serializer = _frombytes
        elif name == "numcodecs.pcodec":
            serializer = numcodecs.get_codec({"id": "pcodec", **conf}).decode
        elif name in _BYTES_TO_BYTES:
            ncodec = numcodecs.get_codec({"id": _BYTES_TO_BYTES[name]})
            compressors.append(ncodec.decode)
        elif name == "crc32c":
            compressors.append(_checked)
        elif name == "numcodecs.delta":
            filters.append(numcodecs.get_codec({"id": "delta", **conf}))
        else:
            raise LayoutError(
                f"array {layout.name!r}: the loader cannot decode codec {name!r}; "
                "read it with zarr instead"
            )
    if serializer is None:
        raise LayoutError(f"array {layout.name!r}: no array-to-bytes codec in {codecs}")
    decode_bytes = serializer

    def decode(raw: memoryview | bytes) -> np.ndarray:
        data: Any = raw
        for c in reversed(compressors):
            data = c(data)
        out = decode_bytes(data).reshape(shape)
        for f in reversed(filters):
            out = np.asarray(f.decode(out)).reshape(shape)
        return out

    return decode


def _checked(raw: Any) -> memoryview:
    """The bytes before the trailing CRC32C, once they match it.

    Raises:
        IntegrityError: They do not (the message is completed by :class:`BlockDecoder`).
    """
    if not crc32c_ok(raw):
        raise IntegrityError("the stored bytes fail their CRC32C check")
    return memoryview(raw)[:-4]


@lru_cache(maxsize=32)
def _bilinear_taps(n: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source pixels ``lo``, ``hi`` and weight of ``hi`` of each target pixel (half-pixel centres).

    Interpolating with gathers and a lerp (not a matrix product) keeps BLAS threads out of the
    decode threads: small GEMMs under OpenBLAS's own threading were 40x slower here.
    """
    src = np.clip((np.arange(size, dtype=np.float64) + 0.5) * (n / size) - 0.5, 0, n - 1)
    lo = np.minimum(np.floor(src).astype(np.int64), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    return lo, hi, (src - lo).astype(np.float32)


def _lerp(a: np.ndarray, axis: int, n: int, size: int) -> np.ndarray:
    lo, hi, w = _bilinear_taps(n, size)
    shape = [1] * a.ndim
    shape[axis] = size
    wb = w.reshape(shape)
    low = np.take(a, lo, axis=axis)
    return low + (np.take(a, hi, axis=axis) - low) * wb


@lru_cache(maxsize=32)
def _nearest_index(n: int, size: int) -> np.ndarray:
    """Source pixel of each target pixel: the one whose centre is nearest."""
    return np.minimum(((np.arange(size) + 0.5) * (n / size)).astype(np.int64), n - 1)


def resample(a: np.ndarray, size: int, mode: Resample = "nearest") -> np.ndarray:
    """Resample the last two axes of ``a`` (square) to ``size x size``.

    Args:
        a: ``(..., n, n)`` values.
        size: Target side in pixels.
        mode: ``nearest`` (any dtype, values kept) or ``bilinear`` (float32 out).

    Raises:
        ConfigError: Unknown mode.
    """
    n = a.shape[-1]
    if n == size:
        return a
    if mode == "nearest":
        idx = _nearest_index(n, size)
        return a[..., idx, :][..., idx]
    if mode == "bilinear":
        f = a.astype(np.float32, copy=False)
        return _lerp(_lerp(f, f.ndim - 2, n, size), f.ndim - 1, n, size)
    raise ConfigError(f"resample={mode!r}: use one of {', '.join(RESAMPLE_MODES)}")


@lru_cache(maxsize=32)
def band_stats(
    name: str, stats: tuple[tuple[str, float, float], ...] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and 1/std of a raster array, shaped ``(bands, 1, 1)``, float32.

    Args:
        name: The raster array.
        stats: ``(band, mean, std)`` to use (e.g. the lake's own, :mod:`lake.loader.stats`);
            empty: the official :data:`~lake.bigearthnet.BAND_STATS`.

    Raises:
        ConfigError: ``stats`` lacks a band of the array.
    """
    table = {b: (m, sd) for b, m, sd in stats} if stats else BAND_STATS
    bands = ARRAYS_BY_NAME[name].bands
    missing = [b for b in bands if b not in table]
    if missing:
        raise ConfigError(f"the normalisation statistics lack band(s) {missing} of {name!r}")
    mean = np.array([table[b][0] for b in bands], dtype=np.float32)[:, None, None]
    inv = np.array([1.0 / table[b][1] for b in bands], dtype=np.float32)[:, None, None]
    return mean, inv


@dataclass(frozen=True)
class DecodeSpec:
    """What to make of the chunks.

    Attributes:
        arrays: Raster arrays to decode (``s2_10m``, ..., ``reference_map``).
        resample_to: Common side in pixels, or None for native sizes.
        resample: ``nearest`` or ``bilinear`` (the reference map is always nearest).
        normalize: Normalise rasters with per-band statistics.
        stats: ``(band, mean, std)`` to normalise with; empty: the official band statistics.
        composites: uint8 composites to compute (``rgb``, ``s1_rgb``).
        image_size: Side of the composites in pixels (None: the native 120).
        stretch: The reflectance range of ``rgb``.
        native: Deliver rasters in their stored dtypes (S2 and the map uint16, S1 float32)
            instead of float32 / int32; no normalisation then (done on the device).
    """

    arrays: tuple[str, ...]
    resample_to: int | None = None
    resample: Resample = "nearest"
    normalize: bool = False
    stats: tuple[tuple[str, float, float], ...] = ()
    composites: tuple[str, ...] = ()
    image_size: int | None = None
    stretch: Stretch = FIXED_STRETCH
    native: bool = False

    @property
    def sources(self) -> tuple[str, ...]:
        """The arrays to decode: the requested ones and those the composites are made from."""
        return tuple(dict.fromkeys((*self.arrays, *(COMPOSITES[c] for c in self.composites))))

    @property
    def outputs(self) -> tuple[str, ...]:
        """The arrays delivered: the requested rasters, then the composites."""
        return (*self.arrays, *self.composites)

    def __post_init__(self) -> None:
        if self.resample not in RESAMPLE_MODES:
            raise ConfigError(f"resample={self.resample!r}: use one of {', '.join(RESAMPLE_MODES)}")
        if self.resample_to is not None and not 1 <= self.resample_to <= 1024:
            raise ConfigError(f"resample_to={self.resample_to}: use a size in 1..1024 pixels")
        if self.image_size is not None and not 1 <= self.image_size <= 4096:
            raise ConfigError(f"image_size={self.image_size}: use a size in 1..4096 pixels")
        if self.native and (self.normalize or self.resample != "nearest"):
            raise ConfigError(
                "native dtypes are delivered as stored: no normalize, no bilinear resampling"
            )
        unknown = [c for c in self.composites if c not in COMPOSITES]
        if unknown:
            raise ConfigError(f"composites {unknown}: use {', '.join(COMPOSITES)}")

    def dtype(self, layout: ArrayLayout) -> np.dtype[Any]:
        """Output dtype of an array: as stored (``native``), else float32 (the map int32)."""
        if self.native:
            return np.dtype(layout.dtype)
        return np.dtype(np.int32 if layout.name == "reference_map" else np.float32)

    def shape(self, layout: ArrayLayout) -> tuple[int, ...]:
        """Output shape of one sample of an array."""
        lead, side = layout.sample_shape[:-2], layout.sample_shape[-1]
        size = self.resample_to or side
        return (*lead, size, size)


class BlockDecoder:
    """Decodes the chunks of a block of samples into arrays, in threads.

    Args:
        layouts: Layout of each array in ``spec.arrays``.
        spec: What to produce.
        threads: Decode threads.
    """

    def __init__(
        self, layouts: Mapping[str, ArrayLayout], spec: DecodeSpec, threads: int = 2
    ) -> None:
        self.layouts = {n: layouts[n] for n in spec.sources}
        self.spec = spec
        self._decoders = {n: chunk_decoder(self.layouts[n]) for n in spec.sources}
        self._threads = max(1, threads)
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="lake-decode")

    def close(self) -> None:
        """Stop the decode threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def decode(
        self,
        samples: np.ndarray,
        data: Mapping[tuple[str, int], ShardData],
        failed: Mapping[tuple[str, int], BaseException],
    ) -> tuple[dict[str, np.ndarray], dict[int, ShardReadError]]:
        """Decode the samples (indices into the group) of a block.

        Args:
            samples: Sample index of each row of the block.
            data: Fetched chunks by ``(array, shard)``.
            failed: Why each ``(array, shard)`` that could not be fetched failed.

        Returns:
            ``array -> (n, ...) values`` and ``row -> error`` for rows that could not be
            decoded (their values are left as zeros): an :class:`~lake.errors.IntegrityError`
            when stored bytes fail their checksum, else a
            :class:`~lake.errors.ShardReadError`; each names the array, shard and sample.
        """
        n = len(samples)
        out = {
            name: np.zeros(
                (n, *self.spec.shape(self.layouts[name])), dtype=self.spec.dtype(self.layouts[name])
            )
            for name in self.spec.arrays
        }
        for comp in self.spec.composites:
            side = self.spec.image_size or self.layouts[COMPOSITES[comp]].sample_shape[-1]
            out[comp] = np.zeros((n, 3, side, side), dtype=np.uint8)
        problems: dict[int, ShardReadError] = {}
        if not self.layouts or n == 0:
            return out, problems
        parts = np.array_split(np.arange(n), min(self._threads, n))
        futures = [
            self._pool.submit(self._decode_rows, rows, samples, data, failed, out)
            for rows in parts
            if len(rows)
        ]
        for fut in futures:
            problems.update(fut.result())
        return out, problems

    def _decode_rows(
        self,
        rows: np.ndarray,
        samples: np.ndarray,
        data: Mapping[tuple[str, int], ShardData],
        failed: Mapping[tuple[str, int], BaseException],
        out: dict[str, np.ndarray],
    ) -> dict[int, ShardReadError]:
        problems: dict[int, ShardReadError] = {}
        for row in rows.tolist():
            sample = int(samples[row])
            for name, layout in self.layouts.items():
                shard, local = divmod(sample, layout.samples_per_shard)
                key = (name, shard)
                if key in failed:
                    why = failed[key]
                    problems[row] = (
                        why if isinstance(why, ShardReadError) else ShardReadError(str(why))
                    )
                    break
                part = data.get(key)
                where = part.url if part is not None and part.url else f"shard {shard}"
                try:
                    raw = data[key].chunks[local]
                    values = self._decoders[name](raw)
                    if name in out:
                        out[name][row] = self._finish(name, values)
                    for comp in self.spec.composites:
                        if COMPOSITES[comp] == name:
                            out[comp][row] = self._composite(comp, values)
                except IntegrityError:
                    problems[row] = IntegrityError(
                        f"array {name!r}, sample {sample}: the stored bytes fail their CRC32C "
                        f"check (chunk {local} of the shard object {where}); the object was "
                        "damaged in storage or in transit: run `lake pipeline verify` on the "
                        "release and restore the object from a copy, or re-ingest it"
                    )
                    break
                except Exception as exc:
                    problems[row] = ShardReadError(
                        f"cannot decode sample {sample} (chunk {local} of shard {shard} of "
                        f"array {name!r}, {where}): "
                        f"{type(exc).__name__}: {exc}"
                    )
                    break
        return problems

    def _composite(self, comp: str, values: np.ndarray) -> np.ndarray:
        """A uint8 ``(3, S, S)`` composite of one sample's raw values."""
        image = s2_rgb(values, self.spec.stretch) if comp == "rgb" else s1_false_colour(values)
        size = self.spec.image_size
        return resize(image, size) if size and size != image.shape[-1] else image

    def _finish(self, name: str, values: np.ndarray) -> np.ndarray:
        spec = self.spec
        if name == "reference_map" or spec.native:
            return resample(values, spec.resample_to, "nearest") if spec.resample_to else values
        a = values.astype(np.float32)
        if spec.resample_to:
            a = resample(a, spec.resample_to, spec.resample)
        if spec.normalize:
            mean, inv = band_stats(name, spec.stats)
            a = (a - mean) * inv
        return a

"""Reading chunks out of the shard objects: whole shards or coalesced byte ranges, retried.

A shard object of a sharded Zarr v3 array (``index_location = "end"``) is the chunks' bytes
followed by an index of ``(offset, nbytes)`` little-endian uint64 pairs, one per chunk of the
shard, and a CRC32C of the index (4 bytes). A :class:`ShardReader` reads, for each
``(array, shard)``, either the whole object (one GET, index included) when many of its chunks are
needed, or the index (a suffix range, cached) and then the needed chunks as byte ranges merged
across small gaps. Requests run in a thread pool (many in flight); each is retried with
exponential backoff on transient errors (timeouts, 5xx, connection resets, short reads).

A reader holds clients, so it is built inside the process that uses it (each DataLoader worker
builds its own from the picklable :class:`~lake.config.StoreSpec`).
"""

from __future__ import annotations

import errno
import json
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from lake.config import StoreSpec
from lake.errors import IntegrityError, LayoutError, ShardReadError
from lake.index import ReleaseIndex
from lake.layout import patches_path
from lake.loader.cache import ShardCache
from lake.storage import filesystem, one_get

log = logging.getLogger("lake.loader")

#: 2**64 - 1: the index entry of a chunk that was never written.
EMPTY: Final = np.uint64(0xFFFFFFFFFFFFFFFF)
_CRC_BYTES: Final = 4
#: Errors that say the object is not there or not ours to read: retrying cannot help.
_PERMANENT: Final = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


@dataclass(frozen=True)
class ArrayLayout:
    """How one array of the patch group is stored (read from its ``zarr.json``).

    Attributes:
        name: Array name (``s2_10m``, ...).
        sample_shape: Shape of one sample (one chunk).
        dtype: NumPy dtype string.
        samples_per_shard: Chunks (samples) per shard.
        n_samples: Samples in the array.
        codecs: The inner chunk codecs, as in ``zarr.json`` (JSON text, hashable).
        key_suffix: What follows the shard number in an object key (``/0/0/0``).
    """

    name: str
    sample_shape: tuple[int, ...]
    dtype: str
    samples_per_shard: int
    n_samples: int
    codecs: str
    key_suffix: str

    @property
    def index_nbytes(self) -> int:
        """Bytes of a shard's index, checksum included."""
        return 16 * self.samples_per_shard + _CRC_BYTES

    def key(self, group_path: str, shard: int) -> str:
        """The object key of a shard, relative to the lake root."""
        return f"{group_path}/{self.name}/c/{shard}{self.key_suffix}"


def read_layouts(spec: StoreSpec, release: str, names: Iterable[str]) -> dict[str, ArrayLayout]:
    """Read the layouts of some arrays of a release's patch group.

    Raises:
        LayoutError: An array is missing or is not sharded one sample per chunk with the index at
            the end (what the lake writes).
    """
    fs = filesystem(spec)
    group = patches_path(release)
    names = list(names)
    paths = [spec.path(f"{group}/{name}/zarr.json") for name in names]
    found = fs.cat(paths, on_error="return") if paths else {}  # all in flight at once on S3
    out = {}
    for name, path in zip(names, paths, strict=True):
        raw = found.get(path) if isinstance(found, dict) else None
        if isinstance(raw, FileNotFoundError) or raw is None:
            raise LayoutError(f"release {release!r} of {spec.url} has no array {name!r}")
        if isinstance(raw, BaseException):
            raise raw
        out[name] = _layout(name, json.loads(raw), spec.child(group, name).url)
    return out


def index_layouts(index: ReleaseIndex, names: Iterable[str]) -> dict[str, ArrayLayout]:
    """The layouts of some arrays from a release index (no request: :mod:`lake.index`).

    Raises:
        LayoutError: As :func:`read_layouts`.
    """
    group = index.spec.child(patches_path(index.name))
    return {name: _layout(name, index.array_meta(name), group.child(name).url) for name in names}


def _layout(name: str, meta: Mapping[str, Any], where: str) -> ArrayLayout:
    codecs = meta.get("codecs") or []
    if len(codecs) != 1 or codecs[0].get("name") != "sharding_indexed":
        raise LayoutError(f"{where}: expected one sharding_indexed codec, found {codecs}")
    conf = codecs[0]["configuration"]
    shard_shape = meta["chunk_grid"]["configuration"]["chunk_shape"]
    chunk_shape = conf["chunk_shape"]
    index_codecs = [c["name"] for c in conf.get("index_codecs", [])]
    if (
        chunk_shape[0] != 1
        or list(chunk_shape[1:]) != list(shard_shape[1:])
        or conf.get("index_location", "end") != "end"
        or index_codecs != ["bytes", "crc32c"]
    ):
        raise LayoutError(
            f"{where}: the loader reads shards of one-sample chunks with the index at the end "
            f"(bytes + crc32c); found chunks {chunk_shape} in shards {shard_shape}, index "
            f"{conf.get('index_location')} {index_codecs}"
        )
    separator = meta.get("chunk_key_encoding", {}).get("configuration", {}).get("separator", "/")
    if separator != "/":
        raise LayoutError(f"{where}: chunk key separator {separator!r} is not '/'")
    return ArrayLayout(
        name=name,
        sample_shape=tuple(int(s) for s in shard_shape[1:]),
        dtype=str(meta["data_type"]),
        samples_per_shard=int(shard_shape[0]),
        n_samples=int(meta["shape"][0]),
        codecs=json.dumps(conf["codecs"], sort_keys=True),
        key_suffix="".join("/0" for _ in shard_shape[1:]),
    )


@dataclass(frozen=True)
class RetryPolicy:
    """Retries with exponential backoff and full jitter.

    Attributes:
        max_retries: Retries after the first try (0: none).
        base_delay: Delay before the first retry, in seconds (doubled each retry, jittered).
        max_delay: Cap of one delay.
    """

    max_retries: int = 5
    base_delay: float = 0.2
    max_delay: float = 10.0

    def delay(self, attempt: int) -> float:
        """The pause before retry ``attempt`` (1-based)."""
        cap = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return cap / 2 + random.random() * cap / 2


class ShortRead(OSError):
    """Fewer bytes came back than were asked for (a connection dropped mid-body)."""


def is_transient(exc: BaseException) -> bool:
    """Whether an error may go away on retry: timeouts, resets, 5xx, short reads.

    A missing object, refused access or a bad request (``ValueError``) are permanent. fsspec and
    s3fs report most failures as ``OSError``; botocore and aiohttp errors that escape them count
    as transient, since they are connection-level.
    """
    if isinstance(exc, _PERMANENT):
        return False
    if isinstance(exc, OSError) and exc.errno in (errno.EINVAL, errno.ENOENT, errno.EACCES):
        return False
    if isinstance(exc, OSError | TimeoutError | ConnectionError):
        return True
    module = type(exc).__module__.split(".", 1)[0]
    return module in ("botocore", "aiobotocore", "aiohttp", "urllib3", "s3fs", "fsspec")


@dataclass
class ShardData:
    """The fetched bytes of one ``(array, shard)``: some or all of its chunks.

    Attributes:
        layout: The array.
        shard: The shard number.
        chunks: Local chunk number -> its encoded bytes.
        url: The shard object's URL (for messages).
    """

    layout: ArrayLayout
    shard: int
    chunks: dict[int, memoryview] = field(default_factory=dict)
    url: str = ""


@dataclass(frozen=True)
class FetchStats:
    """Counters of a reader (for tests and benchmarks).

    Attributes:
        requests: GET requests sent (retries included).
        bytes: Bytes received.
        retries: Retries after transient errors.
        keys: Object keys requested, in the order the requests were made.
        ranges: ``(start, end)`` of each request (None: whole object; negative: suffix).
    """

    requests: int
    bytes: int
    retries: int
    keys: tuple[str, ...]
    ranges: tuple[tuple[int | None, int | None], ...]


class ShardReader:
    """Reads the needed chunks of shard objects with many requests in flight.

    Build it in the process that uses it; it is not picklable (it holds clients and threads).

    Args:
        spec: The lake.
        release: The release whose patch group is read.
        layouts: The arrays that may be read.
        max_in_flight: Requests in flight at once (threads).
        retry: Retry policy for transient errors.
        cache: A local shard cache (whole objects are then always read, and kept).
        spool: A short-lived cache shared by the DataLoader workers of one epoch: whole objects
            that are read anyway go through it, so each is fetched once, not once per worker.
        dense_fraction: Read the whole object when at least this share of its chunks is needed.
        max_gap: Merge two byte ranges when at most this many bytes lie between them.
        timeout: Connect/read timeout of one S3 request, in seconds.
    """

    def __init__(
        self,
        spec: StoreSpec,
        release: str,
        layouts: Mapping[str, ArrayLayout],
        *,
        max_in_flight: int = 16,
        retry: RetryPolicy | None = None,
        cache: ShardCache | None = None,
        spool: ShardCache | None = None,
        dense_fraction: float = 0.25,
        max_gap: int = 256 * 1024,
        timeout: float = 60.0,
    ) -> None:
        self.spec = spec
        self.spool = spool
        self.group = patches_path(release)
        self.layouts = dict(layouts)
        self.retry = retry or RetryPolicy()
        self.cache = cache
        self.dense_fraction = dense_fraction
        self.max_gap = max_gap
        s3 = {"max_connections": max_in_flight + 4, "retries": 0, "timeout": timeout}
        self._fs = filesystem(spec, **(s3 if spec.protocol == "s3" else {}))
        # s3fs sends a HEAD before every whole-object GET (to split objects above its block
        # size into concurrent ranges); shard objects are smaller, and the HEAD doubled the
        # round trips of every whole-shard read. One GET it is.
        self._whole_kw = one_get(self._fs)
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="lake-fetch")
        self._indexes: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._requests = 0
        self._bytes = 0
        self._retries = 0
        self._keys: list[str] = []
        self._ranges: list[tuple[int | None, int | None]] = []

    def close(self) -> None:
        """Stop the request threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def stats(self) -> FetchStats:
        """Requests, bytes and retries so far."""
        with self._lock:
            return FetchStats(
                self._requests, self._bytes, self._retries, tuple(self._keys), tuple(self._ranges)
            )

    def url(self, layout: ArrayLayout, shard: int) -> str:
        """The URL of a shard object (for messages)."""
        return self.spec.child(layout.key(self.group, shard)).url

    def fetch(
        self, needs: Mapping[str, Mapping[int, np.ndarray]]
    ) -> tuple[dict[tuple[str, int], ShardData], dict[tuple[str, int], ShardReadError]]:
        """Fetch the needed chunks, shards in ascending order, many requests in flight.

        Dense shards are read whole (one GET, index included); for sparse ones the indexes are
        read first (suffix ranges, cached), then every coalesced range of every shard at once.

        Args:
            needs: ``array -> shard -> local chunk numbers`` (each within the shard).

        Returns:
            The data of each ``(array, shard)`` that could be read, and an error naming the
            shard for each one that could not (after retries).
        """
        jobs = sorted(
            (
                (shard, name, np.unique(np.asarray(local, dtype=np.int64)))
                for name, per_shard in needs.items()
                for shard, local in per_shard.items()
                if len(local)
            ),
            key=lambda j: (j[0], j[1]),
        )
        errors: dict[tuple[str, int], ShardReadError] = {}
        whole: list[tuple[ArrayLayout, int, np.ndarray]] = []
        sparse: list[tuple[ArrayLayout, int, np.ndarray]] = []
        for shard, name, local in jobs:
            layout = self.layouts[name]
            if local.min() < 0 or local.max() >= layout.samples_per_shard:
                raise ValueError(f"chunks {local} out of range for {name} shard {shard}")
            size = min(
                layout.samples_per_shard, layout.n_samples - shard * layout.samples_per_shard
            )
            dense = self.cache is not None or len(local) >= self.dense_fraction * size
            (whole if dense else sparse).append((layout, shard, local))
        index_futures = [self._pool.submit(self._index, lay, sh) for lay, sh, _ in sparse]
        whole_futures = [self._pool.submit(self._whole_shard, *job) for job in whole]
        range_jobs = []
        for (layout, shard, local), index_fut in zip(sparse, index_futures, strict=True):
            try:
                range_jobs.append((layout, shard, local, index_fut.result()))
            except ShardReadError as exc:
                errors[(layout.name, shard)] = exc
        # One flat list of range requests over every sparse shard, so all are in flight at once.
        requests = []
        for layout, shard, local, index in range_jobs:
            try:
                for lo, hi, members in self._plan_ranges(layout, shard, index, local):
                    requests.append((layout, shard, lo, hi, members, index))
            except ShardReadError as exc:
                errors[(layout.name, shard)] = exc
        range_futures = [
            self._pool.submit(self._get, lay, sh, lay.key(self.group, sh), lo, hi)
            for lay, sh, lo, hi, _, _ in requests
        ]
        data: dict[tuple[str, int], ShardData] = {}
        for (layout, shard, _), whole_fut in zip(whole, whole_futures, strict=True):
            try:
                data[(layout.name, shard)] = whole_fut.result()
            except ShardReadError as exc:
                errors[(layout.name, shard)] = exc
        for (layout, shard, lo, _hi, members, index), range_fut in zip(
            requests, range_futures, strict=True
        ):
            key = (layout.name, shard)
            try:
                buf = memoryview(range_fut.result())
            except ShardReadError as exc:
                errors[key] = exc
                continue
            out = data.setdefault(key, ShardData(layout, shard, url=self.url(layout, shard)))
            for c in members:
                off, n = int(index[c, 0]) - lo, int(index[c, 1])
                out.chunks[c] = buf[off : off + n]
        for key in errors:
            data.pop(key, None)
        return data, errors

    # -- one shard ---------------------------------------------------------------------------

    def _whole_shard(self, layout: ArrayLayout, shard: int, local: np.ndarray) -> ShardData:
        buf = memoryview(self._whole(layout, shard))
        index = self._parse_index(layout, shard, buf[len(buf) - layout.index_nbytes :])
        offsets, sizes = index[local, 0], index[local, 1]
        self._check_written(layout, shard, local, offsets)
        if int((offsets + sizes).max()) > len(buf):
            raise self._error(layout, shard, "the shard index points past the object's end")
        out = ShardData(layout, shard, url=self.url(layout, shard))
        for c, off, n in zip(local.tolist(), offsets.tolist(), sizes.tolist(), strict=True):
            out.chunks[c] = buf[off : off + n]
        return out

    def _check_written(
        self, layout: ArrayLayout, shard: int, local: np.ndarray, offsets: np.ndarray
    ) -> None:
        if (offsets == EMPTY).any():
            bad = local[offsets == EMPTY].tolist()
            raise self._error(layout, shard, f"chunks {bad} of the shard were never written")

    def _plan_ranges(
        self, layout: ArrayLayout, shard: int, index: np.ndarray, local: np.ndarray
    ) -> list[tuple[int, int, list[int]]]:
        """Byte ranges ``(lo, hi, chunks)`` covering the chunks, merged across small gaps."""
        offsets = index[local, 0]
        self._check_written(layout, shard, local, offsets)
        ends = offsets + index[local, 1]
        ranges: list[tuple[int, int, list[int]]] = []
        for i in np.argsort(offsets, kind="stable").tolist():
            lo, hi, c = int(offsets[i]), int(ends[i]), int(local[i])
            if ranges and lo - ranges[-1][1] <= self.max_gap:
                last = ranges[-1]
                ranges[-1] = (last[0], max(last[1], hi), [*last[2], c])
            else:
                ranges.append((lo, hi, [c]))
        return ranges

    def _index(self, layout: ArrayLayout, shard: int) -> np.ndarray:
        cache_key = (layout.name, shard)
        with self._lock:
            if cache_key in self._indexes:
                self._indexes.move_to_end(cache_key)
                return self._indexes[cache_key]
        key = layout.key(self.group, shard)
        raw = self._get(layout, shard, key, -layout.index_nbytes, None)
        index = self._parse_index(layout, shard, memoryview(raw))
        with self._lock:
            self._indexes[cache_key] = index
            while len(self._indexes) > 4096:
                self._indexes.popitem(last=False)
        return index

    def _parse_index(self, layout: ArrayLayout, shard: int, raw: memoryview) -> np.ndarray:
        import google_crc32c

        if len(raw) != layout.index_nbytes:
            raise self._error(
                layout, shard, f"index is {len(raw)} bytes, not {layout.index_nbytes}"
            )
        body = bytes(raw[:-_CRC_BYTES])
        if google_crc32c.value(body) != int.from_bytes(raw[-_CRC_BYTES:], "little"):
            raise self._error(
                layout,
                shard,
                "the shard index fails its CRC32C check (the object was damaged in storage or "
                "in transit: run `lake pipeline verify` on the release)",
                integrity=True,
            )
        return np.frombuffer(body, dtype="<u8").reshape(layout.samples_per_shard, 2)

    def _whole(self, layout: ArrayLayout, shard: int) -> bytes:
        key = layout.key(self.group, shard)
        cache = self.cache or self.spool
        if cache is None:
            return self._get(layout, shard, key, None, None)
        return cache.get_or_fetch(
            self.spec.child(key).url, lambda: self._get(layout, shard, key, None, None)
        )

    def _get(
        self, layout: ArrayLayout, shard: int, key: str, start: int | None, end: int | None
    ) -> bytes:
        """One GET (whole object, a range, or a suffix when ``start < 0``), retried."""
        path = self.spec.path(key)
        attempt = 0
        while True:
            with self._lock:
                self._requests += 1
                self._keys.append(key)
                self._ranges.append((start, end))
            try:
                data = self._fs.cat_file(path, start=start, end=end, **self._whole_kw)
                want = _expected_length(start, end)
                if want is not None and len(data) != want:
                    raise ShortRead(f"asked for {want} bytes, got {len(data)}")
                with self._lock:
                    self._bytes += len(data)
                return bytes(data)
            except Exception as exc:
                if not is_transient(exc) or attempt >= self.retry.max_retries:
                    tries = attempt + 1
                    why = f"{type(exc).__name__}: {exc} ({tries} tries)"
                    raise self._error(layout, shard, why) from exc
                attempt += 1
                with self._lock:
                    self._retries += 1
                delay = self.retry.delay(attempt)
                log.debug("retry %d of %s in %.2f s after %r", attempt, key, delay, exc)
                time.sleep(delay)

    def _error(
        self, layout: ArrayLayout, shard: int, why: str, *, integrity: bool = False
    ) -> ShardReadError:
        cls = IntegrityError if integrity else ShardReadError
        return cls(
            f"cannot read shard {shard} of array {layout.name!r} "
            f"(samples {shard * layout.samples_per_shard}.."
            f"{(shard + 1) * layout.samples_per_shard - 1}) at {self.url(layout, shard)}: {why}"
        )


def _expected_length(start: int | None, end: int | None) -> int | None:
    if start is None:
        return None
    if start < 0 and end is None:
        return -start
    if end is None:
        return None
    return end - start


def group_needs(
    samples: Iterable[int], layouts: Mapping[str, ArrayLayout]
) -> dict[str, dict[int, np.ndarray]]:
    """``array -> shard -> local chunk numbers`` for some sample indices."""
    samples = np.unique(np.fromiter(samples, dtype=np.int64))
    out: dict[str, dict[int, np.ndarray]] = {}
    for name, layout in layouts.items():
        s = layout.samples_per_shard
        shards = samples // s
        cuts = np.flatnonzero(np.diff(shards)) + 1
        out[name] = {int(part[0] // s): part % s for part in np.split(samples, cuts) if len(part)}
    return out

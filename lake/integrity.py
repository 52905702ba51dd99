"""Every stored chunk is checked when it is read, and a failure names the array, shard and sample.

Layout 2 ends the codec chain of every chunk with the standard Zarr v3 ``crc32c`` codec: the
CRC32C (Castagnoli) of the encoded chunk, 4 bytes little endian, after it. zarr-python checks it
on every read with no project code, but its error names nothing ("Stored and computed checksum do
not match"). :class:`IntegrityStore` checks the same bytes where the project reads the group
through zarr (:func:`lake.patchstore.open_group`, ``Release.to_xarray``), so that the error is an
:class:`~lake.errors.IntegrityError` naming the array, the shard object and the sample. The
streaming loader, which decodes chunks itself, checks them with :func:`crc32c_ok`
(``lake/loader/decode.py``). The shard index has carried a CRC32C since layout 1; layout-1
chunks carry none, so only their index is checked. The choice and its cost are in
``docs/decisions/0008-chunk-checksums.md``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Self

import numpy as np
from zarr.abc.store import ByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import WrapperStore

from lake.errors import IntegrityError

#: Bytes of a CRC32C.
CRC_BYTES: Final = 4
#: Index entry of an inner chunk that was never written.
_EMPTY: Final = 0xFFFFFFFFFFFFFFFF


def crc32c_ok(data: bytes | memoryview | np.ndarray) -> bool:
    """Whether ``data`` ends with the CRC32C (4 bytes, little endian) of what precedes it."""
    import google_crc32c

    raw = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    if raw.size < CRC_BYTES:
        return False
    stored = int.from_bytes(raw[-CRC_BYTES:].tobytes(), "little")
    return int(google_crc32c.value(raw[:-CRC_BYTES])) == stored


def ends_with_crc32c(codecs: Iterable[Any]) -> bool:
    """Whether a codec chain (as in ``zarr.json``) ends with ``crc32c``."""
    names = [c.get("name") if isinstance(c, dict) else c for c in codecs]
    return bool(names) and names[-1] == "crc32c"


@dataclass(frozen=True)
class ChunkGeometry:
    """How the objects of one array map to samples (what the checks need).

    Attributes:
        array: Array name.
        per_object: Samples per object (shard, or chunk of an unsharded array).
        sharded: Objects are ``sharding_indexed`` shards of one-sample chunks, index at the end.
        chunk_crc: Each chunk ends with its CRC32C (layout 2).
    """

    array: str
    per_object: int
    sharded: bool
    chunk_crc: bool

    @property
    def index_nbytes(self) -> int:
        """Bytes of a shard's index, its CRC32C included."""
        return 16 * self.per_object + CRC_BYTES

    def samples(self, number: int) -> str:
        """The samples object ``number`` holds, for messages."""
        first = number * self.per_object
        return f"samples {first}..{first + self.per_object - 1}"


def chunk_geometry(array: str, meta: dict[str, Any]) -> ChunkGeometry | None:
    """The geometry of an array from its ``zarr.json``, or None when it is not checked here.

    Checked: sharded arrays whose inner chunks are one sample with the index at the end and a
    ``crc32c`` index codec (every raster array), and unsharded arrays chunked along the first
    axis whose codecs end with ``crc32c`` (the string arrays of layout 2).
    """
    if meta.get("node_type") != "array" or not meta.get("shape"):
        return None
    codecs = meta.get("codecs") or []
    grid = meta.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape") or []
    shape = meta["shape"]
    if len(codecs) == 1 and codecs[0].get("name") == "sharding_indexed":
        conf = codecs[0].get("configuration", {})
        inner = conf.get("chunk_shape") or []
        if (
            len(inner) != len(grid)
            or inner[0] != 1
            or list(inner[1:]) != list(grid[1:])
            or conf.get("index_location", "end") != "end"
            or not ends_with_crc32c(conf.get("index_codecs", []))
        ):
            return None
        return ChunkGeometry(array, int(grid[0]), True, ends_with_crc32c(conf.get("codecs", [])))
    if not ends_with_crc32c(codecs) or list(grid[1:]) != list(shape[1:]):
        return None
    return ChunkGeometry(array, int(grid[0]), False, True)


class IntegrityStore(WrapperStore[Store]):
    """A read-through Zarr store over a patch group that checks every chunk object it returns.

    Shard objects are checked whole (index and every chunk) when read whole; a suffix read of
    the index and a ranged read of one chunk are checked on their own. A failure raises
    :class:`~lake.errors.IntegrityError` naming the array, the object's URL and the sample (for
    a chunk) or the samples (for an index or a whole unsharded chunk). Other keys pass through.

    Args:
        store: The group's store.
        url: The group's URL, for messages.
    """

    def __init__(self, store: Store, url: str = "") -> None:
        super().__init__(store)
        self.url = url.rstrip("/")
        self._geometry: dict[str, ChunkGeometry | None] = {}

    def _with_store(self, store: Store) -> Self:
        return type(self)(store, self.url)

    def __repr__(self) -> str:
        return f"IntegrityStore({self._store!r})"

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        """Get ``key`` from the wrapped store and check it (see the class)."""
        buf = await self._store.get(key, prototype, byte_range)
        if buf is None or "/c/" not in key:
            return buf
        array, _, rest = key.partition("/c/")
        geometry = await self._array_geometry(array)
        if geometry is not None:
            number = int(rest.split("/", 1)[0])
            await self._check(
                key, geometry, number, buf.as_numpy_array().view(np.uint8), byte_range
            )
        return buf

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        """Several gets, each checked (see :meth:`get`)."""
        return list(await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges)))

    async def _array_geometry(self, array: str) -> ChunkGeometry | None:
        if array not in self._geometry:
            raw = await self._store.get(f"{array}/zarr.json", default_buffer_prototype())
            meta = json.loads(raw.to_bytes()) if raw is not None else {}
            self._geometry[array] = chunk_geometry(array, meta)
        return self._geometry[array]

    async def _check(
        self,
        key: str,
        geometry: ChunkGeometry,
        number: int,
        data: np.ndarray,
        byte_range: ByteRequest | None,
    ) -> None:
        if not geometry.sharded:
            if byte_range is None and not crc32c_ok(data):
                raise self._error(key, geometry, geometry.samples(number), "their CRC32C")
            return
        if byte_range is None:
            index = self._index(key, geometry, number, data[len(data) - geometry.index_nbytes :])
            if geometry.chunk_crc:
                for position, (offset, nbytes) in enumerate(index.tolist()):
                    if offset == _EMPTY:
                        continue
                    chunk = data[offset : offset + nbytes]
                    if offset + nbytes > len(data) or not crc32c_ok(chunk):
                        sample = number * geometry.per_object + position
                        raise self._error(key, geometry, f"sample {sample}", "their CRC32C")
        elif isinstance(byte_range, SuffixByteRequest):
            if byte_range.suffix == geometry.index_nbytes:
                self._index(key, geometry, number, data)
        elif (
            isinstance(byte_range, RangeByteRequest) and geometry.chunk_crc and not crc32c_ok(data)
        ):
            where = await self._which_sample(key, geometry, number, byte_range)
            raise self._error(key, geometry, where, "their CRC32C")

    def _index(self, key: str, geometry: ChunkGeometry, number: int, raw: np.ndarray) -> Any:
        if len(raw) != geometry.index_nbytes or not crc32c_ok(raw):
            what = f"the shard index of {geometry.samples(number)}"
            raise self._error(key, geometry, what, "the index's CRC32C")
        return raw[:-CRC_BYTES].view("<u8").reshape(geometry.per_object, 2)

    async def _which_sample(
        self, key: str, geometry: ChunkGeometry, number: int, byte_range: RangeByteRequest
    ) -> str:
        """The sample whose chunk lies at ``byte_range`` (read from the index, on failure only)."""
        raw = await self._store.get(
            key, default_buffer_prototype(), SuffixByteRequest(geometry.index_nbytes)
        )
        if raw is not None:
            index = self._index(key, geometry, number, raw.as_numpy_array().view(np.uint8))
            hits = np.flatnonzero(index[:, 0] == byte_range.start).tolist()
            if hits:
                return f"sample {number * geometry.per_object + hits[0]}"
        return f"a chunk of {geometry.samples(number)}"

    def _error(self, key: str, geometry: ChunkGeometry, what: str, check: str) -> IntegrityError:
        where = f"{self.url}/{key}" if self.url else key
        kind = "shard object" if geometry.sharded else "chunk object"
        return IntegrityError(
            f"array {geometry.array!r}, {what}: the stored bytes fail {check} check in the "
            f"{kind} {where}; the object was damaged in storage or in transit: run "
            "`lake pipeline verify` on the release and restore the object from a copy, or "
            "re-ingest the release"
        )

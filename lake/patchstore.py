"""The Zarr v3 patch group: one row per S1/S2 pair along ``sample``, sharded, native resolution.

Arrays (``N`` pairs): ``s2_10m (N, 4, 120, 120) uint16``, ``s2_20m (N, 6, 60, 60) uint16``,
``s2_60m (N, 2, 20, 20) uint16``, ``s1 (N, 2, 120, 120) float32``, ``reference_map (N, 120, 120)
uint16``, ``patch_id (N,)`` and ``s1_name (N,)`` strings, and one band-name coordinate per stack.
A chunk is one sample; a shard holds ``samples_per_shard`` samples of every array, so shard k of
every array covers the same pairs. The group opens with plain ``zarr.open_group`` and
``xarray.open_zarr``. Every chunk ends with its CRC32C (layout 2); groups opened here for reading
check it through :class:`~lake.integrity.IntegrityStore`, whose errors name the array, the shard
object and the sample.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import WrapperStore

from lake.bigearthnet import ARRAYS, ArraySpec
from lake.codecs import codecs_for, string_codecs
from lake.config import StoreSpec
from lake.errors import ConfigError, LayoutError
from lake.integrity import IntegrityStore
from lake.layout import LAYOUT_VERSION, READABLE_LAYOUT_VERSIONS, patches_path
from lake.storage import zarr_store

STRING_ARRAYS = ("patch_id", "s1_name")

# zarr warns on every open that numcodecs.* codecs are outside the v3 spec; ADR 0002 accepts
# numcodecs.pcodec knowingly, so this one message is noise to our users.
warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3")


def dimension_names(spec: ArraySpec) -> tuple[str, ...]:
    """Dimension names of an array (unique per band stack and grid so xarray can merge them)."""
    grid = f"{spec.resolution_m}m"
    if spec.bands:
        return ("sample", f"{spec.name}_band", f"y_{grid}", f"x_{grid}")
    return ("sample", f"y_{grid}", f"x_{grid}")


def create_group(
    spec: StoreSpec,
    release: str,
    n_samples: int,
    samples_per_shard: int,
    attributes: Mapping[str, Any] | None = None,
    *,
    layout_version: int = LAYOUT_VERSION,
    portable: bool = False,
) -> zarr.Group:
    """Create (or overwrite) the empty patch group of a release.

    Args:
        spec: The lake.
        release: Release name.
        n_samples: Number of pairs.
        samples_per_shard: Pairs per shard (the same for every array).
        attributes: Extra group attributes.
        layout_version: 2 (chunks end with their CRC32C) or 1 (older lakes, for tests and
            benchmarks).
        portable: Write the Zarr v3 core codecs only (``lake.codecs``' ``portable`` set) instead
            of the default pcodec set.

    Raises:
        ConfigError: ``layout_version`` is not one this version writes.
    """
    if layout_version not in READABLE_LAYOUT_VERSIONS:
        raise ConfigError(
            f"layout_version={layout_version}: use one of {sorted(READABLE_LAYOUT_VERSIONS)}"
        )
    checksum = layout_version >= 2
    store = zarr_store(spec, patches_path(release))
    group = zarr.open_group(store, mode="w", zarr_format=3)
    attrs: dict[str, Any] = {
        "bigearthnet_lake": {
            "layout_version": layout_version,
            "release": release,
            "n_samples": n_samples,
            "samples_per_shard": samples_per_shard,
            "arrays": {a.name: list(a.bands) for a in ARRAYS},
        }
    }
    attrs.update(attributes or {})
    group.attrs.update(attrs)
    n = max(n_samples, 1)
    shard = min(samples_per_shard, n)
    for a in ARRAYS:
        arr = group.create_array(
            a.name,
            shape=(n_samples, *a.sample_shape),
            chunks=(1, *a.sample_shape),
            shards=(shard, *a.sample_shape),
            dtype=a.dtype,
            fill_value=0,
            dimension_names=dimension_names(a),
            attributes={"bands": list(a.bands), "resolution_m": a.resolution_m},
            **codecs_for(a.name, portable=portable, checksum=checksum),
        )
        if a.bands:
            coord = group.create_array(
                f"{a.name}_band",
                shape=(len(a.bands),),
                dtype=str,
                dimension_names=(f"{a.name}_band",),
                **string_codecs(portable=portable, checksum=checksum),
            )
            coord[:] = np.array(a.bands)
        del arr
    for name in STRING_ARRAYS:
        group.create_array(
            name,
            shape=(n_samples,),
            chunks=(shard,),
            dtype=str,
            dimension_names=("sample",),
            **string_codecs(portable=portable, checksum=checksum),
        )
    return group


def array_of(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of the group.

    Raises:
        LayoutError: It is missing or is a group.
    """
    node = group.get(name)
    if not isinstance(node, zarr.Array):
        raise LayoutError(f"the patch group {group.store_path} has no array {name!r}")
    return node


def checked_store(spec: StoreSpec, release: str) -> IntegrityStore:
    """The read-only store of a release's patch group, checking every chunk object it returns.

    A damaged object raises :class:`~lake.errors.IntegrityError` naming the array, the shard
    object and the sample (see :mod:`lake.integrity`).
    """
    path = patches_path(release)
    return IntegrityStore(zarr_store(spec, path, read_only=True), spec.child(path).url)


def open_group(spec: StoreSpec, release: str, *, read_only: bool = True) -> zarr.Group:
    """Open the patch group of a release (read-only: every chunk read is checked)."""
    if read_only:
        return zarr.open_group(checked_store(spec, release), mode="r", zarr_format=3)
    store = zarr_store(spec, patches_path(release), read_only=False)
    return zarr.open_group(store, mode="r+", zarr_format=3)


def write_block(group: zarr.Group, start: int, arrays: Mapping[str, np.ndarray]) -> None:
    """Write a block of consecutive samples (a whole shard) to every array.

    Args:
        group: The patch group, opened writable.
        start: Index of the first sample (a multiple of the shard size).
        arrays: ``name -> stacked values`` for every raster and string array.
    """
    for name, values in arrays.items():
        array_of(group, name)[start : start + len(values)] = values


class HashingStore(WrapperStore[Store]):
    """A writable store that hashes every object as it is written, and counts reads.

    The shard writers of ingest record each object's size and SHA-256 from the very bytes zarr
    hands to the store (one whole shard per ``set``: ingest never writes part of a shard), so
    nothing is read back to hash it (issue 15). ``reads`` counts ``get`` calls, so a test can
    show that writing a whole shard reads nothing (no read-modify-write).

    Attributes:
        written: ``key -> (size, sha256 hex)`` of every object set through this store, keys
            relative to the store's root.
        reads: How many reads of chunk objects (not metadata) returned bytes. zarr-python
            (3.1) looks for an existing shard before writing one, even a whole one: on a fresh
            group that look finds nothing (a 404 on S3) and is not counted.
    """

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.written: dict[str, tuple[int, str]] = {}
        self.reads = 0

    async def set(self, key: str, value: Buffer) -> None:
        """Hash the object's bytes, then store them."""
        data = value.as_numpy_array()
        self.written[key] = (int(data.nbytes), hashlib.sha256(data.data).hexdigest())
        await self._store.set(key, value)

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        """Read, counting the chunk objects that were there to read."""
        got = await self._store.get(key, prototype, byte_range)
        self.reads += _is_chunk(key) and got is not None
        return got

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Any,
    ) -> list[Buffer | None]:
        """Read, counting the chunk objects that were there to read."""
        keys = [k for k, _ in key_ranges]
        got = await self._store.get_partial_values(prototype, key_ranges)
        self.reads += sum(_is_chunk(k) and g is not None for k, g in zip(keys, got, strict=True))
        return got


def _is_chunk(key: str) -> bool:
    """Whether a store key is a chunk (shard) object rather than metadata."""
    return "/c/" in f"/{key}"


def write_shard(
    spec: StoreSpec, release: str, start: int, arrays: Mapping[str, np.ndarray]
) -> tuple[dict[str, tuple[int, str]], int]:
    """Write one whole shard of every array and hash each object as it is written.

    Args:
        spec: The lake.
        release: Release name (its group must exist: :func:`create_group`).
        start: Index of the shard's first sample (a multiple of the shard size).
        arrays: ``name -> stacked values`` for every raster and string array.

    Returns:
        ``(objects, reads)``: ``path -> (size, sha256)`` of every chunk object written, paths
        relative to the lake, and how many reads the write needed (0: no read-modify-write).
    """
    path = patches_path(release)
    store = HashingStore(zarr_store(spec, path, read_only=False))
    group = zarr.open_group(store, mode="r+", zarr_format=3)
    write_block(group, start, arrays)
    objects = {f"{path}/{k}": v for k, v in store.written.items() if _is_chunk(k)}
    return objects, store.reads


def shard_object_keys(group_path: str, shard: int) -> list[str]:
    """The object keys (relative to the lake) of shard ``shard`` of every array."""
    keys = []
    for a in ARRAYS:
        zeros = "/".join("0" for _ in a.sample_shape)
        keys.append(f"{group_path}/{a.name}/c/{shard}/{zeros}")
    keys.extend(f"{group_path}/{name}/c/{shard}" for name in STRING_ARRAYS)
    return keys

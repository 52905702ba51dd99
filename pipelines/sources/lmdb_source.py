"""The reference encoder's LMDB ("rico-hdl") as a source, and per-process read-only LMDB handles.

Keys (BIGEARTHNET.md): ``patch_id`` -> safetensors with ``B01``..``B12``, ``B8A`` (uint16);
``s1_name`` -> ``VV``, ``VH`` (float32); ``<patch_id>_reference_map`` -> ``Data`` (uint16).
The LMDB holds no georeferencing: the CRS and transforms come from the patch grid
(:mod:`lake.grid`), which is exact for BigEarthNet patches.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import lmdb
import numpy as np
import pyarrow as pa
from safetensors.numpy import load as load_safetensors

from lake.bigearthnet import REFERENCE_MAP, S1_BANDS, S2_BANDS
from lake.errors import BadInput, SourceError
from lake.grid import tile_grid
from lake.names import S1_PATTERN, parse_patch_id, parse_s1_name
from pipelines.sources.base import (
    CheckedMetadata,
    Pair,
    PairHeader,
    Rejected,
    TaskRunner,
    assemble_header,
    assemble_pair,
    check_metadata,
    no_metadata,
    stamp,
)
from pipelines.sources.geotiff import BandHeader, check_array, check_layout, spec_of

#: Suffix of the reference-map keys, and the tensor name inside their blobs.
MAP_KEY_SUFFIX = "_reference_map"
MAP_TENSOR = "Data"

# One read-only handle per (path, process): handles never travel through pickling or fork.
_READERS: dict[tuple[str, int], lmdb.Environment] = {}
_READERS_LOCK = threading.Lock()


def _drop_inherited() -> None:
    """In a forked child: close the parent's handles (py-lmdb refuses a second open otherwise)."""
    global _READERS_LOCK
    _READERS_LOCK = threading.Lock()  # another thread of the parent may have held it
    for key in [k for k in _READERS if k[1] != os.getpid()]:
        _READERS.pop(key).close()


os.register_at_fork(after_in_child=_drop_inherited)


def reader(path: str) -> lmdb.Environment:
    """This process's read-only handle on an LMDB (a folder with ``data.mdb``, or the file).

    Raises:
        SourceError: The path does not exist or is not an LMDB.
    """
    key = (os.path.abspath(path), os.getpid())
    with _READERS_LOCK:  # threads of a runner open a source at once; py-lmdb allows one open
        env = _READERS.get(key)
        if env is None:
            if not os.path.exists(path):
                raise SourceError(f"{path}: LMDB does not exist")
            try:
                env = lmdb.open(
                    path,
                    subdir=os.path.isdir(path),
                    readonly=True,
                    lock=False,
                    readahead=False,
                    max_readers=1024,
                )
            except lmdb.Error as exc:
                raise SourceError(f"{path}: not a readable LMDB ({exc})") from None
            _READERS[key] = env
    return env


def forget_reader(path: str) -> None:
    """Close this process's read-only handle on ``path`` (before writing to it)."""
    with _READERS_LOCK:
        env = _READERS.pop((os.path.abspath(path), os.getpid()), None)
    if env is not None:
        env.close()


def iter_keys(env: lmdb.Environment) -> Iterator[str]:
    """Every key of an LMDB, decoded as UTF-8 (values are not read)."""
    with env.begin(buffers=True) as txn, txn.cursor() as cursor:
        for key in cursor.iternext(keys=True, values=False):
            yield bytes(key).decode("utf-8", errors="replace")


#: safetensors dtype codes of the bands the lake holds, as NumPy dtype names.
_SAFETENSORS_DTYPES = {
    "U16": "uint16",
    "F32": "float32",
    "I16": "int16",
    "F64": "float64",
    "U8": "uint8",
    "I32": "int32",
    "U32": "uint32",
    "F16": "float16",
}


def tensor_headers(blob: bytes | None, subject: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """``tensor -> (shape, dtype)`` of a safetensors blob, from its JSON header alone.

    No tensor is loaded. The format: 8 bytes of header length (little endian), the JSON header.

    Raises:
        BadInput: ``missing_key``, or ``unreadable`` when the header is not safetensors' or a
            tensor's data runs past the blob.
    """
    import struct

    if blob is None:
        raise BadInput(subject, "missing_key", "key not in the LMDB")
    raw = bytes(blob[:8])
    try:
        (n,) = struct.unpack("<Q", raw)
        header = json.loads(bytes(blob[8 : 8 + n]))
        out = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            end = entry["data_offsets"][1]
            if 8 + n + end > len(blob):
                raise ValueError(f"tensor {name} ends at byte {8 + n + end} of {len(blob)}")
            dtype = _SAFETENSORS_DTYPES.get(entry["dtype"], str(entry["dtype"]).lower())
            out[name] = (tuple(int(d) for d in entry["shape"]), dtype)
    except Exception as exc:  # struct, JSON, key and type errors on garbage
        raise BadInput(subject, "unreadable", f"not a readable safetensors blob ({exc})") from None
    return out


def load_tensors(blob: bytes | None, subject: str) -> dict[str, np.ndarray]:
    """Decode a safetensors blob.

    Raises:
        BadInput: ``unreadable``, naming ``subject``.
    """
    if blob is None:
        raise BadInput(subject, "missing_key", "key not in the LMDB")
    try:
        return load_safetensors(bytes(blob))
    except Exception as exc:  # safetensors raises its own error type and others on garbage
        raise BadInput(subject, "unreadable", f"not a readable safetensors blob ({exc})") from None


@dataclass(frozen=True)
class LmdbSource:
    """A rico-hdl LMDB plus ``metadata.parquet``.

    Attributes:
        path: The LMDB folder (holding ``data.mdb``), e.g. ``BigEarthNet.lmdb``.
        metadata_path: The metadata parquet (the LMDB has no metadata).
        extra_metadata: More metadata parquets to include (e.g. the snow/cloud one).
        text_path: The BigEarthNet.txt parquet that comes with it, or None.
    """

    path: str
    metadata_path: str
    extra_metadata: tuple[str, ...] = ()
    text_path: str | None = None
    kind: ClassVar[str] = "lmdb"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.fspath(self.path))
        object.__setattr__(self, "metadata_path", os.fspath(self.metadata_path))
        object.__setattr__(self, "extra_metadata", tuple(map(os.fspath, self.extra_metadata)))

    @property
    def name(self) -> str:
        """How errors name the LMDB (its folder name)."""
        return Path(self.path).name

    def fingerprint(self) -> str:
        """Path, size/mtime of ``data.mdb`` and of the metadata parquets."""
        data = os.path.join(self.path, "data.mdb") if os.path.isdir(self.path) else self.path
        return json.dumps(
            {
                "kind": self.kind,
                "path": os.path.abspath(self.path),
                "data": stamp(data),
                "metadata": [stamp(p) for p in (self.metadata_path, *self.extra_metadata)],
            },
            sort_keys=True,
        )

    def prepare(self, progress: bool = False, runner: TaskRunner | None = None) -> None:
        """Check that the LMDB opens (nothing to stage).

        Raises:
            SourceError: It does not exist or is not an LMDB.
        """
        reader(self.path)

    def metadata(self) -> pa.Table:
        """The valid metadata rows, sorted by patch_id (invalid ones: :meth:`checked_metadata`)."""
        return self.checked_metadata().table

    def checked_metadata(self) -> CheckedMetadata:
        """The valid metadata rows and a rejection for each invalid one."""
        return check_metadata(self.metadata_path, self.extra_metadata)

    def read_pair(self, patch_id: str, s1_name: str) -> Pair:
        """Decode one pair from its three keys; georeference it from the patch grid.

        Raises:
            BadInput: ``no_files`` when no key of the pair exists, ``missing_key`` naming the S2 or
                S1 key, ``missing_band`` for a missing reference map or tensor, ``unreadable``,
                ``wrong_shape`` or ``wrong_dtype`` naming ``<lmdb>:<key>/<tensor>``.
        """
        s2 = parse_patch_id(patch_id)
        parse_s1_name(s1_name)
        map_key = patch_id + MAP_KEY_SUFFIX
        blobs = self._blobs(patch_id, s1_name, map_key)
        grid = tile_grid(s2.tile)
        decoded: dict[str, dict[str, np.ndarray]] = {}
        bands = {}
        for key, tensor, band in self._layout(patch_id, s1_name, map_key):
            if key not in decoded:
                decoded[key] = load_tensors(blobs[key], f"{self.name}:{key}")
            subject = f"{self.name}:{key}/{tensor}"
            if tensor not in decoded[key]:
                raise BadInput(subject, "missing_band", f"tensor {tensor} not in the blob")
            array = check_array(subject, band, decoded[key][tensor])
            transform = grid.patch_transform(s2.x, s2.y, spec_of(band).resolution_m)
            bands[band] = (array, grid.epsg, tuple(transform)[:6])
        return assemble_pair(patch_id, s1_name, bands)

    def scan_pair(self, patch_id: str, s1_name: str) -> PairHeader:
        """Check one pair's keys and tensors from the safetensors headers, georeferenced.

        No tensor is loaded; the georeference comes from the patch grid.

        Raises:
            BadInput: As :meth:`read_pair`, for what the headers show.
        """
        s2 = parse_patch_id(patch_id)
        parse_s1_name(s1_name)
        map_key = patch_id + MAP_KEY_SUFFIX
        blobs = self._blobs(patch_id, s1_name, map_key)
        grid = tile_grid(s2.tile)
        headers: dict[str, dict[str, tuple[tuple[int, ...], str]]] = {}
        bands = {}
        for key, tensor, band in self._layout(patch_id, s1_name, map_key):
            if key not in headers:
                headers[key] = tensor_headers(blobs[key], f"{self.name}:{key}")
            subject = f"{self.name}:{key}/{tensor}"
            if tensor not in headers[key]:
                raise BadInput(subject, "missing_band", f"tensor {tensor} not in the blob")
            check_layout(subject, band, *headers[key][tensor])
            transform = grid.patch_transform(s2.x, s2.y, spec_of(band).resolution_m)
            bands[band] = BandHeader(grid.epsg, tuple(transform)[:6])
        return assemble_header(patch_id, bands)

    @staticmethod
    def _layout(patch_id: str, s1_name: str, map_key: str) -> list[tuple[str, str, str]]:
        """``(key, tensor, band)`` of every band of a pair."""
        layout = [(patch_id, b, b) for b in S2_BANDS] + [(s1_name, b, b) for b in S1_BANDS]
        layout.append((map_key, MAP_TENSOR, REFERENCE_MAP.name))
        return layout

    def _blobs(self, patch_id: str, s1_name: str, map_key: str) -> dict[str, bytes]:
        """The three blobs of a pair (copied out of the LMDB), every one present.

        Raises:
            BadInput: ``no_files``, ``missing_key`` or ``missing_band`` (no reference map).
        """
        with reader(self.path).begin() as txn:
            got = {k: txn.get(k.encode()) for k in (patch_id, s1_name, map_key)}
        if all(b is None for b in got.values()):
            raise BadInput(patch_id, "no_files", f"no key of this pair in {self.path}")
        for key in (patch_id, s1_name):
            if got[key] is None:
                raise BadInput(f"{self.name}:{key}", "missing_key", f"key not in {self.path}")
        if got[map_key] is None:
            raise BadInput(
                f"{self.name}:{map_key}",
                "missing_band",
                f"no reference map in {self.path} (was it encoded without maps?)",
            )
        return {k: bytes(v) for k, v in got.items() if v is not None}

    def orphans(self, known_patch_ids: set[str], known_s1_names: set[str]) -> list[Rejected]:
        """Keys whose patch id or S1 name is in no metadata row (one rejection per key)."""
        out: list[Rejected] = []
        for key in iter_keys(reader(self.path)):
            if key.endswith(MAP_KEY_SUFFIX):
                name, known = key[: -len(MAP_KEY_SUFFIX)], known_patch_ids
            elif S1_PATTERN.fullmatch(key):
                name, known = key, known_s1_names
            else:
                name, known = key, known_patch_ids
            if name not in known:
                out.append(no_metadata(f"{self.name}:{key}", name))
        return out

"""Write synthetic pairs in the three official distribution formats, one pair at a time.

* :class:`FolderWriter`: the extracted layout (``BigEarthNet-S2/<product>/<patch_id>/...``);
* :class:`TarZstWriter`: ``BigEarthNet-S2.tar.zst``, ``BigEarthNet-S1.tar.zst`` and
  ``Reference_Maps.tar.zst``, streamed through ``zstandard`` and ``tarfile`` mode ``w|``;
* :class:`LmdbWriter`: the reference encoder's (rico-hdl) LMDB of safetensors blobs.

GeoTIFFs are the official encoding of :mod:`pipelines.sources.geotiff`. Uncompressed bands (S2,
S1) of one band and UTM zone share every header byte except the tie point, so
:class:`GeoTiffEncoder` encodes one template per (band, EPSG) with :func:`encode_band` and then
only splices the tie point and the pixels in: byte-identical to :func:`encode_band` (checked when
the template is made, and by the tests), about 20x faster. Reference maps are deflated, so they
always go through :func:`write_band` / :func:`encode_band`.
"""

from __future__ import annotations

import io
import os
import struct
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Protocol

import lmdb
import numpy as np
import zstandard
from affine import Affine
from safetensors.numpy import save as safetensors_save

from lake.bigearthnet import REFERENCE_MAP, S1_BANDS, S2_BANDS
from lake.grid import tile_grid
from lake.names import MAPS_ROOT, S1_ROOT, S2_ROOT, pair_files, parse_patch_id, parse_s1_name
from pipelines.sources.geotiff import encode_band, spec_of, write_band

#: Fixed archive member times (2024-01-01T00:00:00Z) keep archives reproducible.
ARCHIVE_MTIME: Final = 1_704_067_200
#: zstd level of the official archives.
DEFAULT_LEVEL: Final = 6
LMDB_DIR: Final = "BigEarthNet.lmdb"
#: Bytes one pair takes in the LMDB (S2 160,000 + S1 115,200 + map 28,800, plus headers).
LMDB_BYTES_PER_PAIR: Final = 310_000
FORMATS: Final = ("folders", "tar.zst", "lmdb")


@dataclass(frozen=True)
class SynthPair:
    """One synthetic pair ready to be written.

    Attributes:
        patch_id: The S2 patch id.
        s1_name: The S1 name (from the metadata).
        bands: Native arrays by band name: 12 S2 bands, ``VV``, ``VH``, ``reference_map``.
    """

    patch_id: str
    s1_name: str
    bands: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Georef:
    """Where each band of a pair lies: EPSG and transform per band."""

    epsg: dict[str, int]
    transform: dict[str, Affine]


def georef(patch_id: str, s1_name: str) -> Georef:
    """The real georeferencing of a pair's bands.

    S2 bands and the map lie on the patch's tile grid at their resolution, S1 bands on the grid
    of the S1 name's tile/x/y.
    """
    s2, s1 = parse_patch_id(patch_id), parse_s1_name(s1_name)
    g2, g1 = tile_grid(s2.tile), tile_grid(s1.tile)
    epsg: dict[str, int] = {}
    transform: dict[str, Affine] = {}
    for band in (*S2_BANDS, REFERENCE_MAP.name):
        epsg[band] = g2.epsg
        transform[band] = g2.patch_transform(s2.x, s2.y, spec_of(band).resolution_m)
    for band in S1_BANDS:
        epsg[band] = g1.epsg
        transform[band] = g1.patch_transform(s1.x, s1.y, spec_of(band).resolution_m)
    return Georef(epsg=epsg, transform=transform)


@dataclass(frozen=True)
class _Template:
    header: bytes
    tiepoint_at: int  # offset of the six tie-point doubles inside the header
    little_endian: bool


class GeoTiffEncoder:
    """Encode bands as the official GeoTIFF bytes, fast for the uncompressed ones."""

    def __init__(self) -> None:
        self._templates: dict[tuple[str, int], _Template | None] = {}

    def encode(self, data: np.ndarray, band: str, epsg: int, transform: Affine) -> bytes:
        """The bytes :func:`encode_band` would give for these arguments."""
        template = self._template(band, epsg) if band != REFERENCE_MAP.name else None
        if template is None or transform.b or transform.d:
            return encode_band(data, band, epsg, transform)
        spec = spec_of(band)
        if data.dtype != np.dtype(spec.dtype) or data.shape != (spec.size, spec.size):
            raise ValueError(
                f"{band}: got {data.dtype} {data.shape}, need {spec.dtype} {spec.sample_shape}"
            )
        order: Literal["<", ">"] = "<" if template.little_endian else ">"
        tie = struct.pack(f"{order}6d", 0.0, 0.0, 0.0, transform.c, transform.f, 0.0)
        at = template.tiepoint_at
        pixels = data.astype(data.dtype.newbyteorder(order), copy=False).tobytes()
        return b"".join((template.header[:at], tie, template.header[at + len(tie) :], pixels))

    def _template(self, band: str, epsg: int) -> _Template | None:
        key = (band, epsg)
        if key not in self._templates:
            self._templates[key] = _make_template(band, epsg)
        return self._templates[key]


def _make_template(band: str, epsg: int) -> _Template | None:
    """Encode a probe band and locate its tie point and pixels; None if the layout differs."""
    spec = spec_of(band)
    res = spec.resolution_m
    ulx, uly = 123_456.0, 7_654_321.0  # distinctive values, found once in the header
    values = np.arange(spec.size * spec.size) % 65_521 + 1
    probe = values.astype(spec.dtype).reshape(spec.size, spec.size)
    blob = encode_band(probe, band, epsg, Affine(res, 0.0, ulx, 0.0, -res, uly))
    little = blob[:2] == b"II"
    order: Literal["<", ">"] = "<" if little else ">"
    pixels = probe.astype(probe.dtype.newbyteorder(order)).tobytes()
    if not blob.endswith(pixels):
        return None
    header = blob[: -len(pixels)]
    tie = struct.pack(f"{order}6d", 0.0, 0.0, 0.0, ulx, uly, 0.0)
    if header.count(tie) != 1:
        return None
    return _Template(header=header, tiepoint_at=header.find(tie), little_endian=little)


class PairWriter(Protocol):
    """What every format writer does."""

    def write(self, pair: SynthPair) -> None:
        """Write one pair."""
        ...

    def close(self) -> int:
        """Finish writing; returns the bytes written."""
        ...


class _Closing:
    """Context-manager support for writers with ``close()``."""

    def close(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> _Closing:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class FolderWriter(_Closing):
    """The extracted layout under ``out``: one GeoTIFF per band, official paths."""

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self._out = Path(out)
        self._encoder = GeoTiffEncoder()
        self._bytes = 0

    def write(self, pair: SynthPair) -> None:
        """Write the 15 files of one pair."""
        files = pair_files(pair.patch_id, pair.s1_name)
        geo = georef(pair.patch_id, pair.s1_name)
        made: set[Path] = set()
        for band, rel in files.items():
            path = self._out / rel
            if path.parent not in made:
                path.parent.mkdir(parents=True, exist_ok=True)
                made.add(path.parent)
            data = pair.bands[band]
            if band == REFERENCE_MAP.name:
                write_band(path, data, band, geo.epsg[band], geo.transform[band])
                self._bytes += path.stat().st_size
            else:
                blob = self._encoder.encode(data, band, geo.epsg[band], geo.transform[band])
                path.write_bytes(blob)
                self._bytes += len(blob)

    def close(self) -> int:
        """Nothing to flush; returns the bytes written."""
        return self._bytes


class _Archive:
    """One ``.tar.zst`` written as a stream: tar ``w|`` into a zstd stream writer."""

    def __init__(self, path: Path, root: str, level: int) -> None:
        self.path = path
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._zstd = zstandard.ZstdCompressor(level=level).stream_writer(self._file)
        self._tar = tarfile.open(  # noqa: SIM115 - closed by close()
            fileobj=self._zstd, mode="w|", format=tarfile.PAX_FORMAT
        )
        self._top: set[str] = set()  # root and product/scene folders (bounded: 115 / 312)
        self._last_leaf = ""  # patch folders come one after another
        self._dir(root)

    def _dir(self, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        info.mtime = ARCHIVE_MTIME
        self._tar.addfile(info)

    def add(self, member: str, data: bytes) -> None:
        """Add one file, preceded by the directory entries it needs."""
        parts = member.split("/")
        for depth in range(2, len(parts)):
            folder = "/".join(parts[:depth])
            if depth == len(parts) - 1:
                if folder != self._last_leaf:
                    self._dir(folder)
                    self._last_leaf = folder
            elif folder not in self._top:
                self._dir(folder)
                self._top.add(folder)
        info = tarfile.TarInfo(member)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = ARCHIVE_MTIME
        self._tar.addfile(info, io.BytesIO(data))

    def close(self) -> int:
        """Finish the tar and the zstd frame; returns the archive's size."""
        self._tar.close()
        self._zstd.close()  # flushes the frame and closes the file
        return self.path.stat().st_size


class TarZstWriter(_Closing):
    """The three official archives under ``out``, written as streams (bounded memory).

    Args:
        out: The output folder.
        level: zstd compression level (6, as the official archives).
    """

    def __init__(self, out: str | os.PathLike[str], *, level: int = DEFAULT_LEVEL) -> None:
        out = Path(out)
        self._encoder = GeoTiffEncoder()
        self._archives = {
            root: _Archive(out / f"{root}.tar.zst", root, level)
            for root in (S2_ROOT, S1_ROOT, MAPS_ROOT)
        }

    def write(self, pair: SynthPair) -> None:
        """Add the 15 members of one pair to their archives."""
        files = pair_files(pair.patch_id, pair.s1_name)
        geo = georef(pair.patch_id, pair.s1_name)
        for band, rel in files.items():
            blob = self._encoder.encode(pair.bands[band], band, geo.epsg[band], geo.transform[band])
            self._archives[rel.split("/", 1)[0]].add(rel, blob)

    def close(self) -> int:
        """Close every archive; returns their total size."""
        return sum(a.close() for a in self._archives.values())


class LmdbWriter(_Closing):
    """The rico-hdl LMDB under ``out/BigEarthNet.lmdb``: safetensors blobs keyed by name.

    Keys: ``patch_id`` -> ``B01`` .. ``B12``, ``B8A``; ``s1_name`` -> ``VV``, ``VH``;
    ``<patch_id>_reference_map`` -> ``Data``. The map size starts at an estimate for
    ``expected_pairs`` and doubles whenever a batch does not fit.

    Args:
        out: The output folder.
        expected_pairs: How many pairs will be written (sizes the map).
        batch: Pairs per write transaction.
        map_size: Initial LMDB map size in bytes (default: from ``expected_pairs``).
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        *,
        expected_pairs: int = 1000,
        batch: int = 64,
        map_size: int | None = None,
    ) -> None:
        self.path = Path(out) / LMDB_DIR
        self.path.mkdir(parents=True, exist_ok=True)
        if map_size is None:
            map_size = max(64 << 20, int(expected_pairs * LMDB_BYTES_PER_PAIR * 1.25))
        self._env = lmdb.open(
            str(self.path), map_size=map_size, subdir=True, sync=False, metasync=False
        )
        self._batch = batch
        self._pending: list[tuple[bytes, bytes]] = []

    def write(self, pair: SynthPair) -> None:
        """Queue the three values of one pair (written every ``batch`` pairs)."""
        b = pair.bands
        self._pending += [
            (pair.patch_id.encode(), safetensors_save({k: b[k] for k in S2_BANDS})),
            (pair.s1_name.encode(), safetensors_save({k: b[k] for k in S1_BANDS})),
            (
                f"{pair.patch_id}_{REFERENCE_MAP.name}".encode(),
                safetensors_save({"Data": b[REFERENCE_MAP.name]}),
            ),
        ]
        if len(self._pending) >= 3 * self._batch:
            self._flush()

    def _flush(self) -> None:
        while self._pending:
            try:
                with self._env.begin(write=True) as txn:
                    for key, value in self._pending:
                        txn.put(key, value)
            except lmdb.MapFullError:
                self._env.set_mapsize(self._env.info()["map_size"] * 2)
                continue
            self._pending = []

    def close(self) -> int:
        """Write what is queued, sync and close; returns the size of the data file."""
        self._flush()
        self._env.sync(True)
        self._env.close()
        return (self.path / "data.mdb").stat().st_size


def open_writer(
    fmt: str, out: str | os.PathLike[str], *, expected_pairs: int, level: int = DEFAULT_LEVEL
) -> FolderWriter | TarZstWriter | LmdbWriter:
    """The writer of a format (``folders``, ``tar.zst`` or ``lmdb``).

    Raises:
        ValueError: Unknown format.
    """
    if fmt == "folders":
        return FolderWriter(out)
    if fmt == "tar.zst":
        return TarZstWriter(out, level=level)
    if fmt == "lmdb":
        return LmdbWriter(out, expected_pairs=expected_pairs)
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")

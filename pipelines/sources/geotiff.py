"""Read and write single-band BigEarthNet GeoTIFFs exactly as released.

Reading checks what the lake relies on (one band, the expected size and dtype, a projected CRS
with the band's pixel size) and raises :class:`~lake.errors.BadInput` naming the file otherwise.
Writing reproduces the official encoding: uncompressed strips for S2 and S1, deflate with the
horizontal predictor for reference maps, nodata 0 except on S1.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import RasterioIOError
from rasterio.io import MemoryFile

from lake.bigearthnet import BAND_ARRAY, REFERENCE_MAP, ArraySpec
from lake.errors import BadInput

os.environ.setdefault("CPL_LOG", os.devnull)  # GDAL's own stderr chatter on corrupt files


@dataclass(frozen=True)
class Band:
    """One decoded band.

    Attributes:
        data: The 2-D array, native size and dtype.
        epsg: EPSG code of its CRS.
        transform: Its affine transform (GDAL order: a, b, c, d, e, f).
    """

    data: np.ndarray
    epsg: int
    transform: tuple[float, ...]


def spec_of(band: str) -> ArraySpec:
    """The array spec a band belongs to (``reference_map`` included)."""
    if band == REFERENCE_MAP.name:
        return REFERENCE_MAP
    try:
        return BAND_ARRAY[band]
    except KeyError:
        raise BadInput(band, "unknown_band", f"{band!r} is not a BigEarthNet band") from None


def check_layout(name: str, band: str, shape: tuple[int, ...], dtype: str) -> ArraySpec:
    """Check that a band's shape and dtype are the released ones.

    Args:
        name: What to call the data in errors (a file path, an archive member, an LMDB key).
        band: The band it must hold.
        shape: Its shape (2-D).
        dtype: Its NumPy dtype name.

    Returns:
        The band's array spec.

    Raises:
        BadInput: ``wrong_shape`` or ``wrong_dtype``, naming ``name``.
    """
    spec = spec_of(band)
    if tuple(shape) != (spec.size, spec.size):
        shown = "x".join(str(n) for n in shape) or "a scalar"
        raise BadInput(name, "wrong_shape", f"{band} is {shown}, expected {spec.size}x{spec.size}")
    if dtype != spec.dtype:
        raise BadInput(name, "wrong_dtype", f"{band} is {dtype}, expected {spec.dtype}")
    return spec


def check_array(name: str, band: str, array: np.ndarray) -> np.ndarray:
    """Check a decoded array (e.g. from a safetensors blob) against its band; return it.

    Raises:
        BadInput: ``wrong_shape`` or ``wrong_dtype``, naming ``name``.
    """
    check_layout(name, band, array.shape, array.dtype.name)
    return array


def _decode(dataset: rasterio.io.DatasetReader, name: str, band: str) -> Band:
    spec = spec_of(band)
    if dataset.count != 1:
        raise BadInput(name, "wrong_band_count", f"has {dataset.count} bands, expected 1")
    check_layout(name, band, (dataset.height, dataset.width), dataset.dtypes[0])
    if dataset.crs is None or dataset.crs.to_epsg() is None:
        raise BadInput(name, "no_crs", "has no EPSG coordinate reference system")
    res = dataset.transform.a
    if abs(res - spec.resolution_m) > 1e-6 or abs(dataset.transform.e + spec.resolution_m) > 1e-6:
        expected = f"expected {spec.resolution_m} m"
        raise BadInput(name, "wrong_resolution", f"{band} pixel size is {res} m, {expected}")
    try:
        data = dataset.read(1)
    except RasterioIOError as exc:
        raise BadInput(name, "unreadable", f"pixel data cannot be decoded ({exc})") from None
    return Band(data=data, epsg=int(dataset.crs.to_epsg()), transform=tuple(dataset.transform)[:6])


def read_band_file(path: str | os.PathLike[str], band: str) -> Band:
    """Decode one band from a GeoTIFF file.

    Raises:
        BadInput: The file is missing, truncated, unreadable or not what the band must be.
    """
    name = os.fspath(path)
    if not os.path.exists(name):
        raise BadInput(name, "missing_file", "file does not exist")
    try:
        with rasterio.open(name) as ds:
            return _decode(ds, name, band)
    except RasterioIOError as exc:
        raise BadInput(name, "unreadable", f"not a readable GeoTIFF ({exc})") from None


def read_band_bytes(data: bytes, name: str, band: str) -> Band:
    """Decode one band from the bytes of a GeoTIFF (an archive member, an object).

    Args:
        data: The file's bytes.
        name: What to call it in errors (its path inside the archive).
        band: The band it must hold.

    Raises:
        BadInput: The bytes are not a readable GeoTIFF of that band.
    """
    try:
        with MemoryFile(data) as mem, mem.open() as ds:
            return _decode(ds, name, band)
    except RasterioIOError as exc:
        raise BadInput(name, "unreadable", f"not a readable GeoTIFF ({exc})") from None


def write_band(
    path: str | os.PathLike[str], data: np.ndarray, band: str, epsg: int, transform: Affine
) -> None:
    """Write one band as the official GeoTIFF (byte-identical to the release for S2 and maps).

    Args:
        path: Where to write the file (its folder must exist).
        data: The 2-D array (its dtype and size must be the band's).
        band: Band name (``B02``, ``VV``, ``reference_map``...).
        epsg: EPSG code of the UTM zone.
        transform: Affine transform of the band's pixel grid.

    Raises:
        ValueError: The array's dtype or shape is not the band's.
    """
    spec = spec_of(band)
    if data.dtype != np.dtype(spec.dtype) or data.shape != (spec.size, spec.size):
        raise ValueError(
            f"{band}: got {data.dtype} {data.shape}, need {spec.dtype} {spec.sample_shape[-2:]}"
        )
    profile: dict[str, object] = {
        "driver": "GTiff",
        "width": spec.size,
        "height": spec.size,
        "count": 1,
        "dtype": spec.dtype,
        "crs": f"EPSG:{epsg}",
        "transform": transform,
    }
    if spec.nodata is not None:
        profile["nodata"] = spec.nodata
    if band == REFERENCE_MAP.name:
        profile.update(compress="deflate", predictor=2)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data, 1)


def encode_band(data: np.ndarray, band: str, epsg: int, transform: Affine) -> bytes:
    """The bytes of :func:`write_band`'s file (for archive members and LMDB-free writers)."""
    with tempfile.TemporaryDirectory(prefix="ben-tif-") as tmp:
        path = os.path.join(tmp, f"{band}.tif")
        write_band(path, data, band, epsg, transform)
        with open(path, "rb") as f:
            return f.read()

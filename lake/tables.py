"""The lake's Parquet tables as a format: schemas, writers, and the one safe way to read them back.

* ``patches`` (``tables/<r>/patches/part-0.parquet``): one row per pair, GeoParquet 1.1 (a WKB
  footprint in WGS 84 plus a ``bbox`` covering column), so DuckDB's spatial extension, GeoPandas
  and stac-geoparquet read it without our code (:func:`patches_table`).
* ``band_stats`` (``stats/<r>/band_stats.parquet``): per-band statistics overall and per split,
  season and country (:data:`BAND_STATS_SCHEMA`; computed by ``lake pipeline stats``).
* Reading a whole Parquet object: :func:`read_parquet`.

The ``annotations`` dataset is written by the ingest job from its source
(:mod:`pipelines.jobs.annotations`).

Why :func:`read_parquet` copies bytes into Arrow memory:
Why: Arrow reads on its own thread pools and drops its last references to the input (the
file, its buffers) there, sometimes just after the reading call has returned. When the input is
a Python object (an fsspec file, ``bytes``), dropping it takes the GIL; if that happens while
the interpreter is shutting down, the thread is ended inside a C++ destructor and the process
aborts ("terminate called without an active exception", exit 134) after the work succeeded.
A short command that reads a Parquet object and then exits (``lake pipeline stats`` on a release
that has its statistics) hit that in about one run of six. Copying the object's bytes into an
Arrow buffer first leaves nothing in Arrow that needs the interpreter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely
from pyproj import Transformer

from lake.bigearthnet import season_of
from lake.config import StoreSpec
from lake.grid import PATCH_METRES
from lake.layout import patches_table_path
from lake.names import parse_patch_id, parse_s1_name
from lake.storage import filesystem

ROW_GROUP = 65_536
_UTC = pa.timestamp("s", tz="UTC")


def _footprints(
    epsg: np.ndarray, ulx: np.ndarray, uly: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """WGS 84 rings (n, 9, 2) of the 1200 m squares and their centres (n, 2), per UTM zone."""
    n = len(epsg)
    offsets = np.array(
        [(0, -1), (0.5, -1), (1, -1), (1, -0.5), (1, 0), (0.5, 0), (0, 0), (0, -0.5), (0, -1)]
    )
    xs = ulx[:, None] + offsets[None, :, 0] * PATCH_METRES
    ys = uly[:, None] + offsets[None, :, 1] * PATCH_METRES
    rings = np.empty((n, 9, 2))
    centres = np.empty((n, 2))
    for code in np.unique(epsg):
        sel = epsg == code
        tr = Transformer.from_crs(int(code), 4326, always_xy=True)
        lon, lat = tr.transform(xs[sel], ys[sel])
        rings[sel, :, 0], rings[sel, :, 1] = lon, lat
        clon, clat = tr.transform(ulx[sel] + PATCH_METRES / 2, uly[sel] - PATCH_METRES / 2)
        centres[sel, 0], centres[sel, 1] = clon, clat
    return np.round(rings, 7), centres


def patches_table(
    meta: pa.Table,
    sample_index: Mapping[str, int],
    georef: Mapping[str, tuple[int, Sequence[float]]],
    samples_per_shard: int,
) -> pa.Table:
    """Build the ``patches`` table: the metadata rows of the ingested pairs plus derived columns.

    Args:
        meta: The source metadata (``METADATA_SCHEMA``).
        sample_index: Position of each ingested pair in the patch group.
        georef: ``patch_id -> (epsg, transform)`` of each pair's 10 m grid, as decoded.
        samples_per_shard: Pairs per shard (to give each pair its shard number).
    """
    keep = pc.is_in(meta["patch_id"], value_set=pa.array(list(sample_index), pa.string()))
    t = meta.filter(keep)
    ids = t["patch_id"].to_pylist()
    s1 = t["s1_name"].to_pylist()
    s2n = [parse_patch_id(p) for p in ids]
    s1n = [parse_s1_name(s) for s in s1]
    idx = np.array([sample_index[p] for p in ids], dtype=np.int64)
    epsg = np.array([georef[p][0] for p in ids], dtype=np.int32)
    tf = np.array([list(georef[p][1]) for p in ids], dtype=np.float64).reshape(len(ids), 6)
    rings, centres = _footprints(epsg, tf[:, 2], tf[:, 5])
    geoms = shapely.polygons(rings) if len(ids) else np.array([], dtype=object)
    bounds = shapely.bounds(geoms) if len(ids) else np.empty((0, 4))
    columns: dict[str, Any] = {name: t[name] for name in t.column_names}
    columns.update(
        sample_index=pa.array(idx),
        shard=pa.array((idx // samples_per_shard).astype(np.int32)),
        tile=pa.array([n.tile for n in s2n]),
        patch_x=pa.array([n.x for n in s2n], pa.int16()),
        patch_y=pa.array([n.y for n in s2n], pa.int16()),
        s2_platform=pa.array([n.platform for n in s2n]),
        s1_platform=pa.array([n.platform for n in s1n]),
        s2_datetime=pa.array([n.datetime for n in s2n], _UTC),
        s1_datetime=pa.array([n.datetime for n in s1n], _UTC),
        season=pa.array([season_of(n.datetime.month) for n in s2n]),
        epsg=pa.array(epsg),
        transform=pa.array(tf.tolist(), pa.list_(pa.float64(), 6)),
        centre_lon=pa.array(centres[:, 0]),
        centre_lat=pa.array(centres[:, 1]),
        bbox=pa.StructArray.from_arrays(
            [pa.array(bounds[:, i]) for i in range(4)], names=["xmin", "ymin", "xmax", "ymax"]
        ),
        geometry=pa.array(shapely.to_wkb(geoms) if len(ids) else [], pa.binary()),
    )
    table = pa.table(columns)
    total = [float(bounds[:, i].min()) if len(ids) else 0.0 for i in (0, 1)] + [
        float(bounds[:, i].max()) if len(ids) else 0.0 for i in (2, 3)
    ]
    geo = {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": ["Polygon"],
                "bbox": total,
                "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}},
            }
        },
    }
    return table.replace_schema_metadata({b"geo": json.dumps(geo).encode()})


def write_parquet(spec: StoreSpec, path: str, table: pa.Table) -> None:
    """Write a table as one zstd Parquet object of the lake (row groups of :data:`ROW_GROUP`)."""
    fs = filesystem(spec)
    full = spec.path(path)
    fs.makedirs(full.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(full, "wb") as f:
        pq.write_table(table, f, row_group_size=ROW_GROUP, compression="zstd")


def write_patches_table(
    spec: StoreSpec,
    release: str,
    meta: pa.Table,
    sample_index: Mapping[str, int],
    georef: Mapping[str, tuple[int, Sequence[float]]],
    samples_per_shard: int,
) -> None:
    """Write ``tables/<release>/patches/part-0.parquet``."""
    table = patches_table(meta, sample_index, georef, samples_per_shard)
    write_parquet(spec, f"{patches_table_path(release)}/part-0.parquet", table)


# ---------------------------------------------------------------- band statistics

#: The columns of ``band_stats.parquet`` (one row per grouping, group and band).
BAND_STATS_SCHEMA = pa.schema(
    [
        ("group_by", pa.string()),
        ("group", pa.string()),
        ("band", pa.string()),
        ("array", pa.string()),
        ("count", pa.int64()),
        ("nonfinite", pa.int64()),
        ("mean", pa.float64()),
        ("std", pa.float64()),
        ("min", pa.float64()),
        ("max", pa.float64()),
        ("hist", pa.list_(pa.int64())),
        ("bin_edges", pa.list_(pa.float64())),
    ]
)


def parquet_bytes(table: pa.Table) -> bytes:
    """A table as the bytes of one zstd Parquet object (for an atomic write or a hash)."""
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, compression="zstd")
    return bytes(buf.getvalue().to_pybytes())


# ---------------------------------------------------------------- reading


def arrow_buffer(data: bytes) -> pa.Buffer:
    """A copy of ``data`` in memory allocated (and freed) by Arrow, not by Python."""
    sink = pa.BufferOutputStream()
    sink.write(data)
    return sink.getvalue()


def read_parquet(
    fs: fsspec.AbstractFileSystem, path: str, columns: Sequence[str] | None = None
) -> pa.Table:
    """A whole Parquet object (one GET), decoded from an Arrow-owned copy of its bytes.

    Args:
        fs: The filesystem.
        path: The object's fsspec path.
        columns: The columns to read (all when None).

    Raises:
        FileNotFoundError: There is no such object.
    """
    data = arrow_buffer(fs.cat_file(path))
    return pq.read_table(pa.BufferReader(data), columns=None if columns is None else list(columns))

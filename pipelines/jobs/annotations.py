"""The release's Parquet tables: ``patches`` (one row per pair) and ``annotations`` (text rows).

``patches`` is GeoParquet 1.1 (WKB footprint in WGS 84 plus a ``bbox`` covering column), so
DuckDB's spatial extension, GeoPandas and stac-geoparquet read it without our code.
``annotations`` keeps the official BigEarthNet.txt columns unchanged and adds parsed ones and the
pair's ``sample_index``; it is hive-partitioned by ``split``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely
from pyproj import Transformer

from lake.bigearthnet import season_of
from lake.config import StoreSpec
from lake.grid import PATCH_METRES
from lake.layout import annotations_table_path, patches_table_path
from lake.names import parse_patch_id, parse_s1_name
from lake.storage import filesystem
from pipelines.sources.base import Rejected, Source

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


def _write_parquet(spec: StoreSpec, path: str, table: pa.Table) -> None:
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
    _write_parquet(spec, f"{patches_table_path(release)}/part-0.parquet", table)


def write_annotations(
    source: Source,
    spec: StoreSpec,
    release: str,
    meta: pa.Table,
    sample_index: Mapping[str, int],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Stream the source's BigEarthNet.txt parquet into the hive-partitioned annotations dataset.

    Rows whose pair was not ingested are rejected (``unknown_patch`` when the pair is not in the
    metadata at all, ``patch_quarantined`` when it is but was rejected).

    Returns:
        The rejections (as dicts) and counts: ``total``, ``by_split``, ``by_type``.
    """
    from pipelines.sources.annotations import read_annotations

    text_path = getattr(source, "text_path", None)
    counts: dict[str, Any] = {"total": 0, "by_split": {}, "by_type": {}}
    if text_path is None:
        return [], counts
    in_meta = set(meta["patch_id"].to_pylist())
    fs = filesystem(spec)
    base = spec.path(annotations_table_path(release))
    if fs.exists(base):
        fs.rm(base, recursive=True)
    writers: dict[str, pq.ParquetWriter] = {}
    handles: list[Any] = []
    rejected: list[dict[str, Any]] = []
    ids = pa.array(list(sample_index), pa.string())
    positions = pa.array(list(sample_index.values()), pa.int64())
    try:
        for batch, bad in read_annotations(text_path, known=set(sample_index)):
            for r in bad:
                d = r.__dict__ if isinstance(r, Rejected) else dict(r)
                if d.get("reason") == "unknown_patch" and d.get("patch_id") in in_meta:
                    d = {
                        **d,
                        "reason": "patch_quarantined",
                        "detail": "its pair was quarantined, so the row has no image",
                    }
                rejected.append(dict(d))
            if batch.num_rows == 0:
                continue
            where = pc.index_in(batch.column("patch_id"), value_set=ids)
            batch = batch.append_column("sample_index", pc.take(positions, where))
            table = pa.Table.from_batches([batch])
            for split in pc.unique(table["split"]).to_pylist():
                part = table.filter(pc.equal(table["split"], split))
                if split not in writers:
                    path = f"{base}/split={split}/part-0.parquet"
                    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                    handle = fs.open(path, "wb")
                    handles.append(handle)
                    writers[split] = pq.ParquetWriter(handle, part.schema, compression="zstd")
                writers[split].write_table(part, row_group_size=ROW_GROUP)
                counts["by_split"][split] = counts["by_split"].get(split, 0) + part.num_rows
            for row in pc.value_counts(table["type"]).to_pylist():
                counts["by_type"][row["values"]] = (
                    counts["by_type"].get(row["values"], 0) + row["counts"]
                )
            counts["total"] += table.num_rows
    finally:
        for w in writers.values():
            w.close()
        for h in handles:
            h.close()
    counts["by_split"] = dict(sorted(counts["by_split"].items()))
    counts["by_type"] = dict(sorted(counts["by_type"].items()))
    return rejected, counts

"""The ingest step that writes a release's ``annotations`` dataset from its source's text rows.

``annotations`` keeps the official BigEarthNet.txt columns unchanged and adds parsed ones and the
pair's ``sample_index``; it is hive-partitioned by ``split``. Rows of pairs that were not
ingested are quarantined. The ``patches`` table is format, in :mod:`lake.tables`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.config import StoreSpec
from lake.layout import annotations_table_path
from lake.storage import filesystem
from lake.tables import ROW_GROUP
from pipelines.sources.base import Rejected, Source


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
        for batch, bad in read_annotations(
            text_path, known=set(sample_index), store=getattr(source, "store", None)
        ):
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

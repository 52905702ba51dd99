"""The ``hf`` export: Parquet files that Hugging Face ``datasets`` loads, images included.

The target is laid out like a dataset repository on the Hub::

    export.json                              what was exported, with which options
    README.md                                the dataset card: ``configs`` maps each split to
                                             its files, ``dataset_info`` lists the features
    data/<split>-<k>-of-<n>.parquet          part k of n, one file per text split in the part
    index.json                               the parts, the counts and the options (last)

so ``datasets.load_dataset(TARGET)`` gives a ``DatasetDict`` keyed by split (``train``,
``validation``, ``test``, ``bench``), and ``load_dataset("parquet", data_files=
{"bench": "TARGET/data/bench-*.parquet"})`` or ``Dataset.from_parquet`` one split. This export
writes no ``save_to_disk`` folder (``load_from_disk``): load it with ``load_dataset`` and call
``save_to_disk`` on the result when that layout is needed.

The ``image`` column is the ``datasets.Image`` feature as ``datasets`` stores it in Parquet: a
struct ``{bytes: binary, path: string}`` (the PNG or JPEG bytes of
:func:`pipelines.jobs.export_vlm.rgb_image`, ``path`` = ``<patch_id>.png``), declared in the
schema metadata under the ``huggingface`` key (``{"info": {"features": {"image": {"_type":
"Image"}}}}``), so ``datasets`` decodes it to a PIL image; the other columns are plain Arrow
types that ``datasets`` maps to ``Value`` / ``List`` features.

Columns, ``--per row`` (one table row per text row; a pair's image is repeated in each of its
rows): ``id`` (the annotation ``ID``), ``image``, ``patch_id``, ``split``, ``country``,
``season``, ``labels``, ``type``, ``category``, ``input``, ``output`` (boxes and points in
``--box-format``), ``options``, ``answer_index``, ``answer_bool``, ``box`` (``[x1, y1, x2, y2]``
on 0..1, null when the row has none). ``--per pair`` (the default: one image per pair): ``id``
(the ``patch_id``), the image and pair columns, and ``rows``: the pair's rows as a list of
structs with the text columns above (``id`` to ``box``), in conversation order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lake.config import StoreSpec
from lake.patchstore import array_of
from lake.reader import Release
from lake.storage import filesystem, write_bytes_atomic, write_json_atomic
from lake.vlm.rows import TextRow
from pipelines.cluster.runner import Runner
from pipelines.cluster.spec import ClusterSpec
from pipelines.jobs.export_vlm import (
    IMAGE_SUFFIX,
    WORK,
    VlmOptions,
    VlmPart,
    encode_image,
    finish,
    finished,
    part_name,
    rgb_image,
    rows_by_pair,
    run_parts,
)

#: The ``datasets.Image`` feature's storage type.
IMAGE_TYPE: Final = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
#: The schema metadata that makes ``datasets`` decode ``image`` to PIL.
HF_METADATA: Final = {
    b"huggingface": json.dumps({"info": {"features": {"image": {"_type": "Image"}}}}).encode()
}
#: The text columns of one row.
ROW_FIELDS: Final = (
    pa.field("id", pa.int64()),
    pa.field("type", pa.string()),
    pa.field("category", pa.string()),
    pa.field("input", pa.string()),
    pa.field("output", pa.string()),
    pa.field("options", pa.list_(pa.string())),
    pa.field("answer_index", pa.int32()),
    pa.field("answer_bool", pa.int32()),
    pa.field("box", pa.list_(pa.float32())),
)
#: The pair columns of every table row.
PAIR_FIELDS: Final = (
    pa.field("patch_id", pa.string()),
    pa.field("split", pa.string()),
    pa.field("country", pa.string()),
    pa.field("season", pa.string()),
    pa.field("labels", pa.list_(pa.string())),
)


def schema(per: str) -> pa.Schema:
    """The export's Arrow schema for ``--per row`` or ``pair``, with the ``datasets`` metadata."""
    if per == "row":
        fields = [ROW_FIELDS[0], pa.field("image", IMAGE_TYPE), *PAIR_FIELDS, *ROW_FIELDS[1:]]
    else:
        rows = pa.field("rows", pa.list_(pa.struct(list(ROW_FIELDS))))
        fields = [pa.field("id", pa.string()), pa.field("image", IMAGE_TYPE), *PAIR_FIELDS, rows]
    return pa.schema(fields, metadata=HF_METADATA)


def file_name(split: str, part: int, parts: int) -> str:
    """``data/<split>-<part>-of-<parts>.parquet`` (the Hub's sharded-split naming)."""
    return f"data/{split}-{part:05d}-of-{parts:05d}.parquet"


def _row_dict(row: TextRow) -> dict[str, Any]:
    box = row["box"]
    return {
        "id": int(row["id"]),
        "type": row["type"],
        "category": row["category"],
        "input": row["input"],
        "output": row["output"],
        "options": list(row["options"]),
        "answer_index": int(row["answer_index"]),
        "answer_bool": int(row["answer_bool"]),
        "box": None if box is None else [float(v) for v in box],
    }


def write_hf_part(
    job: VlmPart, spec: StoreSpec, release: str, target: StoreSpec, opts: VlmOptions, parts: int
) -> dict[str, Any]:
    """Write one part's Parquet file(s), one per text split of its rows, then its record."""
    group = Release(spec, release).group
    fs = filesystem(target)
    by_pair = rows_by_pair(job.rows, opts.box_format, opts.image_size)
    splits = dict(zip(job.rows["patch_id"].to_pylist(), job.rows["split"].to_pylist(), strict=True))
    s2 = array_of(group, "s2_10m")
    tables: dict[str, list[dict[str, Any]]] = {}
    for index, pid in job.pairs:
        body = encode_image(rgb_image(np.asarray(s2[index]), opts.image_size), opts.image_format)
        meta = job.meta[pid]
        pair = {
            "image": {"bytes": body, "path": f"{pid}.{IMAGE_SUFFIX[opts.image_format]}"},
            "patch_id": pid,
            "split": str(splits[pid]),
            "country": meta.get("country"),
            "season": meta.get("season"),
            "labels": list(meta.get("labels") or []),
        }
        rows = [_row_dict(r) for r in by_pair.get(pid, [])]
        out = tables.setdefault(str(splits[pid]), [])
        if opts.per == "row":
            out.extend({**pair, **row} for row in rows)
        else:
            out.append({"id": pid, **pair, "rows": rows})
    files, written = [], 0
    sch = schema(opts.per)
    for split in sorted(tables):
        table = pa.Table.from_pylist(tables[split], schema=sch)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd", row_group_size=1000)
        body = sink.getvalue().to_pybytes()
        name = file_name(split, job.part, parts)
        write_bytes_atomic(fs, target.path(name), body)
        files.append({"name": name, "split": split, "rows": table.num_rows, "bytes": len(body)})
        written += len(body)
    record = {
        "part": job.part,
        "name": part_name(job.part),
        "pairs": len(job.pairs),
        "rows": job.rows.num_rows,
        "bytes": written,
        "files": files,
    }
    write_json_atomic(fs, target.path(WORK, f"{part_name(job.part)}.json"), record)
    return record


def dataset_card(files: Sequence[dict[str, Any]], opts: VlmOptions, release: str) -> str:
    """The README.md: YAML ``configs`` (split -> files) and a short description."""
    splits = sorted({f["split"] for f in files})
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split in splits:
        lines += [f"  - split: {split}", f"    path: data/{split}-*.parquet"]
    lines += [
        "---",
        "",
        f"# BigEarthNet.txt, release {release}",
        "",
        f"RGB composites (B04/B03/B02, {opts.image_size} px, {opts.image_format}) of BigEarthNet "
        f"v2.0 pairs with their BigEarthNet.txt rows (tasks: {', '.join(opts.tasks)}; boxes "
        f"and points as `{opts.box_format}`), one table row per {opts.per}. Written by "
        "`lake pipeline export --format hf`.",
        "",
    ]
    return "\n".join(lines)


def export_hf(
    rel: Release,
    parts: Sequence[VlmPart],
    target: StoreSpec,
    opts: VlmOptions,
    cluster: ClusterSpec,
    progress: bool,
    on_start: Callable[[Runner], None] | None,
) -> dict[str, Any]:
    """Write the parts (resuming), then ``README.md`` and ``index.json``.

    Returns:
        The index (also written as ``index.json``), plus ``resumed`` and ``dashboard``.
    """
    done = finished(target)
    if done is not None:
        return done
    runs = run_parts(
        write_hf_part,
        parts,
        rel.spec,
        rel.name,
        target,
        opts,
        len(parts),
        source=rel.spec,
        target=target,
        cluster=cluster,
        progress=progress,
        on_start=on_start,
    )
    files = [f for r in runs[0] for f in r["files"]]
    card = dataset_card(files, opts, rel.name).encode()
    write_bytes_atomic(filesystem(target), target.path("README.md"), card)
    return finish(
        rel,
        target,
        opts,
        "hf",
        runs,
        size=sum(int(f["bytes"]) for f in files) + len(card),
        files=["README.md", *(f["name"] for f in files)],
    )

"""The ``llava`` export: conversations in the LLaVA / ShareGPT shape plus RGB images.

The shape is LLaVA's fine-tuning data format (haotian-liu/LLaVA, ``docs/Finetune_Custom_Data.md``:
"a JSON file of a List of all samples", each with ``id``, ``image`` (a path relative to the image
folder) and ``conversations``, turns ``{"from": "human" | "gpt", "value": ...}`` with ``<image>``
in the first human turn), which LLaVA's ``LazySupervisedDataset``, LLaVA-NeXT, TinyLLaVA,
ShareGPT4V and most trainers derived from them read. The target holds::

    export.json                  what was exported, with which options (resume marker)
    llava.json                   one JSON list of every conversation
    llava.jsonl                  the same conversations, one object per line
    images/<patch_id>.png        the RGB composite (.jpg with --image-format jpeg)
    arrays/<patch_id>.<a>.npy    with --with-arrays: s2_10m, s2_20m, s2_60m and s1 at native size
                                 and dtype (bit-exact; the same members as the webdataset export)
    index.json                   the parts, the counts and the options (written last)

A conversation (``--per pair``, the default) holds all the pair's rows of the chosen tasks as
turns, in :func:`lake.vlm.rows.conversation_order`, ``<image>`` only in the first human turn;
``--per row`` makes one single-turn conversation per text row. Besides the three keys LLaVA reads,
each record has ``patch_id`` and ``row_ids`` (the annotation ``ID`` of each turn, to join
predictions back for ``lake eval``); trainers ignore keys they do not know. Texts are those of
:mod:`pipelines.jobs.export_vlm` (boxes and points in ``--box-format``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import numpy as np

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

#: The conversations as one JSON list and as JSON lines.
JSON_NAME: Final = "llava.json"
JSONL_NAME: Final = "llava.jsonl"
#: The arrays ``--with-arrays`` writes.
ARRAY_NAMES: Final = ("s2_10m", "s2_20m", "s2_60m", "s1")
#: The token LLaVA replaces with the image features.
IMAGE_TOKEN: Final = "<image>"


def image_path(patch_id: str, opts: VlmOptions) -> str:
    """The image of a pair, relative to the export's root."""
    return f"images/{patch_id}.{IMAGE_SUFFIX[opts.image_format]}"


def conversations(
    patch_id: str, rows: Sequence[TextRow], opts: VlmOptions, arrays: dict[str, str] | None
) -> list[dict[str, Any]]:
    """The LLaVA records of one pair: one holding every row (per pair) or one per row."""
    groups = [list(rows)] if opts.per == "pair" else [[r] for r in rows]
    out = []
    for group in groups:
        turns: list[dict[str, str]] = []
        for i, row in enumerate(group):
            prefix = f"{IMAGE_TOKEN}\n" if i == 0 else ""
            turns.append({"from": "human", "value": prefix + row["input"]})
            turns.append({"from": "gpt", "value": row["output"]})
        record: dict[str, Any] = {
            "id": patch_id if opts.per == "pair" else str(group[0]["id"]),
            "image": image_path(patch_id, opts),
            "conversations": turns,
            "patch_id": patch_id,
            "row_ids": [int(r["id"]) for r in group],
        }
        if arrays is not None:
            record["arrays"] = arrays
        out.append(record)
    return out


def npy_bytes(values: np.ndarray) -> bytes:
    """An array as ``.npy`` bytes."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(values), allow_pickle=False)
    return buf.getvalue()


def write_llava_part(
    job: VlmPart, spec: StoreSpec, release: str, target: StoreSpec, opts: VlmOptions
) -> dict[str, Any]:
    """Write one part's images (and arrays), then its record holding its conversations."""
    group = Release(spec, release).group
    fs = filesystem(target)
    by_pair = rows_by_pair(job.rows, opts.box_format, opts.image_size)
    s2 = array_of(group, "s2_10m")
    records: list[dict[str, Any]] = []
    written = 0
    for index, pid in job.pairs:
        image = encode_image(rgb_image(np.asarray(s2[index]), opts.image_size), opts.image_format)
        write_bytes_atomic(fs, target.path(image_path(pid, opts)), image)
        written += len(image)
        arrays = None
        if opts.with_arrays:
            arrays = {}
            for name in ARRAY_NAMES:
                body = npy_bytes(np.asarray(array_of(group, name)[index]))
                arrays[name] = f"arrays/{pid}.{name}.npy"
                write_bytes_atomic(fs, target.path(arrays[name]), body)
                written += len(body)
        records.extend(conversations(pid, by_pair.get(pid, []), opts, arrays))
    record = {
        "part": job.part,
        "name": part_name(job.part),
        "pairs": len(job.pairs),
        "rows": job.rows.num_rows,
        "bytes": written,
        "conversations": records,
    }
    write_json_atomic(fs, target.path(WORK, f"{part_name(job.part)}.json"), record)
    return record


def _lines(records: Sequence[dict[str, Any]]) -> Iterator[str]:
    for part in records:
        for conv in part["conversations"]:
            yield json.dumps(conv, ensure_ascii=False, sort_keys=True)


def _write_text_atomic(target: StoreSpec, name: str, chunks: Iterator[str]) -> int:
    """Stream text into ``name`` under a temporary name, then move it into place."""
    fs = filesystem(target)
    tmp = target.path(f"{WORK}/.{name}.partial")
    size = 0
    with fs.open(tmp, "wb") as f:
        for chunk in chunks:
            data = chunk.encode()
            f.write(data)
            size += len(data)
    fs.mv(tmp, target.path(name))
    return size


def _json_list(records: Sequence[dict[str, Any]]) -> Iterator[str]:
    yield "["
    for i, line in enumerate(_lines(records)):
        yield ("," if i else "") + "\n" + line
    yield "\n]\n"


def export_llava(
    rel: Release,
    parts: Sequence[VlmPart],
    target: StoreSpec,
    opts: VlmOptions,
    cluster: ClusterSpec,
    progress: bool,
    on_start: Callable[[Runner], None] | None,
) -> dict[str, Any]:
    """Write the parts (resuming), then ``llava.json``, ``llava.jsonl`` and ``index.json``.

    Returns:
        The index (also written as ``index.json``), plus ``resumed`` and ``dashboard``.
    """
    done = finished(target)
    if done is not None:
        return done
    runs = run_parts(
        write_llava_part,
        parts,
        rel.spec,
        rel.name,
        target,
        opts,
        source=rel.spec,
        target=target,
        cluster=cluster,
        progress=progress,
        on_start=on_start,
    )
    records = runs[0]
    size = sum(int(r["bytes"]) for r in records)
    size += _write_text_atomic(target, JSONL_NAME, (line + "\n" for line in _lines(records)))
    size += _write_text_atomic(target, JSON_NAME, _json_list(records))
    return finish(
        rel,
        target,
        opts,
        "llava",
        runs,
        size=size,
        files=[JSON_NAME, JSONL_NAME],
        conversations=sum(len(r["conversations"]) for r in records),
    )

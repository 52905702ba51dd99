"""What the VLM exports share: their options, the text rows they carry, and the images they render.

The ``llava`` (:mod:`pipelines.jobs.export_llava`), ``hf`` (:mod:`pipelines.jobs.export_hf`)
and ``webdataset`` exports (:mod:`pipelines.jobs.export`) write each selected pair with its
BigEarthNet.txt rows:

* **text rows**: the annotation rows of the selected pairs, of the chosen text tasks
  (``caption`` = ``captioning`` rows, ``vqa`` = ``binary`` and ``mcq``, ``refexp`` =
  ``bounding box``, as in the loader) and, with a split, of that split only; in
  :func:`lake.vlm.rows.conversation_order` within a pair. mcq options stay in the ``input`` (one
  ``A. text`` line each) and the answer is the letter, as in the dataset.
* **boxes and points** in ``input`` and ``output`` are rewritten into the chosen box format by
  :func:`lake.vlm.boxes.convert_text` (``unit``: the dataset's own ``[x1 y1, x2 y2]`` on 0..1;
  ``pixel``: pixels of the exported image, of side ``image_size``; ``qwen``: Qwen2/3-VL
  ``{"bbox_2d": [...]}`` on 0..1000; ``internvl``: ``<box>[[...]]</box>`` on 0..1000;
  ``geochat``: ``{<x1><y1><x2><y2>}`` on 0..100). The numeric box columns stay on 0..1.
* **images**: the RGB composite of B04/B03/B02 (:func:`lake.vlm.composite.s2_rgb` with the fixed
  reflectance stretch :data:`lake.vlm.composite.FIXED_STRETCH`, so an image does not depend on
  which pairs were selected), resized to ``image_size`` with :func:`lake.vlm.composite.resize`,
  encoded as PNG (zlib level 1, no metadata chunks: 6x faster than level 6 for 17 % more bytes on
  336 px composites) or JPEG (quality 95, 4:4:4): the same pixels
  give the same bytes on every run.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake.bigearthnet import TEXT_SPLITS
from lake.config import StoreSpec
from lake.errors import ConfigError, QueryError
from lake.reader import Release
from lake.storage import filesystem, read_json, write_json_atomic
from lake.vlm.boxes import BOX_FORMATS, BoxFormat, convert_text
from lake.vlm.composite import resize, s2_rgb, to_pil
from lake.vlm.rows import TASK_TYPES, TextRow, conversation_order, rows_of
from pipelines.cluster.runner import Runner
from pipelines.cluster.spec import ClusterSpec

#: The folder of an export's resumable state: one record per finished part (removed at the end).
WORK: Final = "_export"
#: The document a finished export writes last.
INDEX_NAME: Final = "index.json"

#: A text task of the exports (the loader's names).
TextTask = Literal["caption", "vqa", "refexp"]
TEXT_TASKS: Final[tuple[TextTask, ...]] = get_args(TextTask)
#: One conversation per pair (all its rows as turns) or one per text row.
Per = Literal["pair", "row"]
PERS: Final[tuple[Per, ...]] = get_args(Per)
#: How the RGB images are encoded.
ImageFormat = Literal["png", "jpeg"]
IMAGE_FORMATS: Final[tuple[ImageFormat, ...]] = get_args(ImageFormat)
#: File name extension of each image format.
IMAGE_SUFFIX: Final[Mapping[str, str]] = {"png": "png", "jpeg": "jpg"}
#: The side of the images when none is given (LLaVA-1.5's CLIP ViT-L/14-336 input).
DEFAULT_IMAGE_SIZE: Final = 336
#: The side of the native 10 m grid: what ``pixel`` boxes refer to without a rendered image.
NATIVE_SIZE: Final = 120
#: The annotation columns the VLM exports read.
ROW_COLUMNS: Final = (
    "ID",
    "patch_id",
    "split",
    "type",
    "category",
    "input",
    "output",
    "options",
    "answer_index",
    "answer_bool",
    "box_x1",
    "box_y1",
    "box_x2",
    "box_y2",
)
#: The pair metadata each exported pair carries (when the release has the column).
PAIR_COLUMNS: Final = ("patch_id", "split", "country", "season", "labels")


@dataclass(frozen=True)
class VlmOptions:
    """How a VLM export renders its pairs and their text.

    Attributes:
        image_size: Side of the square RGB images, in pixels (``pixel`` boxes refer to it).
        image_format: ``png`` or ``jpeg``.
        box_format: The box and point markup of the text (module docstring).
        per: One conversation (llava) or one table row per ``pair`` or per text ``row``.
        tasks: The text tasks whose rows are exported.
        with_arrays: Also write the multispectral arrays as ``.npy`` (llava).
    """

    image_size: int = DEFAULT_IMAGE_SIZE
    image_format: ImageFormat = "png"
    box_format: BoxFormat = "unit"
    per: Per = "pair"
    tasks: tuple[TextTask, ...] = TEXT_TASKS
    with_arrays: bool = False

    def check(self) -> VlmOptions:
        """Return the options with ``tasks`` sorted and unique, or raise.

        Raises:
            ConfigError: A value is out of its vocabulary or range; the message names the
                option and its allowed values.
        """
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int):
            raise ConfigError(
                f"--image-size must be a whole number of pixels, got {self.image_size!r}"
            )
        if self.image_size <= 0:
            raise ConfigError(f"--image-size must be at least 1 pixel, got {self.image_size}")
        _check_choice("--image-format", self.image_format, IMAGE_FORMATS)
        _check_choice("--box-format", self.box_format, BOX_FORMATS)
        _check_choice("--per", self.per, PERS)
        if not self.tasks:
            raise ConfigError(f"--tasks is empty: choose one or more of {', '.join(TEXT_TASKS)}")
        for task in self.tasks:
            _check_choice("--tasks", task, TEXT_TASKS)
        tasks = tuple(t for t in TEXT_TASKS if t in self.tasks)
        return VlmOptions(
            self.image_size, self.image_format, self.box_format, self.per, tasks, self.with_arrays
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (recorded in the export's marker)."""
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        return d


def _check_choice(option: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{option} {value!r} is not known: use one of {', '.join(allowed)}")


def parse_tasks(text: str) -> tuple[TextTask, ...]:
    """``"vqa,refexp"`` -> ``("vqa", "refexp")`` (for the command line).

    Raises:
        ConfigError: An unknown or empty task name.
    """
    names = [t.strip() for t in text.split(",")]
    if not any(names):
        raise ConfigError(f"--tasks is empty: choose one or more of {', '.join(TEXT_TASKS)}")
    for name in names:
        _check_choice("--tasks", name, TEXT_TASKS)
    return tuple(n for n in TEXT_TASKS if n in names)


def check_split(split: str | None) -> str | None:
    """The split, checked against the text splits (``bench`` included).

    Raises:
        ConfigError: An unknown split.
    """
    if split is not None:
        _check_choice("--split", split, TEXT_SPLITS)
    return split


# ---------------------------------------------------------------- text rows


def text_rows(
    rel: Release,
    patch_ids: Sequence[str],
    tasks: Sequence[str] = TEXT_TASKS,
    split: str | None = None,
) -> pa.Table:
    """The annotation rows of the pairs, of the tasks (and split), sorted by ``(patch_id, ID)``.

    Returns:
        A table of :data:`ROW_COLUMNS`; empty (with those columns) when the release has no text.
    """
    types = [t for task in tasks for t in TASK_TYPES[task]]
    if not rel.manifest["counts"].get("annotations", {}).get("total"):
        return pa.table({c: pa.array([], pa.null()) for c in ROW_COLUMNS})
    table = rel.annotations(split=split, columns=list(ROW_COLUMNS))
    keep = pc.and_(
        pc.is_in(table["patch_id"], value_set=pa.array(list(patch_ids), pa.string())),
        pc.is_in(table["type"], value_set=pa.array(types, pa.string())),
    )
    return table.filter(keep).sort_by([("patch_id", "ascending"), ("ID", "ascending")])


def require_text(
    rows: pa.Table, rel: Release, fmt: str, tasks: Sequence[str], split: str | None
) -> None:
    """Refuse a text export that would carry no text.

    Raises:
        QueryError: The release has no BigEarthNet.txt rows, or none of the selected pairs has a
            row of the tasks (and split); the message names them and what to change.
    """
    if rows.num_rows:
        return
    if not rel.manifest["counts"].get("annotations", {}).get("total"):
        raise QueryError(
            f"release {rel.name!r} of {rel.spec.url} has no BigEarthNet.txt rows, so the "
            f"{fmt} export has no text to write: ingest the source with its text parquet, or "
            "export --format lake or webdataset"
        )
    where = f" of split {split!r}" if split else ""
    raise QueryError(
        f"the selected pairs have no text rows of the tasks {', '.join(tasks)}{where}: "
        "choose other pairs, --tasks or --split"
    )


def converted(row: TextRow, box_format: BoxFormat, size: int) -> TextRow:
    """The row with the boxes and points of its ``input`` and ``output`` in ``box_format``."""
    if box_format == "unit":
        return row
    out = row.copy()
    out["input"] = convert_text(row["input"], box_format, size=size)
    out["output"] = convert_text(row["output"], box_format, size=size)
    return out


def rows_by_pair(
    rows: pa.Table, box_format: BoxFormat = "unit", size: int = NATIVE_SIZE
) -> dict[str, list[TextRow]]:
    """``patch_id ->`` its rows in conversation order, text converted to ``box_format``."""
    out: dict[str, list[TextRow]] = {}
    if rows.num_rows == 0:
        return out
    own = rows.drop_columns([c for c in ("patch_id", "split") if c in rows.column_names])
    for pid, row in zip(rows["patch_id"].to_pylist(), rows_of(own), strict=True):
        out.setdefault(str(pid), []).append(converted(row, box_format, size))
    return {pid: conversation_order(r) for pid, r in out.items()}


def rows_for(rows: pa.Table, patch_ids: Iterable[str]) -> pa.Table:
    """The rows of some pairs (a part's share of :func:`text_rows`)."""
    ids = pa.array(list(patch_ids), pa.string())
    return rows.filter(pc.is_in(rows["patch_id"], value_set=ids))


def pair_metadata(rel: Release, patch_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``patch_id ->`` its :data:`PAIR_COLUMNS` (JSON-ready) and ``sample_index``."""
    t = rel.patches()
    t = t.filter(pc.is_in(t["patch_id"], value_set=pa.array(list(patch_ids), pa.string())))
    cols = [c for c in (*PAIR_COLUMNS, "sample_index") if c in t.column_names]
    rows = json.loads(json.dumps(t.select(cols).to_pylist(), default=str))
    return {str(r["patch_id"]): r for r in rows}


# ---------------------------------------------------------------- images


def rgb_image(s2_10m: np.ndarray, size: int) -> np.ndarray:
    """The ``(3, size, size)`` uint8 RGB composite of one pair's ``(4, 120, 120)`` s2_10m."""
    return resize(s2_rgb(s2_10m), size)


def encode_image(image: np.ndarray, fmt: ImageFormat) -> bytes:
    """PNG or JPEG bytes of one ``(3, H, W)`` uint8 image, the same bytes for the same pixels."""
    buf = io.BytesIO()
    pil = to_pil(image)
    if fmt == "png":
        pil.save(buf, format="PNG", compress_level=1, optimize=False)
    else:
        pil.save(buf, format="JPEG", quality=95, subsampling=0, optimize=False)
    return buf.getvalue()


# ---------------------------------------------------------------- resumable parts


@dataclass(frozen=True)
class VlmPart:
    """One task of a VLM export: some pairs (in sample order) and their text rows.

    Attributes:
        part: The part's number.
        pairs: ``(sample_index, patch_id)`` of each pair.
        rows: The pairs' rows of :func:`text_rows`.
        meta: ``patch_id ->`` the pair's metadata (:func:`pair_metadata`).
    """

    part: int
    pairs: tuple[tuple[int, str], ...]
    rows: pa.Table
    meta: Mapping[str, Mapping[str, Any]]


def vlm_parts(rel: Release, rows: pa.Table, per_part: int) -> list[VlmPart]:
    """The parts of a VLM export: the pairs that have rows, ``per_part`` at a time.

    Pairs go in the release's (shuffled) sample order, so a part's pairs share few shards.
    """
    ids = sorted(set(rows["patch_id"].to_pylist()))
    meta = pair_metadata(rel, ids)
    order = sorted((int(meta[p]["sample_index"]), p) for p in ids)
    parts = []
    for k, start in enumerate(range(0, len(order), per_part)):
        pairs = tuple(order[start : start + per_part])
        names = [p for _, p in pairs]
        parts.append(VlmPart(k, pairs, rows_for(rows, names), {p: meta[p] for p in names}))
    return parts


def part_name(part: int) -> str:
    """The name of a part (its record is ``_export/<name>.json``)."""
    return f"part-{part:06d}"


def run_parts(
    fn: Callable[..., dict[str, Any]],
    parts: Sequence[VlmPart],
    *args: Any,
    source: StoreSpec,
    target: StoreSpec,
    cluster: ClusterSpec,
    progress: bool,
    on_start: Callable[[Runner], None] | None,
) -> tuple[list[dict[str, Any]], int, str | None]:
    """Run ``fn(part, *args)`` for every part without a record in ``_export/``, on the cluster.

    ``fn`` writes its part's files, then its record ``_export/<part name>.json`` (last, so a
    record means a finished part) and returns the record.

    Returns:
        Every part's record in part order, the number found done by an earlier run, and the
        dashboard link (when a cluster was started).
    """
    fs = filesystem(target)
    work = target.path(WORK)
    records: dict[int, dict[str, Any]] = {}
    if fs.exists(work):
        for path in fs.find(work):
            if path.endswith(".json"):
                record = read_json(fs, path)
                records[int(record["part"])] = record
    resumed = len(records)
    dashboard = None
    todo = [p for p in parts if p.part not in records]
    if todo:
        with Runner(cluster.with_store(source).with_store(target)) as runner:
            dashboard = runner.dashboard
            if on_start is not None:
                on_start(runner)
            for record in runner.map(fn, todo, *args, desc="export", progress=progress):
                records[int(record["part"])] = record
    return [records[k] for k in sorted(records)], resumed, dashboard


def finished(target: StoreSpec) -> dict[str, Any] | None:
    """The index of an export already finished at ``target`` (``already_done``), or None."""
    fs = filesystem(target)
    if not fs.exists(target.path(INDEX_NAME)):
        return None
    return {**read_json(fs, target.path(INDEX_NAME)), "already_done": True}


def finish(
    rel: Release,
    target: StoreSpec,
    opts: VlmOptions,
    fmt: str,
    runs: tuple[list[dict[str, Any]], int, str | None],
    *,
    size: int,
    files: list[str],
    **extra: Any,
) -> dict[str, Any]:
    """Write ``index.json`` of a finished export (last) and remove its ``_export/`` records.

    Args:
        rel: The exported release.
        target: The export's folder.
        opts: Its options.
        fmt: ``llava`` or ``hf``.
        runs: What :func:`run_parts` returned (records, parts resumed, dashboard).
        size: Bytes written in all.
        files: The top-level files a reader opens first.
        **extra: Format-specific counts, placed after ``pairs`` and ``rows``.

    Returns:
        The index, plus ``resumed``, ``dashboard`` and ``already_done`` (False).
    """
    records, resumed, dashboard = runs
    index = {
        "format": fmt,
        "source": rel.spec.url,
        "release": rel.name,
        "options": opts.to_dict(),
        "pairs": sum(int(r["pairs"]) for r in records),
        "rows": sum(int(r["rows"]) for r in records),
        **extra,
        "bytes": size,
        "files": files,
        "parts": [{k: r[k] for k in ("part", "pairs", "rows", "bytes")} for r in records],
    }
    fs = filesystem(target)
    write_json_atomic(fs, target.path(INDEX_NAME), index)
    fs.rm(target.path(WORK), recursive=True)
    return {**index, "resumed": resumed, "dashboard": dashboard, "already_done": False}

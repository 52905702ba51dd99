"""What an epoch is made of: the selected pairs (``labels``) or annotation rows (text tasks).

An *item* is one delivered sample: a pair for ``task="labels"``, an annotation row of
BigEarthNet.txt for ``caption`` (``captioning`` rows), ``vqa`` (``binary`` and ``mcq`` rows) and
``refexp`` (``bounding box`` rows), or of several text tasks at once (``tasks=``). With
``group="pair"`` an item is a pair holding its selected rows (:mod:`lake.loader.text`). Items are
kept in storage order (by ``sample_index``, then ``ID``), so the items of a shard are contiguous.

A selection is a SQL query (run by :func:`lake.sql.selection` when that module is there), a list
of patch ids, a list of annotation ``ID`` values (text tasks), or a STAC search result (a pystac
``ItemCollection``, a list of Items or of item ids, or a GeoJSON FeatureCollection dict): STAC
item ids are patch ids.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake.bigearthnet import CLASSES_ORIGINAL, CLASSES_SORTED, SPLITS, TEXT_SPLITS
from lake.errors import ConfigError, LayoutError, PatchNotFound
from lake.loader.text import ROW_COLUMNS, TASK_TYPES, filter_rows, task_of_types

__all__ = [
    "LABEL_ORDERS",
    "TASKS",
    "TASK_TYPES",
    "TEXT_COLUMNS",
    "Items",
    "LabelOrder",
    "Selection",
    "Split",
    "Task",
    "load_items",
    "resolve_selection",
]


class ReleaseTables(Protocol):
    """What :func:`load_items` reads.

    A :class:`lake.reader.Release`, or the release's index (:class:`lake.index.ReleaseIndex`,
    one GET) when it has one.
    """

    @property
    def name(self) -> str:
        """The release name."""
        ...

    def patches(self, columns: list[str] | None = None) -> pa.Table:
        """Columns of the ``patches`` table."""
        ...

    def annotations(self, split: str | None = None, columns: list[str] | None = None) -> pa.Table:
        """The ``annotations`` table (or one split)."""
        ...


Task = Literal["labels", "caption", "vqa", "refexp"]
TASKS: Final = ("labels", "caption", "vqa", "refexp")
#: Class order of the multi-hot labels: alphabetical, or the 19 classes' original order.
LabelOrder = Literal["sorted", "original"]
LABEL_ORDERS: Final = ("sorted", "original")
#: A split of the pairs (``bench`` holds annotation rows of text tasks only).
Split = Literal["train", "validation", "test", "bench"]
#: Annotation columns each text task delivers (besides ``patch_id`` and ``sample_index``).
TEXT_COLUMNS: Final = {
    "caption": ("ID", "input", "output", "type", "category"),
    "vqa": ("ID", "input", "output", "type", "category", "options", "answer_index", "answer_bool"),
    "refexp": ("ID", "input", "output", "type", "category", "box_x1", "box_y1", "box_x2", "box_y2"),
}
_SHOW: Final = 5


@dataclass(frozen=True)
class Selection:
    """A resolved selection.

    Attributes:
        by: ``patch_id`` (pairs) or ``ID`` (annotation rows).
        values: The selected values (deduplicated, in the order given).
    """

    by: Literal["patch_id", "ID"]
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Items:
    """The items of a dataset, in storage order.

    Attributes:
        task: The task.
        samples: Sample index of each item (position in the patch group).
        table: One row per item: ``patch_id`` and, for text tasks, the annotation columns.
        labels: ``(n, 19)`` float32 multi-hot labels of each item's pair.
        tasks: The text tasks of the rows (empty for ``labels``).
        row_task: For row items, the index in ``tasks`` of each item's task.
        group: ``row`` or ``pair``.
        rows: For pair items, every selected annotation row (the :data:`ROW_COLUMNS`), sorted
            by ``sample_index`` then ``ID``; item ``i``'s rows are
            ``rows[offsets[i]:offsets[i + 1]]``.
        offsets: For pair items, ``n + 1`` row offsets into ``rows``.
    """

    task: str
    samples: np.ndarray
    table: pa.Table
    labels: np.ndarray
    tasks: tuple[str, ...] = ()
    row_task: np.ndarray | None = None
    group: str = "row"
    rows: pa.Table | None = None
    offsets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.samples)


def resolve_selection(select: Any, spec: Any, release: str) -> Selection | None:
    """Turn what the user passed as ``select`` into patch ids or annotation IDs.

    Args:
        select: None, a SQL string, patch ids, annotation IDs, or a STAC search result.
        spec: The lake's :class:`~lake.config.StoreSpec` (for SQL).
        release: The release (for SQL).

    Raises:
        ConfigError: SQL without :mod:`lake.sql`, an empty selection, or mixed kinds of value.
    """
    if select is None:
        return None
    if isinstance(select, str):
        try:
            sql = importlib.import_module("lake.sql")
        except ImportError:
            raise ConfigError(
                "select= is a SQL string but this installation has no lake.sql module; pass a "
                "list of patch ids or a STAC search result instead"
            ) from None
        values = list(sql.selection(spec, select, release=release))
    else:
        values = list(_ids_of(select))
    if not values:
        raise ConfigError(f"the selection {_short(select)} is empty: nothing to load")
    kinds = {type(_as_key(v)) for v in values}
    if kinds == {str}:
        return Selection("patch_id", tuple(dict.fromkeys(str(v) for v in values)))
    if kinds == {int}:
        return Selection("ID", tuple(dict.fromkeys(int(v) for v in values)))
    raise ConfigError(
        f"the selection {_short(select)} mixes {sorted(k.__name__ for k in kinds)}: give patch "
        "ids (str) or annotation IDs (int)"
    )


def _as_key(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    return value


def _ids_of(select: Any) -> Iterable[Any]:
    """Patch ids / annotation IDs of a list, an ItemCollection, Items or a FeatureCollection."""
    if isinstance(select, Mapping):
        if "features" in select:
            return [f["id"] for f in select["features"]]
        raise ConfigError(f"select= got a mapping without 'features': {_short(select)}")
    if hasattr(select, "items") and callable(select.items) and not hasattr(select, "__iter__"):
        select = select.items()  # a pystac-client ItemSearch
    if isinstance(select, pa.Table | pa.ChunkedArray | pa.Array):
        column = select["patch_id"] if isinstance(select, pa.Table) else select
        return column.to_pylist()
    out = []
    for v in select:
        if isinstance(v, str | int | np.integer):
            out.append(_as_key(v))
        elif isinstance(v, Mapping) and "id" in v:
            out.append(v["id"])
        elif hasattr(v, "id"):
            out.append(v.id)
        else:
            raise ConfigError(f"select=: cannot take an id from {v!r} ({type(v).__name__})")
    return out


def _short(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 80 else text[:77] + "..."


def load_items(
    release: ReleaseTables,
    task: Task | Literal["mixed"],
    *,
    split: Split | None = None,
    selection: Selection | None = None,
    label_order: LabelOrder = "sorted",
    tasks: tuple[str, ...] | None = None,
    group: str = "row",
    categories: Sequence[str] | None = None,
    types: Sequence[str] | None = None,
) -> Items:
    """Read the items of a task from the release's tables.

    Args:
        release: The release's tables (or its index).
        task: ``labels`` or a text task (the name; ``tasks`` gives the text tasks when set).
        split: The split (None: all).
        selection: Patch ids or annotation IDs.
        label_order: Class order of the multi-hot labels.
        tasks: The text tasks whose rows are items (default: ``(task,)`` for a text task).
        group: ``row`` (an item per annotation row) or ``pair`` (an item per pair, its rows in
            :attr:`Items.rows`).
        categories: Keep only rows of these categories (None: all).
        types: Keep only rows of these types (None: all of the tasks).

    Raises:
        ConfigError: Unknown task, split, label order, category or type, a selection kind the
            task cannot use, or nothing left to load.
        PatchNotFound: Selected patch ids or annotation IDs are not in the release.
    """
    if task not in TASKS and task != "mixed":
        raise ConfigError(f"task={task!r}: use one of {', '.join(TASKS)}")
    if label_order not in LABEL_ORDERS:
        raise ConfigError(f"label_order={label_order!r}: use 'sorted' or 'original'")
    order = CLASSES_SORTED if label_order == "sorted" else CLASSES_ORIGINAL
    patches = release.patches(columns=["patch_id", "sample_index", "labels", "split"])
    text = tasks if tasks is not None else (() if task == "labels" else (task,))
    if not text:
        if categories is not None or types is not None:
            raise ConfigError(
                "categories= and types= filter annotation rows: give a text task "
                "(task='vqa', tasks=[...])"
            )
        table = _labels_items(patches, split, selection, release.name)
    else:
        table = _text_items(release, text, split, selection, categories, types)
    table = table.sort_by([("sample_index", "ascending"), ("_order", "ascending")])
    table = table.drop_columns(["_order"])
    if len(table) == 0:
        raise ConfigError(
            f"nothing to load: task {task!r}, split {split!r}, the selection and the filters "
            f"leave no {'pairs' if not text else 'annotation rows'} in release {release.name!r}"
        )
    if group == "pair":
        return _pair_items(task, text, table, patches, order)
    labels = _multi_hot(patches, table["patch_id"], order)
    samples = table["sample_index"].to_numpy().astype(np.int64)
    row_task = task_of_types(table["type"], text) if text else None
    return Items(
        task=task, samples=samples, table=table, labels=labels, tasks=text, row_task=row_task
    )


def _pair_items(
    task: str, tasks: tuple[str, ...], rows: pa.Table, patches: pa.Table, order: tuple[str, ...]
) -> Items:
    """One item per pair of the (sorted) rows, with the offsets of its rows."""
    sample_of_row = rows["sample_index"].to_numpy().astype(np.int64)
    starts = np.flatnonzero(np.r_[True, np.diff(sample_of_row) != 0])
    offsets = np.r_[starts, len(sample_of_row)].astype(np.int64)
    table = rows.select(["patch_id", "sample_index"]).take(pa.array(starts))
    return Items(
        task=task,
        samples=sample_of_row[starts],
        table=table,
        labels=_multi_hot(patches, table["patch_id"], order),
        tasks=tasks,
        group="pair",
        rows=rows,
        offsets=offsets,
    )


def _check_split(split: str | None, allowed: tuple[str, ...]) -> None:
    if split is not None and split not in allowed:
        raise ConfigError(f"split={split!r}: use one of {', '.join(allowed)} (or None for all)")


def _labels_items(
    patches: pa.Table, split: str | None, selection: Selection | None, release: str
) -> pa.Table:
    _check_split(split, SPLITS)
    table = patches.append_column("_order", pa.array(np.arange(patches.num_rows)))
    if selection is not None:
        if selection.by != "patch_id":
            raise ConfigError(
                "task='labels' selects pairs: give patch ids (a query returning patch_id), "
                "not annotation IDs"
            )
        _check_known(selection.values, table["patch_id"], "patch", release)
        table = table.filter(pc.is_in(table["patch_id"], pa.array(selection.values, pa.string())))
    if split is not None:
        table = table.filter(pc.equal(table["split"], split))
    return table.select(["patch_id", "sample_index", "_order"])


def _text_items(
    release: ReleaseTables,
    tasks: tuple[str, ...],
    split: str | None,
    selection: Selection | None,
    categories: Sequence[str] | None,
    types: Sequence[str] | None,
) -> pa.Table:
    _check_split(split, TEXT_SPLITS)
    columns = ["patch_id", "sample_index", *ROW_COLUMNS]
    table = release.annotations(split=split)
    if table.num_rows == 0:
        raise ConfigError(
            f"task={tasks[0] if len(tasks) == 1 else list(tasks)!r} needs BigEarthNet.txt "
            f"annotations, but release {release.name!r} has none: ingest a source with "
            "BigEarthNet.txt.parquet"
        )
    table = filter_rows(table.select(columns), tasks, categories, types)
    table = table.append_column("_order", table["ID"])
    if selection is not None:
        column = table["patch_id"] if selection.by == "patch_id" else table["ID"]
        if selection.by == "patch_id":
            known = release.patches(columns=["patch_id"])["patch_id"]
            _check_known(selection.values, known, "patch", release.name)
            values = pa.array(selection.values, pa.string())
        else:
            _check_known(selection.values, column, "annotation ID", release.name)
            values = pa.array(selection.values, column.type)
        table = table.filter(pc.is_in(column, values))
    return table


def _check_known(values: tuple[Any, ...], column: pa.ChunkedArray, what: str, release: str) -> None:
    known = set(column.to_pylist())
    missing = [v for v in values if v not in known]
    if missing:
        shown = ", ".join(repr(v) for v in missing[:_SHOW])
        more = f" and {len(missing) - _SHOW} more" if len(missing) > _SHOW else ""
        raise PatchNotFound(
            f"the selection names {len(missing)} {what}(s) not in release {release!r} "
            f"(or not of this task): {shown}{more}"
        )


def _multi_hot(patches: pa.Table, ids: pa.ChunkedArray, order: tuple[str, ...]) -> np.ndarray:
    """``(len(ids), 19)`` multi-hot labels of the given patch ids.

    Vectorised with pyarrow (no Python loop over every label of 549,488 pairs).

    Raises:
        LayoutError: A label is not one of the 19 classes.
    """
    out = np.zeros((len(ids), len(order)), dtype=np.float32)
    if len(ids) == 0:
        return out
    where = pc.index_in(ids, value_set=patches["patch_id"].combine_chunks())
    rows = where.to_numpy(zero_copy_only=False)
    found = ~np.isnan(rows.astype(np.float64)) if rows.dtype.kind == "f" else None
    picked_rows = np.arange(len(ids)) if found is None else np.flatnonzero(found)
    lists = patches["labels"].combine_chunks().take(pa.array(rows[picked_rows].astype(np.int64)))
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    names = pc.list_flatten(lists)
    classes = pc.index_in(names, value_set=pa.array(order, pa.string()))
    if classes.null_count:
        bad = sorted(set(pc.filter(names, pc.is_null(classes)).to_pylist()))
        raise LayoutError(f"labels {bad[:5]} are not BigEarthNet classes ({', '.join(order)})")
    target = np.repeat(picked_rows, lengths)
    out[target, classes.to_numpy(zero_copy_only=False).astype(np.int64)] = 1.0
    return out

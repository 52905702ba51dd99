"""The text side of the loader: which annotation rows an epoch holds, and how they are delivered.

BigEarthNet.txt rows belong to three text tasks (:data:`TASK_TYPES`): ``caption``
(``captioning`` rows), ``vqa`` (``binary`` and ``mcq``) and ``refexp`` (``bounding box``).

* **Tasks.** ``task="vqa"`` (one task) or ``tasks=["vqa", "refexp"]`` (the union of their rows)
  or ``tasks={"vqa": 0.5, "refexp": 0.3, "caption": 0.2}`` (a *mix*, :func:`mix_items`).
* **Filters.** ``categories=[...]`` and ``types=[...]`` keep the rows whose ``category`` /
  ``type`` is listed (:func:`filter_rows`; an unknown value is refused, listing the known ones).
* **Mix.** With weights ``w_t`` (normalised to shares ``p_t``) and ``c_t`` rows of task ``t``
  (after split, selection and filters), an epoch holds ``k_t = floor(n * p_t)`` rows of task
  ``t`` where ``n = min_t floor(c_t / p_t)``: the scarcest task relative to its weight sets the
  epoch, every row of it comes once, and the others contribute a seeded random subset without
  repeats. The rows of task ``t`` in epoch ``e`` are the first ``k_t`` of
  ``default_rng([seed, e, 2, t]).permutation(c_t)``, so the epoch length is the same every
  epoch (equal DDP lengths and exact resume hold) and a new epoch draws new rows. The chosen
  rows then go through the usual seeded block shuffle (also with ``shuffle=False``, which then
  only keeps them in storage order).
* **Groups.** ``group="row"`` delivers one sample per row; ``group="pair"`` one sample per pair
  with all its selected rows as ``conversation``, a list of :class:`lake.vlm.rows.TextRow` in
  :func:`lake.vlm.rows.conversation_order` (by ``ID``). Weights need rows, so a mix with
  ``group="pair"`` is refused.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake.errors import ConfigError
from lake.vlm.rows import TASK_TYPES, TEXT_TASKS, TextRow, conversation_order, rows_of

#: One sample per annotation row, or per pair (its rows as a conversation).
Group = Literal["row", "pair"]
GROUPS: Final = ("row", "pair")
#: The annotation columns a text item reads (what :func:`lake.vlm.rows.rows_of` takes).
ROW_COLUMNS: Final = (
    "ID",
    "input",
    "output",
    "type",
    "category",
    "options",
    "answer_index",
    "answer_bool",
    "box_x1",
    "box_y1",
    "box_x2",
    "box_y2",
)
#: The per-row keys each task adds to a sample (besides ``id``, ``input``, ``output``,
#: ``type``, ``category``).
TASK_KEYS: Final = {
    "caption": (),
    "vqa": ("options", "answer_index", "answer_bool"),
    "refexp": ("box", "box_pixels"),
}
#: The random stream of the mix (the order uses 0 and 1, augmentation 3).
MIX_STREAM: Final = 2
_BOX: Final = ("box_x1", "box_y1", "box_x2", "box_y2")


@dataclass(frozen=True)
class TaskMix:
    """The text tasks of a dataset and, for a mix, their weights.

    Attributes:
        tasks: The tasks, in the order given.
        weights: Their shares (summing to 1) for a mix, or None (all their rows every epoch).
    """

    tasks: tuple[str, ...]
    weights: tuple[float, ...] | None = None


def resolve_tasks(task: str, tasks: Any, group: str) -> TaskMix:
    """What ``task=`` / ``tasks=`` / ``group=`` ask for.

    Args:
        task: The ``task`` argument (``labels`` or one text task).
        tasks: None, a list of text tasks, or a mapping ``task -> weight`` (> 0).
        group: ``row`` or ``pair``.

    Raises:
        ConfigError: An unknown task or group, both ``task`` and ``tasks``, a weight that is
            not a positive number, ``labels`` among ``tasks``, or weights with ``group="pair"``.
    """
    if group not in GROUPS:
        raise ConfigError(f"group={group!r}: use 'row' (a sample per row) or 'pair'")
    if tasks is None:
        if group == "pair" and task == "labels":
            raise ConfigError(
                "group='pair' groups annotation rows: give a text task, e.g. task='vqa' or "
                "tasks=['vqa', 'refexp']"
            )
        return TaskMix((task,))
    if task != "labels":
        raise ConfigError(f"task={task!r} and tasks={tasks!r}: give one of them, not both")
    if isinstance(tasks, str):
        raise ConfigError(f"tasks={tasks!r}: give a list, e.g. [{tasks!r}], or task={tasks!r}")
    weights: list[float] | None = None
    if isinstance(tasks, Mapping):
        names = list(tasks)
        weights = []
        for name, w in tasks.items():
            if (
                isinstance(w, bool)
                or not isinstance(w, numbers.Real)
                or not 0 < float(w) < math.inf
            ):
                raise ConfigError(f"tasks={dict(tasks)!r}: the weight of {name!r} must be > 0")
            weights.append(float(w))
    else:
        names = list(tasks)
    unknown = [n for n in names if n not in TEXT_TASKS]
    if unknown or not names:
        raise ConfigError(
            f"tasks={tasks!r}: unknown {unknown}; use text tasks among {', '.join(TEXT_TASKS)}"
            if unknown
            else f"tasks={tasks!r}: give at least one of {', '.join(TEXT_TASKS)}"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"tasks={tasks!r}: a task is named twice")
    if weights is not None and group == "pair":
        raise ConfigError(
            f"tasks={dict(tasks)!r} with group='pair': a pair holds rows of every task, so "
            "weights cannot apply; give a list of tasks or use group='row'"
        )
    if weights is not None:
        total = sum(weights)
        return TaskMix(tuple(names), tuple(w / total for w in weights))
    return TaskMix(tuple(names))


def task_of_types(types: pa.ChunkedArray | pa.Array, tasks: Sequence[str]) -> np.ndarray:
    """The index in ``tasks`` of each row's task, from its ``type`` (-1: none of them)."""
    out = np.full(len(types), -1, dtype=np.int64)
    for k, task in enumerate(tasks):
        mask = pc.is_in(types, pa.array(TASK_TYPES[task])).to_numpy(zero_copy_only=False)
        out[mask] = k
    return out


def filter_rows(
    table: pa.Table,
    tasks: Sequence[str],
    categories: Sequence[str] | None,
    types: Sequence[str] | None,
) -> pa.Table:
    """Keep the rows of ``tasks`` whose category and type are listed (None: any).

    Raises:
        ConfigError: A category or type not among those of the tasks' rows (the message lists
            the known ones), or a bare string instead of a list.
    """
    allowed = [t for task in tasks for t in TASK_TYPES[task]]
    table = table.filter(pc.is_in(table["type"], pa.array(allowed)))
    for name, wanted, column, known in (
        ("types", types, "type", allowed),
        ("categories", categories, "category", None),
    ):
        if wanted is None:
            continue
        if isinstance(wanted, str):
            raise ConfigError(f"{name}={wanted!r}: give a list, e.g. [{wanted!r}]")
        values = list(wanted)
        if known is None:
            known = sorted(v for v in pc.unique(table[column]).to_pylist() if v is not None)
        bad = [v for v in values if v not in known]
        if bad or not values:
            raise ConfigError(
                f"{name}={values!r}: unknown {bad} for tasks {list(tasks)}; known: "
                f"{', '.join(map(repr, known))}"
                if bad
                else f"{name}=[]: give at least one value or None (no filter)"
            )
        table = table.filter(pc.is_in(table[column], pa.array(values)))
    return table


def mix_counts(counts: Sequence[int], weights: Sequence[float]) -> tuple[int, ...]:
    """Rows of each task per epoch of a mix (see the module docstring).

    Raises:
        ConfigError: A weighted task has no rows.
    """
    if any(c == 0 for c in counts):
        raise ConfigError(
            f"a weighted task has no rows after the split, selection and filters (rows per "
            f"task: {list(counts)}): drop it from tasks= or widen the selection"
        )
    n = min(math.floor(c / p + 1e-9) for c, p in zip(counts, weights, strict=True))
    return tuple(min(c, math.floor(n * p + 1e-9)) for c, p in zip(counts, weights, strict=True))


def mix_items(row_task: np.ndarray, mix: TaskMix, *, seed: int, epoch: int) -> np.ndarray:
    """The items (row numbers, ascending) of one epoch of a mix; all items without weights."""
    if mix.weights is None:
        return np.arange(len(row_task), dtype=np.int64)
    per_task = [np.flatnonzero(row_task == k) for k in range(len(mix.tasks))]
    take = mix_counts([len(p) for p in per_task], mix.weights)
    chosen = []
    for k, (rows, n) in enumerate(zip(per_task, take, strict=True)):
        rng = np.random.default_rng([seed, epoch, MIX_STREAM, k])
        chosen.append(rows[rng.permutation(len(rows))[:n]])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def mix_length(row_task: np.ndarray, mix: TaskMix) -> int:
    """Items per epoch (the same every epoch)."""
    if mix.weights is None:
        return len(row_task)
    return sum(mix_counts([int((row_task == k).sum()) for k in range(len(mix.tasks))], mix.weights))


def row_meta(table: pa.Table, tasks: Sequence[str], box_size: int) -> dict[str, Any]:
    """Per-row values of text items, column-wise (arrays for numbers, lists for the rest).

    ``id``, ``input``, ``output``, ``type``, ``category`` always; ``vqa`` adds ``options``
    (empty for non-mcq rows), ``answer_index`` (-1: not mcq) and ``answer_bool`` (1 yes, 0 no,
    -1 not yes/no); ``refexp`` adds ``box`` (x1, y1, x2, y2 in 0..1; NaN for rows without a
    box, which only a mix of tasks holds) and ``box_pixels`` (``box * box_size``).
    """
    out: dict[str, Any] = {"id": table["ID"].to_numpy().astype(np.int64)}
    for key in ("input", "output", "type", "category"):
        out[key] = table[key].to_pylist()
    keys = {k for task in tasks for k in TASK_KEYS[task]}
    if "options" in keys:
        out["options"] = [o or [] for o in table["options"].to_pylist()]
        out["answer_index"] = np.array(
            [-1 if v is None else v for v in table["answer_index"].to_pylist()], np.int64
        )
        out["answer_bool"] = np.array(
            [-1 if v is None else int(v) for v in table["answer_bool"].to_pylist()], np.int64
        )
    if "box" in keys:
        box = np.stack(
            [
                table[c].to_numpy(zero_copy_only=False).astype(np.float32)  # None -> NaN
                for c in _BOX
            ],
            axis=1,
        )
        out["box"] = box
        out["box_pixels"] = box * np.float32(box_size)
    return out


def pair_rows(rows: pa.Table, offsets: np.ndarray, items: np.ndarray) -> list[list[TextRow]]:
    """The conversation of each item (pair): its rows in :func:`conversation_order`."""
    out = []
    for i in items.tolist():
        lo, hi = int(offsets[i]), int(offsets[i + 1])
        out.append(conversation_order(rows_of(rows.slice(lo, hi - lo))))
    return out

"""Text rows of the ``annotations`` table as plain typed dicts, in a conversation's order.

A :class:`TextRow` is one BigEarthNet.txt row with the lake's parsed columns, in the shapes a
VLM pipeline wants: the mcq options as a list, the correct option's index, the binary answer as
an int and the box as a 0..1 :data:`~lake.vlm.boxes.Box` (the convention of ``docs/vlm.md``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal, TypedDict

import numpy as np
import pyarrow as pa

from lake.errors import ConfigError
from lake.vlm.boxes import Box

#: The text tasks: ``caption`` (captioning rows), ``vqa`` (binary and mcq), ``refexp`` (boxes).
TextTask = Literal["caption", "vqa", "refexp"]
TEXT_TASKS: Final = ("caption", "vqa", "refexp")
#: The BigEarthNet.txt ``type`` values behind each text task.
TASK_TYPES: Final = {
    "caption": ("captioning",),
    "vqa": ("binary", "mcq"),
    "refexp": ("bounding box",),
}
#: The columns :func:`rows_of` needs.
REQUIRED_COLUMNS: Final = ("ID", "type", "category", "input", "output")
#: The parsed columns it reads when present (absent ones take their "not this type" value).
OPTIONAL_COLUMNS: Final = (
    "options",
    "answer_index",
    "answer_bool",
    "box_x1",
    "box_y1",
    "box_x2",
    "box_y2",
)
#: The parsed box columns of the annotations, (x1, y1, x2, y2).
BOX_COLUMNS: Final = ("box_x1", "box_y1", "box_x2", "box_y2")


class TextRow(TypedDict):
    """One text row.

    Attributes:
        id: The row's ``ID``.
        type: ``binary``, ``mcq``, ``bounding box`` or ``captioning``.
        category: The fine task (``presence``, ``relative position``, ``reference``...).
        input: The instruction or question (mcq options are lines ``A. text`` of it).
        output: The reference answer, unchanged.
        options: The mcq options' texts in letter order (``[]`` for other types).
        answer_index: Index of the correct option in ``options``; -1 when not an mcq row (or
            its answer did not parse).
        answer_bool: 1 (yes), 0 (no); -1 when not a binary row.
        box: The ``bounding box`` answer ``(x1, y1, x2, y2)`` in 0..1; None for other rows.
    """

    id: int
    type: str
    category: str
    input: str
    output: str
    options: list[str]
    answer_index: int
    answer_bool: int
    box: Box | None


def _float32_as_decimal(v: float) -> float:
    """The shortest decimal that reads back as the float32 ``v`` (0.12f -> 0.12, not 0.1199..)."""
    return float(np.format_float_positional(np.float32(v), unique=True, trim="0"))


def rows_of(table: pa.Table) -> list[TextRow]:
    """The rows of an annotations table (or any table with its columns) as :class:`TextRow`.

    Args:
        table: Columns ``ID``, ``type``, ``category``, ``input``, ``output`` and, when present,
            ``options``, ``answer_index``, ``answer_bool``, ``box_x1`` .. ``box_y2`` as the
            lake's ``annotations`` table has them. Boxes are float32 there; they come back as
            the shortest decimal of the float32, i.e. what :func:`~lake.vlm.boxes.parse_box`
            gives for the ``output`` text.

    Returns:
        One :class:`TextRow` per table row, in table order.

    Raises:
        ConfigError: A required column is missing.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ConfigError(
            f"rows_of: the table lacks column(s) {missing} (it has {table.column_names}); "
            "read the annotations table with at least "
            f"{', '.join(REQUIRED_COLUMNS)}"
        )
    n = table.num_rows

    def column(name: str) -> list[object]:
        return table.column(name).to_pylist() if name in table.column_names else [None] * n

    ids, types, cats, inputs, outputs = (column(c) for c in REQUIRED_COLUMNS)
    options, index, answer = column("options"), column("answer_index"), column("answer_bool")
    corners = [column(c) for c in BOX_COLUMNS]
    rows: list[TextRow] = []
    for i in range(n):
        values = [c[i] for c in corners]
        box: Box | None = None
        if all(v is not None for v in values):
            x1, y1, x2, y2 = (_float32_as_decimal(float(v)) for v in values)  # type: ignore[arg-type]
            box = (x1, y1, x2, y2)
        opts = options[i]
        rows.append(
            TextRow(
                id=int(ids[i]),  # type: ignore[call-overload]
                type=str(types[i]),
                category=str(cats[i]),
                input=str(inputs[i]),
                output=str(outputs[i]),
                options=[str(o) for o in opts] if isinstance(opts, list) else [],
                answer_index=-1 if index[i] is None else int(index[i]),  # type: ignore[call-overload]
                answer_bool=-1 if answer[i] is None else int(bool(answer[i])),
                box=box,
            )
        )
    return rows


def conversation_order(rows: Iterable[TextRow]) -> list[TextRow]:
    """The rows of a pair in their stable conversation order: by ``id`` (ties keep their order).

    The dataset numbers a pair's rows consecutively in the order it wrote them (binary, mcq,
    boxes, caption in the synthetic source), so sorting by ``id`` gives the same conversation
    whatever order the rows were read in.
    """
    return sorted(rows, key=lambda r: r["id"])

"""TextRow: the rows of an annotations table, their parsed fields, their conversation order."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lake.errors import ConfigError
from lake.vlm.rows import TextRow, conversation_order, rows_of
from tests.lake.vlm.helpers import PairText


def _table() -> pa.Table:
    f32 = pa.float32()
    return pa.table(
        {
            "ID": pa.array([7, 3, 5], pa.int64()),
            "type": ["mcq", "binary", "bounding box"],
            "category": ["relative position", "presence", "reference"],
            "input": ["Where?\nA. top left\nB. centre", "Is there water?", "Box of <ref>x</ref>."],
            "output": ["B", "no", "[0.12 0.30, 0.55 0.80]"],
            "options": pa.array([["top left", "centre"], None, None], pa.list_(pa.string())),
            "answer_index": pa.array([1, None, None], pa.int8()),
            "answer_bool": pa.array([None, False, None], pa.bool_()),
            "box_x1": pa.array([None, None, 0.12], f32),
            "box_y1": pa.array([None, None, 0.30], f32),
            "box_x2": pa.array([None, None, 0.55], f32),
            "box_y2": pa.array([None, None, 0.80], f32),
            "split": ["train"] * 3,
        }
    )


def test_rows_of_gives_each_field_its_documented_value() -> None:
    rows = rows_of(_table())
    assert rows == [
        TextRow(
            id=7,
            type="mcq",
            category="relative position",
            input="Where?\nA. top left\nB. centre",
            output="B",
            options=["top left", "centre"],
            answer_index=1,
            answer_bool=-1,
            box=None,
        ),
        TextRow(
            id=3,
            type="binary",
            category="presence",
            input="Is there water?",
            output="no",
            options=[],
            answer_index=-1,
            answer_bool=0,
            box=None,
        ),
        TextRow(
            id=5,
            type="bounding box",
            category="reference",
            input="Box of <ref>x</ref>.",
            output="[0.12 0.30, 0.55 0.80]",
            options=[],
            answer_index=-1,
            answer_bool=-1,
            box=(0.12, 0.3, 0.55, 0.8),  # the decimals, not float32's 0.11999999731779099
        ),
    ]


def test_rows_of_needs_only_the_text_columns() -> None:
    table = _table().select(["ID", "type", "category", "input", "output"])
    rows = rows_of(table)
    assert [r["answer_index"] for r in rows] == [-1, -1, -1]
    assert [r["box"] for r in rows] == [None, None, None]
    assert rows_of(table.slice(0, 0)) == []


def test_rows_of_names_the_missing_columns() -> None:
    with pytest.raises(ConfigError, match=r"lacks column\(s\) \['type', 'output'\]"):
        rows_of(_table().drop_columns(["type", "output"]))


def test_conversation_order_is_by_id_and_stable() -> None:
    rows = rows_of(_table())
    assert [r["id"] for r in conversation_order(rows)] == [3, 5, 7]
    assert [r["id"] for r in conversation_order(reversed(rows))] == [3, 5, 7]
    twins = [dict(rows[0], output=str(i)) for i in range(3)]
    assert [r["output"] for r in conversation_order(twins)] == ["0", "1", "2"]  # type: ignore[arg-type]


def test_the_lake_rows_carry_their_parsed_answers(vlm_pairs: list[PairText]) -> None:
    seen = set()
    for pair in vlm_pairs:
        ids = [r["id"] for r in pair.rows]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        for row in pair.rows:
            seen.add(row["type"])
            if row["type"] == "mcq":
                assert row["options"][row["answer_index"]]
                assert "ABCD"[row["answer_index"]] == row["output"]
            else:
                assert row["answer_index"] == -1 and row["options"] == []
            if row["type"] == "binary":
                assert row["answer_bool"] == (row["output"] == "yes")
            else:
                assert row["answer_bool"] == -1
    assert seen == {"binary", "mcq", "bounding box", "captioning"}

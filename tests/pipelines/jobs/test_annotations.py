"""BigEarthNet.txt rows: parsed tolerantly, bad rows rejected by row ID and reason, streamed in
batches fast enough for 9.6 M rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake.bigearthnet import TEXT_COLUMNS
from lake.errors import SourceError
from pipelines.sources.annotations import PARSED_FIELDS, KnownPairs, read_annotations

PATCH = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"
S1 = "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_75_43"
KNOWN = {PATCH: S1}
MCQ = "Which class covers most of the image?\nA. Arable land\nB. Pastures\nC. Mixed forest"


def row(
    input: str = "Describe the image.",
    output: str = "Fields.",
    type: str = "captioning",
    **other: object,
) -> dict[str, object]:
    base = {
        "ID": 0,
        "s1_name": S1,
        "patch_id": PATCH,
        "input": input,
        "output": output,
        "type": type,
        "category": "presence",
        "split": "train",
        "latitude": 47.7,
        "longitude": 13.9,
        "country": "Austria",
        "season": "Summer",
        "climate_zone": "Dfb",
    }
    return base | other


def write(path: Path, rows: list[dict[str, object]], drop: tuple[str, ...] = ()) -> Path:
    table = pa.Table.from_pylist([r | {"ID": i} for i, r in enumerate(rows)])
    pq.write_table(table.drop_columns(list(drop)), path)
    return path


def read_all(path: Path, known=KNOWN, batch_size: int = 65_536) -> tuple[pa.Table, list]:
    batches, rejected = [], []
    for batch, bad in read_annotations(path, known, batch_size=batch_size):
        batches.append(batch)
        rejected.extend(bad)
    return pa.Table.from_batches(batches), rejected


GOOD = [
    row("Give the bounding box of <ref>the lake</ref>.", "[0.1 0.2, 0.35 0.5]", "bounding box"),
    row("Box of <ref>the forest</ref>?", "[0.1, 0.2, 0.35, 0.5]", "bounding box"),
    row("Box?", "[(0.1, 0.2), (0.35, 0.5)]", "bounding box"),
    row("Box?", "(0.1,0.2),(0.35,0.5)", "bounding box"),
    row("Box?", " [0 0, 1 1] ", "bounding box"),
    row("Is <point>(0.25, 0.75)</point> water?", "Yes", "binary"),
    row("Is there any <ref>urban fabric</ref> next to <ref>water</ref>?", "no.", "binary"),
    row(MCQ, "B", "mcq"),
    row(MCQ, "(C)", "mcq"),
    row(MCQ.replace("A.", "A)").replace("B.", "B)").replace("C.", "C)"), "A) Arable land", "mcq"),
    row("Which? (A) forest (B) water (C) urban", "b.", "mcq"),
    row("Which? A. forest B. water", "Water", "mcq"),
    row("Describe <point>(0.1,0.9)</point> and <point>(1, 0)</point>.", "Fields.", "captioning"),
]


def test_good_rows_are_kept_with_official_columns_unchanged(tmp_path):
    path = write(tmp_path / "t.parquet", GOOD)
    table, rejected = read_all(path)
    assert rejected == []
    original = pq.read_table(path)
    assert table.select(list(TEXT_COLUMNS)).equals(original.select(list(TEXT_COLUMNS)))
    assert table.schema.names == [*TEXT_COLUMNS, *(f.name for f in PARSED_FIELDS)]
    got = table.to_pylist()
    for r in got[:4]:
        box = [r["box_x1"], r["box_y1"], r["box_x2"], r["box_y2"]]
        assert box == pytest.approx([0.1, 0.2, 0.35, 0.5])
    assert [got[4][k] for k in ("box_x1", "box_y1", "box_x2", "box_y2")] == [0, 0, 1, 1]
    assert [r["answer_bool"] for r in got] == [None] * 5 + [True, False] + [None] * 6
    assert [r["answer_index"] for r in got] == [None] * 7 + [1, 2, 0, 1, 1, None]
    assert got[7]["options"] == ["Arable land", "Pastures", "Mixed forest"]
    assert got[10]["options"] == ["forest", "water", "urban"]
    assert all(r["options"] is None for i, r in enumerate(got) if i not in range(7, 12))
    assert all(r["box_x1"] is None for r in got[5:])
    assert got[0]["refs"] == ["the lake"] and got[6]["refs"] == ["urban fabric", "water"]
    assert got[5]["points"] == [{"x": 0.25, "y": 0.75}]
    assert got[12]["points"] == [
        {"x": pytest.approx(0.1), "y": pytest.approx(0.9)},
        {"x": 1.0, "y": 0.0},
    ]
    assert got[7]["refs"] == [] and got[7]["points"] == []


BAD = [
    (row(patch_id=PATCH[:-2] + "99"), "unknown_patch"),
    (row(s1_name=S1[:-2] + "44"), "s1_mismatch"),
    (row("Box?", "[0.1 0.2, 1.3 0.5]", "bounding box"), "box_out_of_range"),
    (row("Box?", "[-0.1 0.2, 0.3 0.5]", "bounding box"), "box_out_of_range"),
    (row("Box?", "[0.5 0.2, 0.3 0.5]", "bounding box"), "box_out_of_range"),
    (row("Box?", "top left corner", "bounding box"), "malformed_box"),
    (row("Box?", "[0.1 0.2 0.3]", "bounding box"), "malformed_box"),
    (row(type="vqa"), "bad_type"),
    (row(type=None), "bad_type"),
    (row(split="val"), "bad_split"),
    (row(output="  "), "empty_text"),
    (row(input=None), "empty_text"),
    (row(latitude=91.0), "bad_coordinates"),
    (row(longitude=None), "bad_coordinates"),
    (row("Is it?", "maybe", "binary"), "bad_answer"),
    (row(MCQ, "D", "mcq"), "bad_answer"),
    (row(MCQ, "Urban fabric", "mcq"), "bad_answer"),
    (row("Which one is it?", "A", "mcq"), "malformed_mcq"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD, ids=[r for _, r in BAD])
def test_bad_row_is_rejected_by_id_and_reason(tmp_path, bad, reason):
    path = write(tmp_path / "t.parquet", [*GOOD, bad])
    table, rejected = read_all(path)
    assert table.num_rows == len(GOOD)
    assert [(r.subject, r.reason) for r in rejected] == [(f"{path}: row ID {len(GOOD)}", reason)]
    assert rejected[0].patch_id == bad["patch_id"]
    assert rejected[0].detail


def test_known_patch_ids_without_s1_names(tmp_path):
    path = write(tmp_path / "t.parquet", [row(s1_name="S1A_other"), row(patch_id="nope")])
    _, rejected = read_all(path, known={PATCH})
    assert [r.reason for r in rejected] == ["unknown_patch"]


def test_missing_column_is_a_source_error(tmp_path):
    path = write(tmp_path / "t.parquet", GOOD, drop=("split",))
    with pytest.raises(SourceError, match=r"t\.parquet: missing BigEarthNet.txt column\(s\) split"):
        read_all(path)


def test_wrong_column_type_is_a_source_error(tmp_path):
    path = write(tmp_path / "t.parquet", [row(latitude="47.7")])
    with pytest.raises(SourceError, match="latitude"):
        read_all(path)


def test_unreadable_file_is_a_source_error(tmp_path):
    (tmp_path / "t.parquet").write_bytes(b"not parquet")
    with pytest.raises(SourceError, match="not a readable parquet"):
        read_all(tmp_path / "t.parquet")


def test_dictionary_columns_and_extra_columns(tmp_path):
    table = pa.Table.from_pylist([r | {"ID": i, "extra": 1} for i, r in enumerate(GOOD)])
    for name in ("type", "split", "patch_id", "output"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, table[name].dictionary_encode())
    pq.write_table(table, tmp_path / "t.parquet")
    got, rejected = read_all(tmp_path / "t.parquet")
    assert rejected == [] and got.num_rows == len(GOOD)
    assert "extra" not in got.schema.names
    assert pa.types.is_dictionary(got.schema.field("type").type)


def synthetic(n: int) -> pa.Table:
    """``n`` rows cycling through the good and bad examples."""
    rows = GOOD * 5 + [b for b, _ in BAD]
    template = pa.Table.from_pylist([r | {"ID": 0} for r in rows])
    index = np.arange(n) % len(rows)
    table = template.take(pa.array(index))
    return table.set_column(0, "ID", pa.array(np.arange(n, dtype=np.int64)))


def test_streams_in_batches(tmp_path):
    pq.write_table(synthetic(5_000), tmp_path / "t.parquet", row_group_size=2_000)
    batches = list(read_annotations(tmp_path / "t.parquet", KNOWN, batch_size=1_000))
    assert len(batches) == 5
    kept = sum(b.num_rows for b, _ in batches)
    rejected = [r for _, bad in batches for r in bad]
    assert kept + len(rejected) == 5_000
    assert len(rejected) == pytest.approx(
        5_000 * len(BAD) / (5 * len(GOOD) + len(BAD)), abs=len(BAD)
    )


@pytest.mark.slow
def test_a_large_file_streams_through(tmp_path):
    """200,000 rows pass in batches (the rate is measured in benchmarks/, not asserted here)."""
    n = 200_000
    pq.write_table(synthetic(n), tmp_path / "t.parquet")
    known = KnownPairs.of({PATCH: S1} | {f"{PATCH[:-5]}{i:02d}_{i:02d}": S1 for i in range(99)})
    batches = list(read_annotations(tmp_path / "t.parquet", known))
    assert len(batches) > 1
    assert sum(b.num_rows + len(bad) for b, bad in batches) == n


@pytest.mark.parametrize("batch_size", [3, 65_536], ids=["across-batches", "one-batch"])
@pytest.mark.parametrize("id_type", [pa.int64(), pa.string()], ids=["int", "string"])
def test_duplicate_ids_keep_the_first_row_and_quarantine_the_rest(tmp_path, batch_size, id_type):
    rows = [GOOD[0], GOOD[5], GOOD[7], GOOD[5], GOOD[12], GOOD[0], GOOD[12], GOOD[1]]
    ids = [10, 11, 12, 11, 13, 10, 14, 11]  # 11 three times, 10 twice
    table = pa.Table.from_pylist([r | {"ID": i} for r, i in zip(rows, ids, strict=True)])
    table = table.set_column(0, "ID", pa.array(ids).cast(id_type))
    pq.write_table(table, tmp_path / "t.parquet")
    got, rejected = read_all(tmp_path / "t.parquet", batch_size=batch_size)
    as_str = [str(i) for i in got["ID"].to_pylist()]
    assert as_str == ["10", "11", "12", "13", "14"]  # the first row of each ID, in file order
    assert got.select(list(TEXT_COLUMNS)).equals(table.take([0, 1, 2, 4, 6]))
    assert [(r.subject, r.reason) for r in rejected] == [
        (f"{tmp_path / 't.parquet'}: row ID {i}", "duplicate_id") for i in (11, 10, 11)
    ]
    assert "file row 1, which keeps it" in rejected[0].detail
    assert "this row (file row 3)" in rejected[0].detail
    assert "file row 0, which keeps it" in rejected[1].detail
    assert "this row (file row 7)" in rejected[2].detail


def test_a_duplicate_of_a_bad_row_is_still_a_duplicate(tmp_path):
    """The first row of an ID owns it even when that row is rejected for another reason."""
    path = write(tmp_path / "t.parquet", [row(type="vqa"), row()])
    table = pq.read_table(path).set_column(0, "ID", pa.array([5, 5]))
    pq.write_table(table, path)
    got, rejected = read_all(path)
    assert got.num_rows == 0
    assert [r.reason for r in rejected] == ["bad_type", "duplicate_id"]

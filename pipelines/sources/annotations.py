"""BigEarthNet.txt rows, checked and parsed batch by batch (the 9.6 M rows are never held whole).

Every check and parser is a vectorised :mod:`pyarrow.compute` call (RE2 regular expressions) over a
whole batch; Python only touches rejected rows. Answer formats are not confirmed by the paper, so
parsers are tolerant and the official columns are kept unchanged next to the parsed ones:

* ``bounding box``: ``[x1 y1, x2 y2]`` with commas, spaces, brackets or parentheses in any of the
  usual variants (``[x1, y1, x2, y2]``, ``[(x1, y1), (x2, y2)]``...), all in 0..1, x1<=x2, y1<=y2;
* ``binary``: ``yes`` / ``no`` (any case, optional full stop);
* ``mcq``: options are lines of the input such as ``A. text``, ``A) text``, ``(A) text`` (inline
  options are split first); the answer is an option letter (``A``, ``A.``, ``(A)``, ``A) text``) or
  the text of one option;
* ``<ref>..</ref>`` and ``<point>(x, y)</point>`` markup of the input is extracted.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.bigearthnet import TEXT_COLUMNS, TEXT_SPLITS, TEXT_TYPES
from lake.config import StoreSpec
from lake.errors import SourceError
from pipelines.sources.base import Rejected

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
#: A box ``[x1 y1, x2 y2]`` and its variants.
BOX_PATTERN = (
    rf"^\s*[\[\(]*\s*(?P<x1>{_NUM})\s*[,\s]\s*(?P<y1>{_NUM})[\s,;\(\)\[\]]+"
    rf"(?P<x2>{_NUM})\s*[,\s]\s*(?P<y2>{_NUM})\s*[\)\]]*\s*$"
)
BOX_FIELDS = ("x1", "y1", "x2", "y2")
_YES_NO = r"^\s*(?:yes|no)\s*\.?\s*$"
_OPTION_LINE = r"^\s*\(?(?P<letter>[A-Z])[\.\):]\s*(?P<text>.*?)\s*$"
_HAS_OPTION_LINES = r"(?m)^\s*\(?[A-Z][\.\):]\s"
_INLINE_OPTION = r"\s+(\(?[A-Z][\.\):]\s)"
_ANSWER_LETTER = r"(?s)^\s*\(?(?P<letter>[A-Za-z])\s*(?:[\.\):].*)?$"
_REF = r"(?s)^(?P<ref>.*?)</ref>"
_POINT = rf"^\s*\(?\s*(?P<x>{_NUM})\s*,\s*(?P<y>{_NUM})\s*\)?\s*</point>"
_STRING_COLUMNS = tuple(c for c in TEXT_COLUMNS if c not in ("ID", "latitude", "longitude"))

POINT_TYPE = pa.struct([("x", pa.float32()), ("y", pa.float32())])
#: The parsed columns appended to the official ones, in order.
PARSED_FIELDS: tuple[pa.Field, ...] = (
    pa.field("box_x1", pa.float32()),
    pa.field("box_y1", pa.float32()),
    pa.field("box_x2", pa.float32()),
    pa.field("box_y2", pa.float32()),
    pa.field("options", pa.list_(pa.string())),
    pa.field("answer_index", pa.int8()),
    pa.field("answer_bool", pa.bool_()),
    pa.field("refs", pa.list_(pa.string())),
    pa.field("points", pa.list_(POINT_TYPE)),
)

#: Rejection reasons, in the order they are checked (a row gets the first that applies).
REASONS = (
    "duplicate_id",
    "bad_type",
    "bad_split",
    "unknown_patch",
    "s1_mismatch",
    "empty_text",
    "bad_coordinates",
    "malformed_box",
    "box_out_of_range",
    "bad_answer",
    "malformed_mcq",
    "bad_answer",
)


@dataclass
class DuplicateIds:
    """The IDs a file holds more than once, and the file row that keeps each of them.

    The first row (in file order) with an ID keeps it; every later row with that ID is rejected as
    ``duplicate_id``, whatever else is wrong with either row.

    Attributes:
        ids: The ID values that occur more than once (usually none).
        kept: ID -> the 0-based file row that keeps it, filled as batches go by.
    """

    ids: pa.Array
    kept: dict[object, int]

    @classmethod
    def of(cls, column: pa.ChunkedArray | pa.Array) -> DuplicateIds:
        """From the whole ``ID`` column of a file.

        Integer IDs (the official type) are sorted with NumPy: 9.6 M int64 IDs take 77 MB and
        1-2 s; other types go through an Arrow hash count.
        """
        values = pc.drop_null(_plain_column(column))
        if pa.types.is_integer(values.type):
            ordered = np.sort(values.to_numpy(zero_copy_only=False))
            repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
            return cls(pa.array(repeated, values.type), {})
        counts = pc.value_counts(values)
        return cls(pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1)), {})

    def mark(self, ids: pa.Array, offset: int) -> tuple[np.ndarray, dict[int, int]]:
        """Rows of a batch that repeat an ID seen in an earlier row.

        Args:
            ids: The batch's ``ID`` column.
            offset: The file row of the batch's first row.

        Returns:
            The mask of repeated rows, and for each of them (batch row) the file row kept.
        """
        mask = np.zeros(len(ids), bool)
        kept_rows: dict[int, int] = {}
        if not len(self.ids):
            return mask, kept_rows
        candidates = np.flatnonzero(_np(pc.is_in(_plain(ids), value_set=self.ids)))
        values = ids.take(pa.array(candidates)).to_pylist()
        for i, value in zip(candidates.tolist(), values, strict=True):
            first = self.kept.setdefault(value, offset + i)
            if first != offset + i:
                mask[i] = True
                kept_rows[i] = first
        return mask, kept_rows


def _plain_column(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A whole column as one plain (not dictionary-encoded) array."""
    if isinstance(column, pa.ChunkedArray):
        column = (
            pa.concat_arrays([_plain(c) for c in column.chunks])
            if column.num_chunks
            else (pa.array([], _value_type(column.type)))
        )
    return _plain(column)


@dataclass(frozen=True)
class KnownPairs:
    """The pairs annotations may refer to, as arrays for vectorised lookups.

    Attributes:
        patch_ids: Known patch ids.
        s1_names: The S1 name of each patch id (same order), or None to skip that check.
    """

    patch_ids: pa.Array
    s1_names: pa.Array | None

    @classmethod
    def of(cls, known: Mapping[str, str] | Collection[str]) -> KnownPairs:
        """From ``patch_id -> s1_name`` (checks both) or a collection of patch ids."""
        ids = list(known)
        s1 = pa.array([known[i] for i in ids], pa.string()) if isinstance(known, Mapping) else None
        return cls(pa.array(ids, pa.string()), s1)


def read_annotations(
    path: str | os.PathLike[str],
    known: Mapping[str, str] | Collection[str] | KnownPairs,
    batch_size: int = 65_536,
    *,
    store: StoreSpec | None = None,
) -> Iterator[tuple[pa.RecordBatch, list[Rejected]]]:
    """Stream BigEarthNet.txt rows in checked, parsed batches.

    Args:
        path: The BigEarthNet.txt parquet.
        known: The pairs of the image side: ``patch_id -> s1_name`` (rows must name a known patch
            and its S1 name), or just the patch ids.
        batch_size: Rows per batch read from the file.
        store: For a file on object storage (``path`` is then a URL): the S3 options of its
            source (``source.store``).

    Yields:
        ``(valid, rejected)`` per batch: the valid rows with the official columns unchanged plus
        :data:`PARSED_FIELDS`, and a :class:`Rejected` per invalid row (subject
        ``"<path>: row ID <ID>"``). Of rows sharing an ID, the first in the file is the one
        checked and kept; the others are rejected as ``duplicate_id`` (the ID column is read
        once, whole, before the batches).

    Raises:
        SourceError: The file is missing or unreadable, lacks an official column, or a column has
            the wrong type.
    """
    name = os.fspath(path)
    try:
        if "://" in name and store is not None:
            from pipelines.sources.location import SourceFiles

            folder, base = name.rsplit("/", 1)
            file = pq.ParquetFile(SourceFiles.of(folder, store).open(base))
        else:
            file = pq.ParquetFile(name)
    except (OSError, pa.ArrowInvalid) as exc:
        raise SourceError(f"{name}: not a readable parquet file ({exc})") from None
    check_schema(file.schema_arrow, name)
    pairs = known if isinstance(known, KnownPairs) else KnownPairs.of(known)
    duplicates = DuplicateIds.of(file.read(columns=["ID"]).column("ID"))
    offset = 0
    for batch in file.iter_batches(batch_size=batch_size, columns=list(TEXT_COLUMNS)):
        yield check_batch(batch, pairs, name, duplicates, offset)
        offset += batch.num_rows


def check_schema(schema: pa.Schema, name: str) -> None:
    """Check that the official columns exist with usable types.

    Raises:
        SourceError: A column is missing or has the wrong type, naming the file.
    """
    missing = [c for c in TEXT_COLUMNS if c not in schema.names]
    if missing:
        raise SourceError(f"{name}: missing BigEarthNet.txt column(s) {', '.join(missing)}")
    wrong = []
    for column in TEXT_COLUMNS:
        kind = _value_type(schema.field(column).type)
        ok = (
            pa.types.is_floating(kind) or pa.types.is_integer(kind)
            if column in ("latitude", "longitude")
            else column == "ID" or pa.types.is_string(kind) or pa.types.is_large_string(kind)
        )
        if not ok:
            wrong.append(f"{column} ({schema.field(column).type})")
    if wrong:
        raise SourceError(
            f"{name}: BigEarthNet.txt column(s) of the wrong type: {', '.join(wrong)}"
        )


def _value_type(kind: pa.DataType) -> pa.DataType:
    return kind.value_type if pa.types.is_dictionary(kind) else kind


def _plain(array: pa.Array) -> pa.Array:
    """A dictionary-encoded column as plain values (string kernels need them)."""
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def _np(mask: pa.Array) -> np.ndarray:
    """A boolean array as NumPy, nulls as False."""
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def _only(mask: np.ndarray, values: pa.Array) -> pa.Array:
    """``values`` where ``mask``, null elsewhere."""
    return pc.if_else(pa.array(mask), values, pa.scalar(None, values.type))


def check_batch(
    batch: pa.RecordBatch,
    known: KnownPairs,
    name: str,
    duplicates: DuplicateIds | None = None,
    offset: int = 0,
) -> tuple[pa.RecordBatch, list[Rejected]]:
    """Check and parse one batch of BigEarthNet.txt rows.

    Args:
        batch: The rows.
        known: The pairs rows may refer to.
        name: The file, for the rejections' subjects.
        duplicates: The file's repeated IDs (None: IDs are not checked).
        offset: The file row of the batch's first row.

    Returns:
        The valid rows (official columns unchanged plus :data:`PARSED_FIELDS`) and the rejections.
    """
    official = batch.select(list(TEXT_COLUMNS))
    repeated, kept_rows = (
        duplicates.mark(official.column("ID"), offset)
        if duplicates is not None
        else (np.zeros(len(batch), bool), {})
    )
    col = {c: _plain(official.column(c)) for c in _STRING_COLUMNS}
    kind = col["type"]
    is_box, is_binary, is_mcq = (_np(pc.equal(kind, t)) for t in ("bounding box", "binary", "mcq"))
    box = parse_boxes(col["output"], is_box)
    answer_bool, bad_binary = parse_binary(col["output"], is_binary)
    mcq = parse_mcq(col["input"], col["output"], is_mcq)
    failed = [
        repeated,
        ~_np(pc.is_in(kind, value_set=pa.array(TEXT_TYPES))),
        ~_np(pc.is_in(col["split"], value_set=pa.array(TEXT_SPLITS))),
        *_pair_checks(col["patch_id"], col["s1_name"], known),
        ~(_np(pc.match_substring_regex(col["input"], r"\S")))
        | ~(_np(pc.match_substring_regex(col["output"], r"\S"))),
        _bad_coordinates(official.column("latitude"), official.column("longitude")),
        box.malformed,
        box.out_of_range,
        bad_binary,
        mcq.malformed,
        mcq.bad_answer,
    ]
    codes = np.zeros(len(batch), np.int8)
    for i, mask in enumerate(failed, 1):
        codes[(codes == 0) & mask] = i
    parsed = [
        *(pc.cast(_only(box.valid, v), pa.float32()) for v in box.values),
        mcq.options,
        mcq.answer_index,
        answer_bool,
        parse_refs(col["input"]),
        parse_points(col["input"]),
    ]
    schema = pa.schema([*official.schema, *PARSED_FIELDS])
    out = pa.RecordBatch.from_arrays([*official.columns, *parsed], schema=schema)
    return out.filter(pa.array(codes == 0)), _rejections(official, codes, name, offset, kept_rows)


def _pair_checks(patch_id: pa.Array, s1_name: pa.Array, known: KnownPairs) -> list[np.ndarray]:
    """``[unknown patch, S1 name differs from the metadata]`` masks."""
    index = pc.index_in(patch_id, value_set=known.patch_ids)
    unknown = ~_np(index.is_valid())
    if known.s1_names is None:
        return [unknown, np.zeros(len(patch_id), bool)]
    expected = pc.take(known.s1_names, index)
    return [unknown, ~unknown & ~_np(pc.equal(s1_name, expected))]


def _bad_coordinates(latitude: pa.Array, longitude: pa.Array) -> np.ndarray:
    lat_ok = pc.and_(pc.greater_equal(latitude, -90), pc.less_equal(latitude, 90))
    lon_ok = pc.and_(pc.greater_equal(longitude, -180), pc.less_equal(longitude, 180))
    return ~(_np(lat_ok) & _np(lon_ok))


@dataclass(frozen=True)
class Boxes:
    """Parsed boxes of a batch.

    Attributes:
        values: x1, y1, x2, y2 (float64, null where not parsed).
        valid: Rows holding a well-formed box inside 0..1.
        malformed: Box rows whose output is not a box.
        out_of_range: Box rows whose box leaves 0..1 or has x1 > x2 or y1 > y2.
    """

    values: tuple[pa.Array, pa.Array, pa.Array, pa.Array]
    valid: np.ndarray
    malformed: np.ndarray
    out_of_range: np.ndarray


def parse_boxes(output: pa.Array, is_box: np.ndarray) -> Boxes:
    """Parse ``[x1 y1, x2 y2]`` answers of the box rows (other rows give nulls)."""
    match = pc.extract_regex(_only(is_box, output), BOX_PATTERN)
    parsed = _np(match.is_valid())
    x1, y1, x2, y2 = (pc.cast(pc.struct_field(match, f), pa.float64()) for f in BOX_FIELDS)
    inside = [_np(pc.and_(pc.greater_equal(v, 0), pc.less_equal(v, 1))) for v in (x1, y1, x2, y2)]
    ordered = _np(pc.less_equal(x1, x2)) & _np(pc.less_equal(y1, y2))
    ok = np.logical_and.reduce(inside) & ordered
    return Boxes(
        values=(x1, y1, x2, y2),
        valid=parsed & ok,
        malformed=is_box & ~parsed,
        out_of_range=is_box & parsed & ~ok,
    )


def parse_binary(output: pa.Array, is_binary: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """``(answer_bool, bad)``: yes/no answers of the binary rows (null elsewhere)."""
    ok = _np(pc.match_substring_regex(output, _YES_NO, ignore_case=True))
    yes = pc.match_substring_regex(output, r"^\s*y", ignore_case=True)
    return _only(is_binary & ok, yes), is_binary & ~ok


@dataclass(frozen=True)
class Choices:
    """Parsed multiple-choice rows of a batch.

    Attributes:
        options: Option texts (without their letters), null unless an mcq row.
        answer_index: Index of the answer in ``options`` (int8), null unless found.
        malformed: Mcq rows with fewer than two options in the input.
        bad_answer: Mcq rows whose answer is none of the options.
    """

    options: pa.Array
    answer_index: pa.Array
    malformed: np.ndarray
    bad_answer: np.ndarray


def parse_mcq(text: pa.Array, output: pa.Array, is_mcq: np.ndarray) -> Choices:
    """Parse the options of the mcq inputs and find the answer among them."""
    n = len(text)
    masked = _only(is_mcq, text)
    line_style = pc.match_substring_regex(masked, _HAS_OPTION_LINES)
    inline = pc.replace_substring_regex(masked, _INLINE_OPTION, "\n" + r"\1")
    lines = pc.split_pattern(pc.if_else(line_style, masked, inline), "\n")
    match = pc.extract_regex(pc.list_flatten(lines), _OPTION_LINE)
    keep = match.is_valid()
    parents = pc.filter(pc.list_parent_indices(lines), keep).to_numpy(zero_copy_only=False)
    match = pc.filter(match, keep)
    letters, texts = pc.struct_field(match, "letter"), pc.struct_field(match, "text")
    counts = np.bincount(parents, minlength=n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    answer_letter = pc.utf8_upper(
        pc.struct_field(pc.extract_regex(output, _ANSWER_LETTER), "letter")
    )
    by_letter = _np(pc.equal(letters, pc.take(answer_letter, pa.array(parents))))
    wanted = pc.take(_normalise(output), pa.array(parents))
    by_text = _np(pc.equal(_normalise(texts), wanted)) & ~_np(
        pc.take(answer_letter.is_valid(), pa.array(parents))
    )
    index = np.full(n, -1, np.int64)
    hits = np.flatnonzero(by_letter | by_text)[::-1]  # reversed: the first hit of a row wins
    index[parents[hits]] = hits - offsets[parents[hits]]
    enough = counts >= 2
    found = is_mcq & enough & (index >= 0)
    options = pa.ListArray.from_arrays(pa.array(offsets), texts, mask=pa.array(~is_mcq))
    return Choices(
        options=options,
        answer_index=pa.array(np.clip(index, -1, 127).astype(np.int8), mask=~found),
        malformed=is_mcq & ~enough,
        bad_answer=is_mcq & enough & (index < 0),
    )


def _normalise(values: pa.Array) -> pa.Array:
    """Lower case, no surrounding blanks or final full stop (for matching answers to options)."""
    return pc.utf8_lower(pc.utf8_rtrim(pc.utf8_trim_whitespace(values), characters="."))


def _regroup(values: pa.Array, parents: np.ndarray, n: int) -> pa.Array:
    """A list array of ``n`` rows from flat values and their (sorted) row indices."""
    offsets = np.concatenate([[0], np.cumsum(np.bincount(parents, minlength=n))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _markup(text: pa.Array, tag: str, pattern: str) -> tuple[pa.Array, np.ndarray]:
    """Every ``<tag>...`` piece of each row matched by ``pattern``, and its row index."""
    tagged = _only(_np(pc.match_substring(text, f"<{tag}>")), text)
    pieces = pc.list_slice(pc.split_pattern(tagged, f"<{tag}>"), 1)
    match = pc.extract_regex(pc.list_flatten(pieces), pattern)
    keep = match.is_valid()
    parents = pc.filter(pc.list_parent_indices(pieces), keep).to_numpy(zero_copy_only=False)
    return pc.filter(match, keep), parents


def parse_refs(text: pa.Array) -> pa.Array:
    """The texts inside ``<ref>..</ref>`` of each row (empty lists when none)."""
    match, parents = _markup(text, "ref", _REF)
    return _regroup(pc.struct_field(match, "ref"), parents, len(text))


def parse_points(text: pa.Array) -> pa.Array:
    """The ``<point>(x, y)</point>`` coordinates of each row (empty lists when none)."""
    match, parents = _markup(text, "point", _POINT)
    xy = [pc.cast(pc.struct_field(match, f), pa.float32()) for f in ("x", "y")]
    points = pa.StructArray.from_arrays(xy, fields=list(POINT_TYPE))
    return _regroup(points, parents, len(text))


def _rejections(
    batch: pa.RecordBatch,
    codes: np.ndarray,
    name: str,
    offset: int = 0,
    kept_rows: Mapping[int, int] | None = None,
) -> list[Rejected]:
    """The rejections of a batch whose first row is file row ``offset``.

    ``kept_rows`` maps each batch row that repeats an ID to the file row that keeps the ID.
    """
    bad = np.flatnonzero(codes)
    if not len(bad):
        return []
    rows = batch.take(pa.array(bad)).to_pylist()
    kept_rows = kept_rows or {}
    out = []
    for i, row, code in zip(bad.tolist(), rows, codes[bad], strict=True):
        reason = REASONS[code - 1]
        if reason == "duplicate_id":
            detail = (
                f"ID {row['ID']} is also the ID of file row {kept_rows[i]}, which keeps "
                f"it (IDs are unique in a release); this row (file row {offset + i}) is "
                "quarantined"
            )
        else:
            detail = _detail(reason, code, row)
        out.append(Rejected(f"{name}: row ID {row['ID']}", reason, detail, row["patch_id"]))
    return out


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _detail(reason: str, code: int, row: dict[str, object]) -> str:
    """The explanation of one rejected row."""
    output = _short(row["output"])
    details = {
        "bad_type": f"type {_short(row['type'])} is not one of {', '.join(TEXT_TYPES)}",
        "bad_split": f"split {_short(row['split'])} is not one of {', '.join(TEXT_SPLITS)}",
        "unknown_patch": f"patch_id {_short(row['patch_id'])} is in no metadata row",
        "s1_mismatch": f"s1_name {_short(row['s1_name'])} is not the metadata's S1 name",
        "empty_text": "input or output is empty",
        "bad_coordinates": f"latitude/longitude ({row['latitude']}, {row['longitude']}) "
        "out of range",
        "malformed_box": f"output {output} is not a box [x1 y1, x2 y2]",
        "box_out_of_range": f"box {output} is not inside 0..1 with x1<=x2 and y1<=y2",
        "malformed_mcq": "fewer than two options (A. ..., B. ...) found in the input",
    }
    if reason == "bad_answer":
        if code == REASONS.index("bad_answer") + 1:
            return f"binary answer {output} is not yes or no"
        return f"answer {output} is none of the options in the input"
    return details[reason]

"""Asset fields that follow from an Item's own properties, computed column by column.

Every asset's ``href`` (from ``sample_index``), ``proj:transform`` (the Item's, at the asset's
resolution), the S1 asset's ``datetime`` and ``platform``, and the file fields (from ``shard``
and the release's per-shard sizes and checksums) are functions of the Item's top-level columns.
The builder computes them here, and records the rules in the field metadata of ``assets``
(``bigearthnet-lake:derived``), so a search can compute them for the rows it returns instead of
decoding the nested ``assets`` columns: DuckDB reads a nested leaf about five times slower than
a top-level column, and for scattered rows (an ids lookup) it is most of the cost. The file keeps
every field, so other readers see complete Items; the tests check that computed equals stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Field metadata key of ``assets`` holding the rules (JSON).
DERIVED_KEY = b"bigearthnet-lake:derived"
#: The top-level columns the rules read.
SOURCES = (
    "sample_index",
    "proj:transform",
    "datetime",
    "start_datetime",
    "end_datetime",
    "s1_platform",
    "shard",
)
_UTC_SECONDS = pa.timestamp("s", tz="UTC")


def _column(columns: Mapping[str, Any], name: str) -> pa.Array:
    value = columns[name]
    return value.combine_chunks() if isinstance(value, pa.ChunkedArray) else value


def iso_seconds(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """UTC timestamps as RFC 3339 strings to the second (``2017-06-13T10:10:31Z``)."""
    out = pc.strftime(ts.cast(_UTC_SECONDS), format="%Y-%m-%dT%H:%M:%SZ")
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def scaled_transform(transform: pa.Array, resolution: float) -> pa.Array:
    """An Item's 10 m ``proj:transform`` at another pixel size (same upper-left corner)."""
    n = len(transform)
    tf = np.asarray(transform.flatten().to_numpy(zero_copy_only=False), np.float64).reshape(n, 6)
    out = np.column_stack(
        [np.full(n, resolution), tf[:, 1], tf[:, 2], tf[:, 3], np.full(n, -resolution), tf[:, 5]]
    )
    offsets = pa.array(np.arange(0, n * 6 + 1, 6, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(out.ravel()))


@dataclass(frozen=True)
class Rules:
    """How each derived asset field follows from the Item's columns.

    Attributes:
        fields: ``asset -> field -> rule``; a rule is a list: ``["href", prefix]``,
            ``["transform", resolution]``, ``["s1_time"]``, ``["copy", column]``,
            ``["shard_file", "size"|"checksum"]``, ``["shard_object", prefix, suffix]``.
        files: ``asset -> [[shard, size, sha256], ...]`` (the release manifest's entries).
    """

    fields: dict[str, dict[str, list[Any]]]
    files: dict[str, list[list[Any]]]

    def to_json(self) -> bytes:
        """The rules as field metadata."""
        return json.dumps({"fields": self.fields, "files": self.files}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Rules:
        """Read rules back from field metadata."""
        doc = json.loads(data)
        return cls(dict(doc["fields"]), dict(doc["files"]))

    def derived(self, asset: str) -> Iterable[str]:
        """The derived fields of an asset."""
        return self.fields.get(asset, {}).keys()

    def compute(self, asset: str, field: str, columns: Mapping[str, Any]) -> pa.Array:
        """The values of ``assets.<asset>.<field>`` for rows with these top-level columns.

        Raises:
            KeyError: A shard is not in the per-shard table, or the rule is unknown.
        """
        rule = self.fields[asset][field]
        kind = rule[0]
        if kind == "href":
            index = pc.cast(_column(columns, "sample_index"), pa.string())
            return pc.binary_join_element_wise(f"{rule[1]}#sample=", index, "")
        if kind == "transform":
            return scaled_transform(_column(columns, "proj:transform"), float(rule[1]))
        if kind == "s1_time":
            start, s2 = _column(columns, "start_datetime"), _column(columns, "datetime")
            end = _column(columns, "end_datetime")
            return iso_seconds(pc.if_else(pc.not_equal(start, s2), start, end))
        if kind == "copy":
            return _column(columns, str(rule[1]))
        shard = pc.cast(_column(columns, "shard"), pa.int64())
        if kind == "shard_object":
            text = pc.cast(shard, pa.string())
            return pc.binary_join_element_wise(str(rule[1]), text, str(rule[2]), "")
        if kind == "shard_file":
            table = np.array([[s, size] for s, size, _ in self.files[asset]], dtype=np.int64)
            sums = [sha for _, _, sha in self.files[asset]]
            wanted = shard.to_numpy(zero_copy_only=False)
            where = np.searchsorted(table[:, 0], wanted)
            if len(wanted) and (where.max() >= len(table) or (table[where, 0] != wanted).any()):
                raise KeyError(f"asset {asset}: a shard of these rows is not in the file table")
            if rule[1] == "size":
                return pa.array(table[where, 1], pa.int64())
            multihash = pa.array(["1220" + s for s in sums], pa.string())  # sha2-256, 32 bytes
            return multihash.take(pa.array(where, pa.int64()))
        raise KeyError(f"unknown derivation rule {rule!r}")

    def materialize(self, table: pa.Table, assets: Iterable[str], prefix: str) -> pa.Table:
        """``table`` plus the derived fields of ``assets``, as columns ``<prefix><asset>.<f>``."""
        for asset in assets:
            for field in self.derived(asset):
                name = f"{prefix}{asset}.{field}"
                if name not in table.column_names:
                    table = table.append_column(name, self.compute(asset, field, table))
        return table


def rules_of(schema: pa.Schema) -> Rules | None:
    """The rules a file records (None for a file without them: read every asset field)."""
    if "assets" not in schema.names:
        return None
    meta = schema.field("assets").metadata or {}
    return Rules.from_json(meta[DERIVED_KEY]) if DERIVED_KEY in meta else None

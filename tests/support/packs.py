"""The pack index as it was kept before issue 15: the reference the compact one is checked and
measured against (``tests/pipelines/sources/test_packs.py``, ``benchmarks/pack_index.py``)."""

from __future__ import annotations

import pyarrow as pa


def dict_index(table: pa.Table) -> dict[str, list[tuple[int, int, int]]]:
    """``folder -> [(pack, offset, length), ...]`` of an index table, built with plain dicts."""
    found: dict[str, list[tuple[int, int, int]]] = {}
    cols = [table[c].to_pylist() for c in ("folder", "pack", "offset", "length")]
    for folder, pack, offset, length in zip(*cols, strict=True):
        found.setdefault(folder, []).append((pack, offset, length))
    return found

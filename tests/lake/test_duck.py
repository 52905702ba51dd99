"""DuckDB connections of :mod:`lake.duck` open a lake's objects by :func:`duckdb_url`."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake.config import StoreSpec, store_spec
from lake.duck import duckdb_connect, duckdb_url
from lake.storage import filesystem


def _spec(kind: str, tmp_path: Path) -> StoreSpec:
    if kind == "file":
        return store_spec(str(tmp_path / "lake"), environ={})
    return store_spec(f"memory://duck-{uuid.uuid4().hex[:8]}", environ={})


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_a_connection_reads_an_object_by_its_duckdb_url(kind: str, tmp_path: Path) -> None:
    spec = _spec(kind, tmp_path)
    buffer = io.BytesIO()
    pq.write_table(pa.table({"n": [1, 2, 3]}), buffer)
    filesystem(spec).pipe_file(spec.path("tables/r1/t.parquet"), buffer.getvalue())
    url = duckdb_url(spec, "tables/r1/t.parquet")
    expected = spec.path("tables/r1/t.parquet")
    assert url == (expected if kind == "file" else f"memory://{expected}")
    con = duckdb_connect(spec, extensions=())
    try:
        assert con.execute("SELECT sum(n) FROM read_parquet(?)", [url]).fetchone() == (6,)
    finally:
        con.close()


def test_an_s3_object_is_named_by_its_bucket_and_key() -> None:
    spec = store_spec("s3://bucket/lake", endpoint_url="http://127.0.0.1:9", environ={})
    assert duckdb_url(spec, "stac/r1/items.parquet") == "s3://bucket/lake/stac/r1/items.parquet"

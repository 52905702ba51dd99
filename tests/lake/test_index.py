"""The release index (``lake.index``): written at publish, equal to what it indexes, read once."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake.errors import LayoutError
from lake.index import INDEX_COLUMNS, INDEX_VERSION, read_index, write_index
from lake.layout import patches_path, release_index_path
from lake.reader import open_lake
from lake.release import read_manifest
from tests.lake.loader.helpers import LAKE, RELEASE
from tests.support.lakes import TestLake, copy_lake


@pytest.fixture(scope="module")
def lake(build_lake) -> TestLake:  # type: ignore[no-untyped-def]
    return build_lake(LAKE)


def test_publish_writes_an_index_equal_to_the_tables_and_the_group(lake: TestLake) -> None:
    index = read_index(lake.spec, RELEASE)
    assert index is not None
    rel = open_lake(lake.spec).release(RELEASE)
    want = rel.patches(columns=list(INDEX_COLUMNS)).sort_by("sample_index")
    assert index.table.equals(want)
    assert index.table["sample_index"].to_pylist() == list(range(len(want)))
    group = lake.root / patches_path(RELEASE)
    arrays = {p.parent.name: json.loads(p.read_text()) for p in group.glob("*/zarr.json")}
    assert index.document["arrays"] == arrays and "s2_10m" in arrays
    assert index.document["group"] == json.loads((group / "zarr.json").read_text())
    manifest = read_manifest(lake.spec, RELEASE)
    assert index.document["counts"] == manifest["counts"]
    assert index.document["index_version"] == INDEX_VERSION
    # Listed (and hashed) in the manifest like every other object of the release.
    assert release_index_path(RELEASE) in {o["path"] for o in manifest["objects"]}


def test_index_offers_the_columns_it_holds_and_names_the_ones_it_lacks(lake: TestLake) -> None:
    index = read_index(lake.spec, RELEASE)
    assert index is not None
    assert index.patches(["patch_id", "split"]).column_names == ["patch_id", "split"]
    with pytest.raises(LayoutError, match=r"no column\(s\) \['country'\]"):
        index.patches(["patch_id", "country"])
    with pytest.raises(LayoutError, match="no array 'nope'"):
        index.array_meta("nope")
    rows = index.annotations(split="train")
    assert rows.num_rows == index.document["counts"]["annotations"]["by_split"]["train"]


def test_a_release_without_an_index_reads_as_none(lake: TestLake, tmp_path: Path) -> None:
    spec = copy_lake(lake, tmp_path / "copy")
    (tmp_path / "copy" / release_index_path(RELEASE)).unlink()
    assert read_index(spec, RELEASE) is None


def test_an_object_that_is_not_an_index_is_refused(lake: TestLake, tmp_path: Path) -> None:
    spec = copy_lake(lake, tmp_path / "copy")
    path = tmp_path / "copy" / release_index_path(RELEASE)
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata(None), path)
    with pytest.raises(LayoutError, match=r"no 'lake\.index' metadata"):
        read_index(spec, RELEASE)
    doc = {"index_version": 99, "release": RELEASE}
    pq.write_table(table.replace_schema_metadata({"lake.index": json.dumps(doc)}), path)
    with pytest.raises(LayoutError, match="index version 99 is not 1"):
        read_index(spec, RELEASE)
    doc = {"index_version": INDEX_VERSION, "release": "other"}
    pq.write_table(table.replace_schema_metadata({"lake.index": json.dumps(doc)}), path)
    with pytest.raises(LayoutError, match="index of release 'other'"):
        read_index(spec, RELEASE)


def test_write_index_refuses_a_release_it_cannot_index(lake: TestLake, tmp_path: Path) -> None:
    spec = copy_lake(lake, tmp_path / "copy")
    with pytest.raises(LayoutError, match="the counts say 5"):
        write_index(spec, RELEASE, {"patches": 5})
    (tmp_path / "copy" / patches_path(RELEASE) / "zarr.json").unlink()
    with pytest.raises(LayoutError, match=r"has no zarr\.json"):
        write_index(spec, RELEASE, {"patches": LAKE.pairs})
    with pytest.raises(LayoutError, match="cannot write the index of release 'nope'"):
        write_index(spec, "nope", {})


def test_the_index_is_plain_parquet(lake: TestLake) -> None:
    """Any Parquet reader opens it; the JSON document sits in the key-value metadata."""
    table = pq.read_table(lake.root / release_index_path(RELEASE))
    assert table.column_names == list(INDEX_COLUMNS)
    assert table.schema.field("labels").type == pa.list_(pa.string())
    doc = json.loads(table.schema.metadata[b"lake.index"])
    assert doc["release"] == RELEASE and doc["tables"]["patches"].startswith("tables/")

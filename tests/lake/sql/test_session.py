"""``lake.connect``: views that agree with the release's Parquet, locally and over S3, partition
pruning and projection pushdown, spatial queries, ranked text search, the training selection,
the documented schema, and clear errors for a bad query, release, URL or endpoint."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

import lake
import lake.sql
from lake.config import StoreSpec, store_spec
from lake.errors import ConfigError, LayoutError, QueryError, ReleaseNotFound, StorageError
from lake.sql import textsearch
from lake.sql.docs import render
from tests.lake.sql.helpers import RELEASE, Built, copy_lake

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def con(built: Built) -> Any:
    """A read-only session on the local lake."""
    with lake.connect(built.spec) as c:
        yield c


def source_annotations(built: Built) -> pa.Table:
    """The release's annotations dataset, read with pyarrow (the source of truth)."""
    base = built.root / "tables" / RELEASE / "annotations"
    tables = []
    for part in sorted(base.glob("split=*/part-0.parquet")):
        tables.append(pq.read_table(part))
    return pa.concat_tables(tables)


def check_views_agree(con: Any, built: Built) -> None:
    """Counts per type and split, and sampled rows field by field, against the Parquet."""
    src = source_annotations(built)
    rows = src.to_pylist()
    by = Counter((r["type"], r["split"]) for r in rows)
    got = con.sql("SELECT type, split, count(*) FROM annotations GROUP BY ALL").fetchall()
    assert dict(((t, s), n) for t, s, n in got) == dict(by)
    for view, kind in (("captions", "captioning"), ("refexp", "bounding box")):
        got = dict(con.sql(f"SELECT split, count(*) FROM {view} GROUP BY ALL").fetchall())
        assert got == {s: n for (t, s), n in by.items() if t == kind}
    vqa = dict(con.sql("SELECT type, count(*) FROM vqa GROUP BY ALL").fetchall())
    assert vqa == {t: sum(n for (k, _), n in by.items() if k == t) for t in ("binary", "mcq")}
    manifest = lake.open_lake(built.spec).current.manifest["counts"]
    assert (
        con.sql("SELECT count(*) FROM annotations").fetchone()[0]
        == manifest["annotations"]["total"]
    )
    patches = pq.read_table(built.root / "tables" / RELEASE / "patches" / "part-0.parquet")
    assert con.sql("SELECT count(*) FROM patches").fetchone()[0] == patches.num_rows
    n_labels = sum(len(v) for v in patches["labels"].to_pylist())
    assert con.sql("SELECT count(*) FROM labels").fetchone()[0] == n_labels

    rng = random.Random(3)
    by_id = {r["ID"]: r for r in rows}
    for kind in ("binary", "mcq", "bounding box", "captioning"):
        for row in rng.sample([r for r in rows if r["type"] == kind], 3):
            rel = con.sql('SELECT * FROM annotations WHERE "ID" = ?', params=[row["ID"]])
            live = dict(zip(rel.columns, rel.fetchone(), strict=True))
            assert live == by_id[row["ID"]], kind
            check_derived(con, row)


def check_derived(con: Any, row: dict[str, Any]) -> None:
    """The row as the typed view shows it."""

    def one(view: str) -> dict[str, Any]:
        rel = con.sql(f'SELECT * FROM {view} WHERE "ID" = ?', params=[row["ID"]])
        return dict(zip(rel.columns, rel.fetchone(), strict=True))

    if row["type"] == "captioning":
        got = one("captions")
        assert got["caption"] == row["output"] and got["patch_id"] == row["patch_id"]
    elif row["type"] == "bounding box":
        got = one("refexp")
        assert got["expression"] == row["input"] and got["answer"] == row["output"]
        for c in ("x1", "y1", "x2", "y2"):
            assert got[c] == row[f"box_{c}"]
            assert got[f"px_{c}"] == pytest.approx(row[f"box_{c}"] * 120, abs=1e-3)
            assert 0 <= got[f"px_{c}"] <= 120
    else:
        got = one("vqa")
        assert got["question"] == row["input"] and got["answer"] == row["output"]
        assert got["options"] == row["options"]
        if row["type"] == "mcq":
            assert got["answer_text"] == row["options"][row["answer_index"]]
        else:
            assert got["answer_text"] == ("yes" if row["answer_bool"] else "no")


def test_views_agree_with_the_release_parquet(con: Any, built: Built) -> None:
    check_views_agree(con, built)
    official = pq.read_table(built.source / "BigEarthNet.txt.parquet").to_pylist()
    ids = [r["ID"] for r in official[::50]]
    rel = con.sql('SELECT * FROM annotations WHERE "ID" IN ? ORDER BY "ID"', params=[ids])
    live = {r[0]: dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()}
    for r in official[::50]:
        assert {k: live[r["ID"]][k] for k in r} == r


@pytest.mark.s3
def test_the_same_sql_over_s3(built: Built, built_s3: StoreSpec) -> None:
    with lake.connect(built_s3) as s3con:
        check_views_agree(s3con, built)
        plan = explain(s3con, "SELECT avg(box_x1) FROM annotations WHERE split = 'train'")
        assert "Scanning Files: 1/" in plan and str(built_s3.secret) not in repr(s3con)
        with lake.connect(built.spec) as local:
            q = "SELECT * FROM text_search('forest water') ORDER BY score DESC, \"ID\" LIMIT 20"
            assert s3con.sql(q).fetchall() == local.sql(q).fetchall()


def explain(con: Any, query: str) -> str:
    return "\n".join(str(r[1]) for r in con.sql("EXPLAIN " + query).fetchall())


def test_explain_shows_partition_pruning_and_projection_pushdown(con: Any, built: Built) -> None:
    parts = len(list((built.root / "tables" / RELEASE / "annotations").glob("split=*")))
    # avg() must read the values (count/min/max may come from the Parquet statistics)
    plan = explain(con, "SELECT avg(box_x1) FROM annotations WHERE split = 'train'")
    assert f"Scanning Files: 1/{parts}" in plan
    assert "Projections: box_x1" in plan and "input" not in plan
    plan = explain(con, "SELECT caption FROM captions WHERE split = 'validation'")
    assert f"Scanning Files: 1/{parts}" in plan


def test_patch_geometry_works_with_the_spatial_functions(con: Any) -> None:
    rows = con.sql(
        "SELECT patch_id, ST_Area(geometry), ST_Contains(geometry, ST_Point(centre_lon, "
        "centre_lat)), ST_AsWKB(geometry) FROM patches"
    ).fetchall()
    assert rows and all(0.0001 < area < 0.0005 and inside for _, area, inside, _ in rows)
    pid, _, _, wkb = rows[0]
    lon, lat = shapely.from_wkb(bytes(wkb)).centroid.coords[0]
    hits = con.sql(
        "SELECT patch_id FROM patches WHERE ST_Intersects(geometry, "
        f"ST_MakeEnvelope({lon - 0.001}, {lat - 0.001}, {lon + 0.001}, {lat + 0.001}))"
    ).fetchall()
    assert (pid,) in hits and len(hits) < 5


def test_text_search_ranks_captions_and_questions(con: Any) -> None:
    caption, cid = con.sql('SELECT caption, "ID" FROM captions ORDER BY "ID" LIMIT 1').fetchone()
    words = [w for w in caption.lower().replace(",", " ").split() if w.isalpha()][-6:]
    hits = con.sql(
        "SELECT * FROM text_search(?, kind := 'caption') LIMIT 10", params=[" ".join(words)]
    )
    rows = [dict(zip(hits.columns, r, strict=True)) for r in hits.fetchall()]
    assert rows and {r["kind"] for r in rows} == {"caption"}
    assert cid in [r["ID"] for r in rows[:3]]
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    both = con.sql("SELECT DISTINCT kind FROM text_search('forest')").fetchall()
    assert sorted(both) == [("caption",), ("question",)]
    assert not con.sql("SELECT * FROM text_search('zzzz qqqq')").fetchall()
    # rows agree with the annotations they point at
    check = con.sql(
        "SELECT count(*) FROM text_search('forest') t JOIN annotations a USING (\"ID\") "
        "WHERE t.patch_id <> a.patch_id OR t.type <> a.type"
    ).fetchone()
    assert check == (0,)


def test_persisted_text_index_gives_the_same_ranking(built: Built, tmp_path: Path) -> None:
    spec = copy_lake(built, tmp_path / "lake")
    counts = lake.sql.build_text_index(spec)
    assert counts["rows"] == lake.open_lake(spec).current.manifest["counts"]["annotations"]["total"]
    for table in textsearch.INDEX_TABLES:
        assert (tmp_path / "lake" / textsearch.index_path(RELEASE, table)).exists()
    q = "SELECT * FROM text_search('mixed forest pastures') LIMIT 25"
    with lake.connect(spec) as persisted, lake.connect(built.spec) as memory:
        kinds = persisted.sql(
            "SELECT DISTINCT table_name FROM duckdb_tables() WHERE schema_name = 'text_index'"
        ).fetchall()
        assert kinds == []  # read from the Parquet files, not built
        assert persisted.sql(q).fetchall() == memory.sql(q).fetchall()


def test_selection_hands_ids_to_the_loader(con: Any, built: Built) -> None:
    pids = lake.sql.selection(con, "SELECT patch_id FROM annotations WHERE split = 'train'")
    expected = con.sql("SELECT DISTINCT patch_id FROM annotations WHERE split = 'train'")
    assert sorted(pids) == sorted(r[0] for r in expected.fetchall())
    assert len(pids) == len(set(pids))
    ids = lake.sql.selection(con, 'SELECT "ID" FROM vqa WHERE type = \'mcq\' ORDER BY "ID"')
    assert ids and all(isinstance(i, int) for i in ids) and ids == sorted(ids)
    both = 'SELECT "ID", patch_id FROM captions ORDER BY "ID"'
    with pytest.raises(QueryError, match="both patch_id and ID"):
        lake.sql.selection(con, both)
    assert lake.sql.selection(con, both, by="ID") == sorted(
        r[0] for r in con.sql('SELECT "ID" FROM captions').fetchall()
    )
    with pytest.raises(QueryError, match=r"patch_id column .* or an ID column .* label"):
        lake.sql.selection(con, "SELECT label FROM labels")
    by_url = lake.sql.selection(built.root, "SELECT patch_id FROM patches ORDER BY patch_id")
    assert by_url == sorted(r[0] for r in con.sql("SELECT patch_id FROM patches").fetchall())


def test_items_view_reads_the_stac_items_or_says_they_are_missing(
    con: Any,
    built: Built,
    tmp_path: Path,
) -> None:
    items = pq.read_table(built.root / "stac" / RELEASE / "items.parquet")
    assert "items" not in con.notes
    got = con.sql("SELECT count(*), count(DISTINCT id), min(ST_Area(geometry)) > 0 FROM items")
    assert got.fetchone() == (items.num_rows, items.num_rows, True)
    joined = con.sql("SELECT count(*) FROM items i JOIN patches p ON i.id = p.patch_id")
    assert joined.fetchone() == (con.sql("SELECT count(*) FROM patches").fetchone()[0],)

    spec = copy_lake(built, tmp_path / "lake")  # a release published before its STAC items
    (tmp_path / "lake" / "stac" / RELEASE / "items.parquet").unlink()
    manifest_path = tmp_path / "lake" / "releases" / RELEASE / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["objects"] = [
        o for o in manifest["objects"] if not o["path"].endswith("items.parquet")
    ]
    manifest_path.write_text(json.dumps(manifest))
    with lake.connect(spec) as without:
        assert "items" in without.notes
        with pytest.raises(duckdb.Error, match=r"items: release 'r1' has no STAC items yet"):
            without.sql("SELECT count(*) FROM items").fetchall()
        assert "items" not in lake.sql.schemas(without)


def test_schema_is_documented_and_docs_page_matches_the_live_views(con: Any) -> None:
    schemas = lake.sql.schemas(con)
    views = ["patches", "annotations", "captions", "vqa", "refexp", "labels"]
    assert list(schemas) == [*views, "items"]  # items: the STAC columns, documented by STAC
    for view in views:
        assert all(c["description"] for c in schemas[view]), view
    page = (ROOT / "docs" / "sql.md").read_text()
    assert page == render(con), "docs/sql.md is stale: python -m lake.sql.docs LAKE > docs/sql.md"
    text = lake.sql.schema_text(con)
    assert "px_x1" in text and "text_search" in page


def test_python_results_as_pandas_arrow_and_a_clear_polars_message(con: Any) -> None:
    assert len(con.sql("SELECT * FROM patches").df()) == 40
    reader = con.sql("SELECT patch_id, geometry FROM patches").arrow()
    assert reader.read_all().num_rows == 40
    try:
        import polars  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises(ModuleNotFoundError, match="'polars' package"):
            con.sql("SELECT 1").pl()


def test_a_named_release_and_clear_errors(built: Built, tmp_path: Path) -> None:
    with lake.connect(built.root, release=RELEASE) as c:
        assert c.release == RELEASE and "read-only" in repr(c)
    with pytest.raises(ReleaseNotFound, match=r"release 'nope' is not in .*releases: r1"):
        lake.connect(built.spec, release="nope")
    with pytest.raises(LayoutError, match="no lake"):
        lake.connect(tmp_path / "empty")
    with pytest.raises(ConfigError, match="local folder or an s3:// lake"):
        lake.connect("memory://x")
    with lake.connect(built.spec) as c, pytest.raises(duckdb.ParserException, match="SELEC"):
        c.sql("SELEC 1")


@pytest.mark.slow  # botocore retries for about 8 s; the CLI test covers the message by default
def test_an_unreachable_endpoint_is_one_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    spec = store_spec(
        "s3://lake/x",
        endpoint_url="http://127.0.0.1:9",
        key="AKIDUNREACHABLE",
        secret="never-shown-secret-0123",
        environ={},
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StorageError, match=r"127\.0\.0\.1:9.*check the endpoint") as info:
        lake.connect(spec)
    assert isinstance(info.value, OSError)
    assert "never-shown-secret-0123" not in str(info.value) + caplog.text

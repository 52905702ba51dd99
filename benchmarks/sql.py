"""SQL over the lake at BigEarthNet.txt scale: our views against plain DuckDB and pandas.

Usage: ``python benchmarks/sql.py [--n 480038] [--workers 2] [--out bench-output/sql]
[--repeat 3] [--no-s3] [--no-pandas] [--json-out FILE]``

1. **generate** (cached under ``--out``): BigEarthNet.txt-shaped rows for the first ``--n`` pairs
   of the real metadata (all 480,038 by default, about 9.6 M rows) with
   :func:`pipelines.synth.annotations_for` (no rasters), in chunks spread over ``--workers``
   processes; each chunk's IDs restart at 0, so they are offset when the chunks are joined into
   ``BigEarthNet.txt.parquet``. A chunk already on disk is reused.
2. **lake** (cached): a lake-shaped release ``bench`` under ``--out/lake``: the ``patches`` table
   (:func:`lake.tables.patches_table`, georeference from the MGRS grid), the annotations
   dataset (:func:`pipelines.jobs.annotations.write_annotations`: the same parsing and split
   partitioning as ingest), the text index (:func:`lake.sql.build_text_index`), a manifest and
   ``lake.json``.
   No Zarr group: the SQL front door never reads it.
3. **queries**: eight fixed queries, each timed (best of ``--repeat`` after one warm-up run) four
   ways: our views on the local lake (``lake.connect``), the same views on the embedded S3
   endpoint serving a copy of the lake, plain DuckDB on the raw ``BigEarthNet.txt.parquet`` and
   the metadata parquet (no views, no parsed columns: the parsing happens in the query), and
   pandas on the same raw files (loaded once; load time reported apart).

JSON goes to stdout (and ``--json-out``); progress to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METADATA = ROOT.parent / "shared" / "data" / "bigearthnet-v2" / "metadata.parquet"
RELEASE = "bench"
CHUNK = 20_000


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[sql-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# 1. generate


def _metadata(n: int) -> pa.Table:
    meta = pq.read_table(METADATA).sort_by("patch_id")
    return meta.slice(0, min(n, meta.num_rows))


def _generate_chunk(args: tuple[int, int, int, str]) -> tuple[str, int, float]:
    """Write the text rows of metadata rows ``[start, stop)`` (IDs from 0) to ``path``."""
    start, stop, n, path = args
    from pipelines.synth import TEXT_SCHEMA, annotations_for

    t0 = time.perf_counter()
    meta = _metadata(n).slice(start, stop - start)
    tmp = path + ".tmp"
    rows = 0
    with pq.ParquetWriter(tmp, TEXT_SCHEMA, compression="zstd") as writer:
        for batch in annotations_for(meta, seed=0):
            writer.write_batch(batch)
            rows += batch.num_rows
    os.replace(tmp, path)
    return path, rows, time.perf_counter() - t0


def generate(out: Path, n: int, workers: int) -> dict[str, Any]:
    """The raw ``BigEarthNet.txt.parquet`` of the first ``n`` pairs (cached)."""
    final = out / "BigEarthNet.txt.parquet"
    n = min(n, pq.ParquetFile(METADATA).metadata.num_rows)
    chunks_dir = out / f"chunks-{n}"
    chunks_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if final.exists() and (pq.read_schema(final).metadata or {}).get(b"n") == str(n).encode():
        log(f"reusing {final}")
        return {"rows": pq.ParquetFile(final).metadata.num_rows, "seconds": 0.0, "cached": True}
    todo = []
    paths = []
    for start in range(0, n, CHUNK):
        path = str(chunks_dir / f"chunk-{start:07d}.parquet")
        paths.append(path)
        if not os.path.exists(path):
            todo.append((start, min(start + CHUNK, n), n, path))
    log(f"generating {len(todo)} of {len(paths)} chunks of {CHUNK} pairs on {workers} processes")
    cpu = 0.0
    with ProcessPoolExecutor(workers) as pool:
        for done, (path, rows, seconds) in enumerate(pool.map(_generate_chunk, todo), 1):
            cpu += seconds
            log(f"chunk {done}/{len(todo)}: {rows} rows in {seconds:.0f} s ({Path(path).name})")
    offset = 0
    tmp = str(final) + ".tmp"
    schema = pq.read_schema(paths[0]).with_metadata({"n": str(n)})
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for path in paths:
            table = pq.read_table(path)
            ids = pa.array(range(offset, offset + table.num_rows), pa.int64())
            table = table.set_column(0, "ID", ids).replace_schema_metadata(schema.metadata)
            writer.write_table(table, row_group_size=100_000)
            offset += table.num_rows
    os.replace(tmp, final)
    log(f"wrote {offset} rows to {final}")
    return {"rows": offset, "seconds": time.perf_counter() - t0, "chunk_cpu_seconds": cpu}


# ---------------------------------------------------------------------------------------------
# 2. lake


def build_lake(out: Path, n: int) -> dict[str, Any]:
    """The release ``bench`` of a lake-shaped folder (cached by the row count of its source)."""
    from lake.config import store_spec
    from lake.grid import tile_grid
    from lake.names import parse_patch_id
    from lake.release import build_manifest, publish
    from lake.sql import build_text_index
    from lake.tables import write_patches_table
    from pipelines.jobs.annotations import write_annotations

    root = out / "lake"
    stamp = root / "bench-source.json"
    raw = out / "BigEarthNet.txt.parquet"
    rows = pq.ParquetFile(raw).metadata.num_rows
    if stamp.exists() and json.loads(stamp.read_text()) == {"n": n, "rows": rows}:
        log(f"reusing {root}")
        return {"cached": True, **json.loads((root / "bench-build.json").read_text())}
    shutil.rmtree(root, ignore_errors=True)
    spec = store_spec(str(root), environ={})
    timings: dict[str, Any] = {}
    t0 = time.perf_counter()
    meta = _metadata(n)
    ids = meta.column("patch_id").to_pylist()
    sample_index = {pid: i for i, pid in enumerate(ids)}
    georef = {}
    for pid in ids:
        name = parse_patch_id(pid)
        grid = tile_grid(name.tile)
        georef[pid] = (grid.epsg, tuple(grid.patch_transform(name.x, name.y, 10))[:6])
    write_patches_table(spec, RELEASE, meta, sample_index, georef, samples_per_shard=256)
    timings["patches_s"] = time.perf_counter() - t0
    log(f"patches table: {len(ids)} rows in {timings['patches_s']:.0f} s")
    t0 = time.perf_counter()
    source = SimpleNamespace(text_path=str(raw))
    rejected, counts = write_annotations(source, spec, RELEASE, meta, sample_index)
    timings["annotations_s"] = time.perf_counter() - t0
    log(
        f"annotations: {counts['total']} rows ({len(rejected)} rejected) in "
        f"{timings['annotations_s']:.0f} s"
    )
    t0 = time.perf_counter()
    manifest = build_manifest(
        spec,
        RELEASE,
        {},
        counts={"patches": len(ids), "annotations": counts, "quarantined": {}},
        source={"benchmark": "benchmarks/sql.py", "n": n},
        parameters={"layout": "v1", "note": "tables only (no Zarr group)"},
    )
    publish(spec, RELEASE, manifest)
    timings["manifest_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    timings["text_index_rows"] = build_text_index(spec, release=RELEASE)
    timings["text_index_s"] = time.perf_counter() - t0
    log(f"text index in {timings['text_index_s']:.0f} s: {timings['text_index_rows']}")
    sizes = {}
    for sub in ("patches", "annotations", "text_index"):
        folder = root / "tables" / RELEASE / sub
        sizes[sub] = sum(f.stat().st_size for f in folder.rglob("*.parquet"))
    timings.update(annotation_rows=counts["total"], rejected=len(rejected), bytes=sizes)
    (root / "bench-build.json").write_text(json.dumps(timings))
    stamp.write_text(json.dumps({"n": n, "rows": rows}))
    return timings


# ---------------------------------------------------------------------------------------------
# 3. queries

ENVELOPE = (-9.5, 38.5, -8.0, 40.0)  # lon/lat box around Lisbon and Coimbra
SEARCH = "coniferous forest near water"
_SEASON = (
    "CASE (substr(patch_id, 16, 2)::INTEGER % 12) // 3 WHEN 0 THEN 'Winter' "
    "WHEN 1 THEN 'Spring' WHEN 2 THEN 'Summer' ELSE 'Fall' END"
)
_BOX_RE = (
    r"^\s*[\[\(]*\s*([-+]?[0-9.]+)\s*[,\s]\s*([-+]?[0-9.]+)[\s,;\(\)\[\]]+"
    r"([-+]?[0-9.]+)\s*[,\s]\s*([-+]?[0-9.]+)"
)

#: The eight queries over our views (same text locally and on S3).
VIEW_QUERIES: dict[str, str] = {
    "counts_by_type_category": (
        "SELECT type, category, count(*) AS n FROM annotations GROUP BY ALL ORDER BY ALL"
    ),
    "bench_split": "SELECT * FROM annotations WHERE split = 'bench'",
    "join_patches_country_season": """
        SELECT a.type, count(*) AS n, count(DISTINCT a.patch_id) AS pairs
        FROM annotations a JOIN patches p USING (patch_id)
        WHERE p.country = 'Portugal' AND p.season = 'Summer' GROUP BY ALL ORDER BY ALL""",
    "label_cooccurrence": """
        WITH l AS (SELECT patch_id, label FROM labels)
        SELECT a.label AS label_a, b.label AS label_b, count(*) AS n
        FROM l a JOIN l b USING (patch_id) WHERE a.label < b.label
        GROUP BY ALL ORDER BY n DESC, label_a, label_b LIMIT 20""",
    "box_area_by_class": """
        SELECT regexp_replace(refs[1], '^the largest area of ', '') AS class, count(*) AS n,
               avg(area) AS mean_area, median(area) AS median_area,
               avg(px_x2 - px_x1) AS mean_width_px
        FROM refexp WHERE category = 'reference' GROUP BY ALL ORDER BY n DESC, class""",
    "caption_search": f"SELECT * FROM text_search('{SEARCH}', kind := 'caption') LIMIT 10",
    "spatial_filter": f"""
        SELECT patch_id, tile, centre_lon, centre_lat FROM patches
        WHERE bbox.xmin <= {ENVELOPE[2]} AND bbox.xmax >= {ENVELOPE[0]}
          AND bbox.ymin <= {ENVELOPE[3]} AND bbox.ymax >= {ENVELOPE[1]}
          AND ST_Intersects(geometry, ST_MakeEnvelope({", ".join(map(str, ENVELOPE))}))""",
    "selection_50k": """
        SELECT "ID" FROM vqa WHERE split = 'train' AND country IN ('Portugal', 'Austria')
        ORDER BY "ID" LIMIT 50000""",
}


def raw_queries(raw: str, meta: str) -> dict[str, str]:
    """The same questions in plain DuckDB over the raw files (parsing done in the query)."""
    t = f"read_parquet('{raw}')"
    m = f"read_parquet('{meta}')"
    lo0, la0, lo1, la1 = ENVELOPE
    return {
        "counts_by_type_category": (
            f"SELECT type, category, count(*) AS n FROM {t} GROUP BY ALL ORDER BY ALL"
        ),
        "bench_split": f"SELECT * FROM {t} WHERE split = 'bench'",
        "join_patches_country_season": f"""
            SELECT a.type, count(*) AS n, count(DISTINCT a.patch_id) AS pairs
            FROM {t} a JOIN (SELECT patch_id, country, {_SEASON} AS season FROM {m}) p
                 USING (patch_id)
            WHERE p.country = 'Portugal' AND p.season = 'Summer' GROUP BY ALL ORDER BY ALL""",
        "label_cooccurrence": f"""
            WITH l AS (SELECT patch_id, unnest(labels) AS label FROM {m})
            SELECT a.label AS label_a, b.label AS label_b, count(*) AS n
            FROM l a JOIN l b USING (patch_id) WHERE a.label < b.label
            GROUP BY ALL ORDER BY n DESC, label_a, label_b LIMIT 20""",
        "box_area_by_class": f"""
            WITH b AS (
                SELECT regexp_extract(input, '<ref>(.*?)</ref>', 1) AS ref,
                       regexp_extract(output, '{_BOX_RE}', ['x1', 'y1', 'x2', 'y2']) AS s
                FROM {t} WHERE type = 'bounding box' AND category = 'reference'),
            a AS (SELECT ref, (s.x2::DOUBLE - s.x1::DOUBLE) * (s.y2::DOUBLE - s.y1::DOUBLE)
                             AS area, (s.x2::DOUBLE - s.x1::DOUBLE) * 120 AS width_px FROM b)
            SELECT regexp_replace(ref, '^the largest area of ', '') AS class, count(*) AS n,
                   avg(area) AS mean_area, median(area) AS median_area,
                   avg(width_px) AS mean_width_px
            FROM a GROUP BY ALL ORDER BY n DESC, class""",
        "caption_search": f"""
            WITH docs AS (SELECT "ID", lake_tokens(output) AS toks FROM {t}
                          WHERE type = 'captioning'),
            q AS (SELECT DISTINCT unnest(lake_tokens('{SEARCH}')) AS term),
            st AS (SELECT count(*) AS n, avg(len(toks)) AS avgdl FROM docs),
            tf AS (SELECT "ID", term, count(*) AS tf, any_value(dl) AS dl
                   FROM (SELECT "ID", len(toks) AS dl, unnest(toks) AS term FROM docs)
                   WHERE term IN (SELECT term FROM q) GROUP BY ALL),
            df AS (SELECT term, count(*) AS df FROM tf GROUP BY term)
            SELECT "ID", sum(ln(1 + (n - df + 0.5) / (df + 0.5)) * tf * 2.2
                             / (tf + 1.2 * (0.25 + 0.75 * dl / avgdl))) AS score
            FROM tf JOIN df USING (term) CROSS JOIN st
            GROUP BY "ID" ORDER BY score DESC, "ID" LIMIT 10""",
        "spatial_filter": f"""
            SELECT DISTINCT patch_id, longitude, latitude FROM {t}
            WHERE longitude BETWEEN {lo0} AND {lo1} AND latitude BETWEEN {la0} AND {la1}""",
        "selection_50k": f"""
            SELECT "ID" FROM {t} WHERE split = 'train' AND type IN ('binary', 'mcq')
              AND country IN ('Portugal', 'Austria') ORDER BY "ID" LIMIT 50000""",
    }


def _best(fn: Callable[[], Any], repeat: int) -> dict[str, Any]:
    """Run once to warm up, then ``repeat`` timed runs; best and median seconds, result size."""
    result = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return _stats(times, result)


def _stats(times: list[float], result: Any) -> dict[str, Any]:
    times = sorted(times)
    rows = getattr(result, "num_rows", None)
    if rows is None:
        rows = len(result)
    return {"best_s": times[0], "median_s": times[len(times) // 2], "rows": int(rows)}


def _arrow(con: Any, query: str) -> Any:
    return con.sql(query).to_arrow_table()


def _runner(con: Any, name: str, query: str) -> Callable[[], Any]:
    """How one way runs one query (the selection goes through ``lake.sql.selection``)."""
    import lake.sql

    if name == "selection_50k" and hasattr(con, "read_only"):
        return partial(lake.sql.selection, con, query)
    return partial(_arrow, con, query)


def time_interleaved(ways: Mapping[str, tuple[Any, Mapping[str, str]]], repeat: int) -> dict:
    """Each query on every way in turn, ``repeat`` rounds after a warm-up round.

    Interleaving keeps the ways comparable on a shared machine whose load changes by the
    minute: each round runs the ways back to back.
    """
    out: dict[str, dict[str, Any]] = {way: {} for way in ways}
    for name in VIEW_QUERIES:
        runs = {way: _runner(con, name, queries[name]) for way, (con, queries) in ways.items()}
        results = {way: run() for way, run in runs.items()}
        times: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(repeat):
            for way, run in runs.items():
                t0 = time.perf_counter()
                results[way] = run()
                times[way].append(time.perf_counter() - t0)
        for way in ways:
            out[way][name] = _stats(times[way], results[way])
        log(
            f"{name}: "
            + ", ".join(f"{w} {out[w][name]['best_s'] * 1000:.0f} ms" for w in ways)
            + f" ({out[next(iter(ways))][name]['rows']} rows)"
        )
    return out


def time_duckdb(out: Path, repeat: int, with_s3: bool) -> dict[str, Any]:
    """Our views locally and on S3, and plain DuckDB on the raw files, interleaved."""
    import duckdb

    import lake.sql
    from lake.sql.textsearch import TOKENS_MACRO
    from pipelines.local.s3 import EmbeddedS3

    raw = duckdb.connect()
    raw.execute(TOKENS_MACRO)  # the same tokeniser, as plain SQL
    ways: dict[str, tuple[Any, Mapping[str, str]]] = {}
    res: dict[str, Any] = {}
    t0 = time.perf_counter()
    ways["local"] = (lake.sql.connect(out / "lake"), VIEW_QUERIES)
    res["local_connect_s"] = time.perf_counter() - t0
    ways["duckdb_raw"] = (raw, raw_queries(str(out / "BigEarthNet.txt.parquet"), str(METADATA)))
    with contextlib.ExitStack() as stack:
        if with_s3:
            served = out / "s3-root"
            target = served / "lake" / "bench-lake"
            if not target.exists():  # a hard-linked copy of the lake, served by rclone
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(out / "lake", target, copy_function=os.link)
            server = stack.enter_context(EmbeddedS3(served, buckets=["lake"]))
            e = server.endpoint
            t0 = time.perf_counter()
            s3con = lake.sql.connect(
                "s3://lake/bench-lake",
                endpoint_url=e.endpoint_url,
                key=e.key,
                secret=e.secret,
                region=e.region,
            )
            res["s3_connect_s"] = time.perf_counter() - t0
            ways["s3"] = (s3con, VIEW_QUERIES)
        log(f"connect: local {res['local_connect_s']:.2f} s, s3 {res.get('s3_connect_s', 0):.2f} s")
        res.update(time_interleaved(ways, repeat))
        for con, _ in ways.values():
            con.close()
    return res


def time_pandas(out: Path, repeat: int) -> dict[str, Any]:
    """The same eight questions in pandas over the raw files (loaded once, pyarrow dtypes)."""
    import numpy as np
    import pandas as pd

    from lake.sql.textsearch import STOP_WORDS

    t0 = time.perf_counter()
    df = pd.read_parquet(out / "BigEarthNet.txt.parquet", dtype_backend="pyarrow")
    meta = pd.read_parquet(METADATA, columns=["patch_id", "labels", "country"])
    load_s = time.perf_counter() - t0
    log(f"pandas: loaded {len(df)} rows in {load_s:.0f} s")
    month = meta["patch_id"].str.slice(15, 17).astype(int)
    meta["season"] = np.array(["Winter", "Spring", "Summer", "Fall"])[(month % 12) // 3]
    stop = set(STOP_WORDS)
    lo0, la0, lo1, la1 = ENVELOPE

    def counts() -> Any:
        return df.groupby(["type", "category"]).size().reset_index(name="n")

    def bench() -> Any:
        return df[df["split"] == "bench"]

    def join() -> Any:
        p = meta[(meta["country"] == "Portugal") & (meta["season"] == "Summer")]
        j = df[["patch_id", "type"]].merge(p[["patch_id"]], on="patch_id")
        return j.groupby("type").agg(n=("patch_id", "size"), pairs=("patch_id", "nunique"))

    def cooc() -> Any:
        lab = meta[["patch_id", "labels"]].explode("labels")
        pairs = lab.merge(lab, on="patch_id")
        pairs = pairs[pairs["labels_x"] < pairs["labels_y"]]
        return pairs.groupby(["labels_x", "labels_y"]).size().nlargest(20)

    def boxes() -> Any:
        b = df[(df["type"] == "bounding box") & (df["category"] == "reference")]
        ref = (
            b["input"]
            .str.extract(r"<ref>(?P<ref>.*?)</ref>")["ref"]
            .str.replace(r"^the largest area of ", "", regex=True)
        )
        named = _BOX_RE
        for name in ("x1", "y1", "x2", "y2"):
            named = named.replace("([-+]", f"(?P<{name}>[-+]", 1)
        xy = b["output"].str.extract(named).astype(float)
        area = (xy["x2"] - xy["x1"]) * (xy["y2"] - xy["y1"])
        frame = pd.DataFrame({"cls": ref, "area": area, "w": (xy["x2"] - xy["x1"]) * 120})
        return frame.groupby("cls").agg(
            n=("area", "size"),
            mean_area=("area", "mean"),
            median_area=("area", "median"),
            mean_width_px=("w", "mean"),
        )

    def tokens(s: Any) -> Any:
        words = s.str.lower().str.findall(r"[^\W_]+").explode()
        words = words[(words.str.len() > 1) & ~words.isin(stop)]
        plural = (words.str.len() > 3) & words.str.endswith("s") & ~words.str.endswith("ss")
        return words.where(~plural, words.str.slice(0, -1))

    def search() -> Any:
        caps = df.loc[df["type"] == "captioning", ["ID", "output"]]
        toks = tokens(caps["output"].astype(object))
        dl = toks.groupby(level=0).size()
        query = set(tokens(pd.Series([SEARCH])).tolist())
        hit = toks[toks.isin(query)]
        tf = hit.groupby([hit.index, hit.values]).size().rename("tf").reset_index()
        tf.columns = ["row", "term", "tf"]
        dfreq = tf.groupby("term")["row"].nunique()
        n, avgdl = len(caps), dl.mean()
        idf = np.log(1 + (n - tf["term"].map(dfreq) + 0.5) / (tf["term"].map(dfreq) + 0.5))
        norm = tf["tf"] + 1.2 * (0.25 + 0.75 * tf["row"].map(dl) / avgdl)
        tf["score"] = idf * tf["tf"] * 2.2 / norm
        score = tf.groupby("row")["score"].sum()
        return score.sort_values(ascending=False).head(10)

    def spatial() -> Any:
        sel = df["longitude"].between(lo0, lo1) & df["latitude"].between(la0, la1)
        return df.loc[sel, ["patch_id", "longitude", "latitude"]].drop_duplicates()

    def selection() -> Any:
        sel = (
            (df["split"] == "train")
            & df["type"].isin(["binary", "mcq"])
            & df["country"].isin(["Portugal", "Austria"])
        )
        return df.loc[sel, "ID"].sort_values().head(50_000).tolist()

    fns = {
        "counts_by_type_category": counts,
        "bench_split": bench,
        "join_patches_country_season": join,
        "label_cooccurrence": cooc,
        "box_area_by_class": boxes,
        "caption_search": search,
        "spatial_filter": spatial,
        "selection_50k": selection,
    }
    res: dict[str, Any] = {"load_s": load_s}
    for name, fn in fns.items():
        res[name] = _best(fn, max(1, repeat - 2))
        log(f"pandas {name}: {res[name]['best_s'] * 1000:.0f} ms ({res[name]['rows']} rows)")
    return res


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=480_038, help="pairs of the metadata to use")
    p.add_argument("--workers", type=int, default=2, help="processes generating text")
    p.add_argument("--out", type=Path, default=ROOT / "bench-output" / "sql")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per query (best is kept)")
    p.add_argument("--no-s3", action="store_true", help="skip the embedded S3 endpoint")
    p.add_argument("--no-pandas", action="store_true", help="skip pandas")
    p.add_argument("--generate-only", action="store_true", help="stop after step 1")
    p.add_argument("--json-out", type=Path, default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; prints and returns the JSON document."""
    args = _parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    doc["generate"] = generate(args.out, args.n, args.workers)
    if args.generate_only:
        print(json.dumps(doc, indent=1))
        return doc
    doc["lake"] = build_lake(args.out, args.n)
    timed = time_duckdb(args.out, args.repeat, not args.no_s3)
    doc["connect_s"] = {k: v for k, v in timed.items() if k.endswith("_connect_s")}
    doc.update({k: v for k, v in timed.items() if not k.endswith("_connect_s")})
    if not args.no_pandas:
        doc["pandas"] = time_pandas(args.out, args.repeat)
    doc["queries"] = VIEW_QUERIES
    doc["summary"] = summary(doc)
    text = json.dumps(doc, indent=1)
    print(text)
    if args.json_out:
        args.json_out.write_text(text)
    return doc


def summary(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per query: ms per way, and the ratios the aims are about."""
    rows = []
    for name in VIEW_QUERIES:
        row: dict[str, Any] = {"query": name}
        for way in ("local", "s3", "duckdb_raw", "pandas"):
            if way in doc and name in doc[way]:
                row[f"{way}_ms"] = round(doc[way][name]["best_s"] * 1000, 1)
        local = row.get("local_ms")
        if local and row.get("duckdb_raw_ms"):
            row["vs_duckdb_raw"] = round(local / row["duckdb_raw_ms"], 2)
        if local and row.get("pandas_ms"):
            row["pandas_speedup"] = round(row["pandas_ms"] / local, 1)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
